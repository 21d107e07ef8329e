"""Grids of training runs: which model sizes, which budgets, which seeds — expanded into frozen run configs.

Three kinds (``configs/grid/``):

* ``cartesian``: sizes × token budgets;
* ``isoflop``: FLOP budgets × sizes, tokens = C / FLOPs-per-token(size) under ``flop_convention``
  (Hoffmann et al. 2022, approach 2; budgets such as 1e17·2^k as in Porian et al. 2024). With
  ``sizes_per_budget`` each budget trains only that many consecutive sizes, centred on the size whose tokens per
  parameter is nearest ``center_tokens_per_param``, as Hoffmann et al. chose a window of sizes per budget: the
  optimum moves with C, and every profile needs sizes on both sides of it. The window is taken among the sizes
  that train at least ``min_steps`` steps at that budget, so the largest sizes of a small budget drop out. The
  sweep logs a window cut short this way, and one the grid's sizes cannot centre (too few sizes beyond the target
  on one side): the optimum of its profile may sit at its edge;
* ``ladder``: sizes × multiples k of tokens per parameter, D = k · N_total (OLMo's model ladder; Hoffmann et al.
  counted every parameter, and their compute-optimal ratio is about k = 20).

Tokens per parameter are counted against the total parameter count everywhere in a grid.

Sizes are explicit shapes, or generated from target non-embedding parameter counts with a fixed aspect ratio
d_model / num_layers (Kaplan et al. 2020, §3.2.1: loss depends weakly on shape at fixed N), using N ≈ 12·L·d².

Size-dependent hyper-parameter rules (``hparam_rule``):

* ``none``: the base config's LR and batch size for every point;
* ``deepseek``: η_opt = 0.3118·C^−0.125 and B_opt = 0.2920·C^0.3271 tokens, with C the point's FLOP budget
  (DeepSeek-AI 2024, "DeepSeek LLM", §3.1, fitted on their IsoFLOP sweeps);
* ``lr_inverse_width``: η = η_base · base_width / d_model for every parameter, batch size from the base config.
  Only the global learning rate changes; this is not μP (Yang et al. 2022, "Tensor Programs V"), which also
  sets per-tensor initialisation, per-tensor learning rates and an output multiplier.

``warmup_fraction`` (when set) makes warmup a fixed fraction of each point's steps. Every derived value is written
into the point's frozen config, so the saved config is exactly what ran.

``branched`` (any kind, wsd schedule): per size and seed, the point with the largest budget is a *trunk* and every
smaller budget D a *branch* that starts from the trunk's checkpoint at D's decay start, D·(1 − decay_fraction), and
cools down to D (Hägele et al. 2024, arXiv 2405.18392, §4: one run per size gives every token budget of a ladder).
A size's points share one warmup (``warmup_fraction`` of its shortest point), so the trunk and its branches run the
same steps until each branch's decay, and a branch is the very computation its independent run would be. Each
point's law input stays its own D; the tokens it trains itself (``cost_tokens``) give the study's real cost.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

from scaling.config import (ConfigError, ModelConfig, TrainConfig, check_at_least, load_train_config, parse,
                            run_id)
from scaling.flops import FLOP_CONVENTIONS, count_params, flops_per_token

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SizeSpec:
    name: str | None
    """Label in tables (default: LxD)."""
    num_layers: int
    d_model: int
    num_heads: int


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    """Per-size tuning (Porian et al. 2024, §4: untuned learning rate, batch and β2 explain much of the
    Kaplan-Chinchilla gap): every point trains once per combination; the fit keeps each (N, D)'s best run and fits
    the best learning rate and batch against C (DeepSeek-AI 2024, §3.1). Empty lists sweep nothing."""
    lr_factors: list[float]
    """Multipliers of each point's learning rate (after `hparam_rule`), e.g. [0.5, 1, 2]."""
    batch_factors: list[float]
    """Multipliers of each point's batch in tokens (rounded to whole micro-batches)."""
    beta2: list[float]
    """Values of AdamW's β2."""

    def __post_init__(self) -> None:
        if any(f <= 0 for f in [*self.lr_factors, *self.batch_factors]):
            raise ConfigError("grid.tune", "factors must be positive", "e.g. grid.tune.lr_factors=[0.5,1,2]")
        if any(not 0 <= b < 1 for b in self.beta2):
            raise ConfigError("grid.tune.beta2", f"{self.beta2} has values outside [0, 1)", "e.g. [0.95, 0.99]")
        for name in ("lr_factors", "batch_factors", "beta2"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"grid.tune.{name}", "repeated values train the same run twice", "list each once")

    def variants(self, beta2: float) -> list[dict[str, float]]:
        """Every combination, as (lr factor, batch factor, β2); the base config's β2 where none are swept."""
        return [{"lr_factor": lr, "batch_factor": batch, "beta2": b2} for lr in self.lr_factors or [1.0]
                for batch in self.batch_factors or [1.0] for b2 in self.beta2 or [beta2]]


@dataclass(frozen=True, kw_only=True)
class RanksConfig:
    """How many processes (GPUs, on a GPU box) train each point: torchrun starts a point of several ranks
    (scaling.distributed), so the top of a ladder can span GPUs and nodes while small points pack."""
    per_point: int
    """Ranks of every point below `large_params`."""
    large_params: int | None
    """Points with at least this many total parameters train on `large_per_point` ranks; null: none."""
    large_per_point: int

    def __post_init__(self) -> None:
        if self.per_point < 1 or self.large_per_point < 1:
            raise ConfigError("grid.ranks", "a point needs at least one rank", "e.g. grid.ranks.per_point=1")

    def of(self, params_total: int) -> int:
        large = self.large_params is not None and params_total >= self.large_params
        return self.large_per_point if large else self.per_point


@dataclass(frozen=True, kw_only=True)
class GridConfig:
    kind: Literal["cartesian", "isoflop", "ladder"]
    sizes: list[SizeSpec]
    """Explicit shapes; may be combined with ``size_targets``."""
    size_targets: list[int]
    """Target non-embedding parameter counts, turned into shapes by the aspect-ratio rule."""
    aspect_ratio: float
    """d_model / num_layers of generated shapes."""
    head_dim: int
    """Head dimension of generated shapes (d_model is rounded to a multiple of it)."""
    budgets_tokens: list[int]
    """cartesian: training tokens per run."""
    budgets_flops: list[float]
    """isoflop: FLOP budgets C."""
    tokens_per_param: list[float]
    """ladder: D = k · N_total."""
    sizes_per_budget: int | None
    """isoflop: train only this many consecutive sizes per budget (null: every size at every budget)."""
    center_tokens_per_param: float
    """isoflop with sizes_per_budget: each budget's window is centred on the size nearest this D / N_total."""
    flop_convention: str
    """Convention that turns an isoflop budget into tokens, and the C used by the `deepseek` rule."""
    seeds: list[int]
    hparam_rule: Literal["none", "deepseek", "lr_inverse_width"]
    base_width: int
    """d_model at which the base LR holds (lr_inverse_width)."""
    warmup_fraction: float | None
    """Warmup steps = ceil(fraction · steps); null keeps optim.warmup_steps."""
    min_steps: int
    """Every point must train at least this many optimizer steps (a shorter run is mostly warmup, and its loss says
    more about the schedule than about N and D). An isoflop window takes its sizes among those that reach it;
    elsewhere expansion fails naming the point."""
    branched: bool
    """Per size and seed, one trunk to the largest budget and cooldown branches from it at every smaller budget
    (needs optim=adamw_wsd); false: every point trains from scratch."""
    tune: TuneConfig
    ranks: RanksConfig

    def __post_init__(self) -> None:
        if not self.sizes and not self.size_targets:
            raise ConfigError("grid.sizes", "no model sizes",
                              "list shapes in grid.sizes or targets in grid.size_targets")
        if any(t <= 0 for t in self.size_targets):
            raise ConfigError("grid.size_targets", f"{self.size_targets} holds a count of 0 or below",
                              "use positive non-embedding parameter counts, e.g. [100000, 300000]")
        if self.size_targets:  # the shapes of the targets are drawn with these two
            check_at_least("grid.aspect_ratio", self.aspect_ratio, 1, "e.g. 32 (d_model / num_layers)")
            check_at_least("grid.head_dim", self.head_dim, 2, "e.g. 32 (an even number: RoPE rotates pairs)")
        check_at_least("grid.base_width", self.base_width, 1, "the d_model at which optim.lr was tuned, e.g. 64")
        if self.flop_convention not in FLOP_CONVENTIONS:
            raise ConfigError("grid.flop_convention", f"unknown convention {self.flop_convention!r}",
                              f"use one of {', '.join(FLOP_CONVENTIONS)}")
        needed = {"cartesian": "budgets_tokens", "isoflop": "budgets_flops", "ladder": "tokens_per_param"}[self.kind]
        if not getattr(self, needed):
            raise ConfigError(f"grid.{needed}", f"a {self.kind} grid needs at least one value", f"set grid.{needed}")
        if any(v <= 0 for v in [*self.budgets_tokens, *self.budgets_flops, *self.tokens_per_param]):
            raise ConfigError("grid", "budgets must be positive", "remove zero or negative budgets")
        if not self.seeds:
            raise ConfigError("grid.seeds", "no seeds", "e.g. grid.seeds=[0]")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("grid.seeds", f"{list(self.seeds)} lists a seed twice: both would be one run",
                              "list each seed once")
        if self.sizes_per_budget is not None and self.kind != "isoflop":
            raise ConfigError("grid.sizes_per_budget", f"set on a {self.kind} grid; it picks the sizes of an "
                              "IsoFLOP profile", "set grid.sizes_per_budget=null, or use grid.kind=isoflop")
        if self.sizes_per_budget is not None and self.sizes_per_budget < 3:
            raise ConfigError("grid.sizes_per_budget", f"{self.sizes_per_budget} sizes cannot make a profile with "
                              "a minimum inside it", "use 3 or more, or null for every size at every budget")
        if self.center_tokens_per_param <= 0:
            raise ConfigError("grid.center_tokens_per_param", f"{self.center_tokens_per_param} is not positive",
                              "e.g. 20 (Hoffmann et al.'s ratio) or the ratio a pilot sweep found")
        if self.min_steps < 1:
            raise ConfigError("grid.min_steps", f"{self.min_steps} is below 1", "use 1 (no floor) or more")
        if self.warmup_fraction is not None and not 0 <= self.warmup_fraction < 1:
            raise ConfigError("grid.warmup_fraction", f"{self.warmup_fraction} not in [0, 1)", "e.g. 0.1 or null")


@dataclass(frozen=True)
class GridPoint:
    id: str
    config: TrainConfig
    raw: dict[str, Any]
    """The resolved config as a plain mapping (what is frozen to disk)."""
    grid: dict[str, Any]
    """Where the point sits in the grid (size label, nominal budgets, seed)."""


def shape_for_target(target_params: int, base: ModelConfig, aspect_ratio: float, head_dim: int) -> SizeSpec:
    """The (layers, width) nearest ``target_params`` non-embedding parameters at the given aspect ratio."""
    layers_guess = (target_params / (12 * aspect_ratio**2)) ** (1 / 3)
    best, best_err = None, math.inf
    for layers in range(max(1, math.floor(layers_guess) - 1), math.ceil(layers_guess) + 2):
        for heads in range(1, 4 * max(1, round(aspect_ratio * layers / head_dim)) + 2):
            cfg = dataclasses.replace(base, num_layers=layers, d_model=heads * head_dim, num_heads=heads)
            err = abs(math.log(count_params(cfg).non_embedding / target_params)) + 0.1 * abs(
                math.log(heads * head_dim / (aspect_ratio * layers)))
            if err < best_err:
                best, best_err = SizeSpec(name=None, num_layers=layers, d_model=heads * head_dim, num_heads=heads), err
    assert best is not None
    return best


def _sizes(grid: GridConfig, base: ModelConfig) -> list[SizeSpec]:
    sizes = list(grid.sizes) + [shape_for_target(t, base, grid.aspect_ratio, grid.head_dim) for t in grid.size_targets]
    return [SizeSpec(name=s.name or f"{s.num_layers}x{s.d_model}", num_layers=s.num_layers, d_model=s.d_model,
                     num_heads=s.num_heads) for s in sizes]


def _batch(batch_tokens: float, seq_len: int, micro_batch: int) -> tuple[int, int]:
    """Round a batch size in tokens to whole micro-batches of whole sequences: (batch_tokens, micro_batch_size)."""
    sequences = max(1, round(batch_tokens / seq_len))
    micro = min(micro_batch, sequences)
    sequences = micro * max(1, round(sequences / micro))
    return sequences * seq_len, micro


def _window(grid: GridConfig, tokens_per_param: list[list[float]], budget_index: int, long_enough: list[list[bool]],
            names: list[str]) -> set[int]:
    """The sizes (indices in order of N) that train at isoflop budget ``budget_index``: ``sizes_per_budget``
    consecutive sizes, among those that train at least ``min_steps`` steps at this budget, centred on the ratio nearest
    ``center_tokens_per_param``. A window that min_steps cuts short at the top, or that the grid's sizes cannot
    centre, is logged: its profile's optimum may lie at its edge."""
    if grid.sizes_per_budget is None:
        return set(range(len(tokens_per_param)))
    k, budget = grid.sizes_per_budget, grid.budgets_flops[budget_index]
    eligible = [i for i, ok in enumerate(long_enough) if ok[budget_index]]
    if len(eligible) < 3:
        raise ConfigError("grid.min_steps", f"only {len(eligible)} size(s) train {grid.min_steps} steps or more at "
                          f"{budget:g} FLOPs; a profile needs 3",
                          "lower budget.batch_tokens or grid.min_steps, add smaller sizes, or raise the budget")

    def centred(candidates: list[int]) -> list[int]:
        ratios = [tokens_per_param[i][budget_index] for i in candidates]
        center = _nearest(ratios, grid.center_tokens_per_param)
        first = min(max(0, center - k // 2), max(0, len(ratios) - k))
        return candidates[first:first + k]

    window = centred(eligible)
    _warn_if_off_centre(grid, k, [r[budget_index] for r in tokens_per_param], budget, names)
    cut = [i for i in centred(list(range(len(tokens_per_param)))) if i > window[-1]]
    if cut:
        log.warning("isoflop window at %g FLOPs: %s left out, under grid.min_steps=%d steps; its profile holds %d "
                    "sizes up to %s, and its optimum may lie at that edge (raise the budget or lower "
                    "budget.batch_tokens)", budget, ", ".join(names[i] for i in cut), grid.min_steps, len(window),
                    names[window[-1]])
    return set(window)


def _nearest(ratios: list[float], target: float) -> int:
    """Index of the tokens-per-parameter ratio nearest ``target`` on a log scale."""
    return min(range(len(ratios)), key=lambda i: abs(math.log(ratios[i] / target)))


def _warn_if_off_centre(grid: GridConfig, k: int, ratios: list[float], budget: float, names: list[str]) -> None:
    """Log a budget whose window of ``k`` sizes the grid cannot centre: the size nearest the target ratio has fewer
    than k // 2 of the grid's sizes below it or k - 1 - k // 2 above, so the profile's optimum may sit at an edge."""
    center = _nearest(ratios, grid.center_tokens_per_param)
    for side, have, want, fix in (("below", center, k // 2, "smaller"),
                                  ("above", len(ratios) - 1 - center, k - 1 - k // 2, "larger")):
        if have < want:
            log.warning("isoflop window at %g FLOPs is not centred: %s, the size nearest %g tokens per parameter, has "
                        "%d of the grid's sizes %s it where %d are wanted; its optimum may lie at the window's edge "
                        "(add %s sizes to grid.sizes)", budget, names[center], grid.center_tokens_per_param, have,
                        side, want, fix)


def expand(grid: GridConfig, base_raw: dict[str, Any]) -> list[GridPoint]:
    """Every point of the grid as a validated, fully resolved config. Errors name the point."""
    base = parse(ModelConfig, base_raw["model"], "model.")
    specs = _sizes(grid, base)
    models = [dataclasses.replace(base, num_layers=s.num_layers, d_model=s.d_model, num_heads=s.num_heads)
              for s in specs]
    sizes = sorted(zip(specs, models), key=lambda sm: count_params(sm[1]).total)
    isoflop_ratios = [[c / flops_per_token(m, grid.flop_convention) / count_params(m).total
                       for c in grid.budgets_flops] for _, m in sizes]
    long_enough = [[_steps(grid, base_raw, s, m, c / flops_per_token(m, grid.flop_convention)) >= grid.min_steps
                    for c in grid.budgets_flops] for s, m in sizes]
    windows = [_window(grid, isoflop_ratios, j, long_enough, [s.name for s, _ in sizes])
               for j in range(len(grid.budgets_flops))] if grid.kind == "isoflop" else []
    points: list[GridPoint] = []
    for size_index, (size, model) in enumerate(sizes):
        n_total = count_params(model).total
        fpt = flops_per_token(model, grid.flop_convention)
        if grid.kind == "cartesian":
            budgets = [(float(t), {"budget_tokens": int(t)}) for t in grid.budgets_tokens]
        elif grid.kind == "isoflop":
            budgets = [(c / fpt, {"budget_flops": float(c)}) for j, c in enumerate(grid.budgets_flops)
                       if size_index in windows[j]]
        else:
            budgets = [(k * n_total, {"budget_tokens_per_param": float(k)}) for k in grid.tokens_per_param]
        untuned = {"lr_factor": 1.0, "batch_factor": 1.0, "beta2": base_raw["optim"]["beta2"]}
        variants = grid.tune.variants(untuned["beta2"])
        for (tokens, where), seed, tune in itertools.product(budgets, grid.seeds, variants):
            point = _point(grid, base_raw, size, model, tokens, where, seed, tune)
            if len(variants) > 1:  # one (N, D) cell, several settings: the fit keeps the cell's best run
                point.grid.update({f"tune_{k}": v for k, v in tune.items()}, untuned=tune == untuned,
                                  cell=f"{size.name} {next(iter(where.values())):g} seed {seed}")
            points.append(point)
    if grid.branched:
        points = _branch(points, grid.warmup_fraction)
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ConfigError("grid", "two grid points resolve to the same run", "remove duplicate sizes or budgets")
    return points


def _size_rule(grid: GridConfig, raw: dict[str, Any], size: SizeSpec, model: ModelConfig, tokens: float) -> None:
    """Set the learning rate and batch of ``hparam_rule`` in ``raw`` for this size at ``tokens``."""
    if grid.hparam_rule == "deepseek":
        compute = tokens * flops_per_token(model, grid.flop_convention)
        raw["optim"]["lr"] = 0.3118 * compute**-0.125
        raw["budget"]["batch_tokens"], raw["budget"]["micro_batch_size"] = _batch(
            0.2920 * compute**0.3271, model.seq_len, raw["budget"]["micro_batch_size"])
    elif grid.hparam_rule == "lr_inverse_width":
        raw["optim"]["lr"] = raw["optim"]["lr"] * grid.base_width / size.d_model


def _steps(grid: GridConfig, base_raw: dict[str, Any], size: SizeSpec, model: ModelConfig, tokens: float) -> int:
    """Optimizer steps of this size at ``tokens`` under the size rule's batch (before any tuning factor)."""
    raw = {"optim": dict(base_raw["optim"]), "budget": dict(base_raw["budget"])}  # all the size rule sets
    _size_rule(grid, raw, size, model, tokens)
    return max(1, round(tokens / raw["budget"]["batch_tokens"]))


def _point(grid: GridConfig, base_raw: dict[str, Any], size: SizeSpec, model: ModelConfig, tokens: float,
           where: dict[str, float], seed: int, tune: dict[str, float]) -> GridPoint:
    """One point: the base config at this size, budget and seed, with the size rule's and the tuning's settings."""
    raw = copy.deepcopy(base_raw)
    raw["seed"] = seed
    raw["model"].update(num_layers=size.num_layers, d_model=size.d_model, num_heads=size.num_heads)
    fpt = flops_per_token(model, grid.flop_convention)
    _size_rule(grid, raw, size, model, tokens)
    raw["optim"]["lr"] *= tune["lr_factor"]
    raw["optim"]["beta2"] = tune["beta2"]
    if tune["batch_factor"] != 1.0:
        raw["budget"]["batch_tokens"], raw["budget"]["micro_batch_size"] = _batch(
            raw["budget"]["batch_tokens"] * tune["batch_factor"], model.seq_len, raw["budget"]["micro_batch_size"])
    # Round the budget to whole steps so nominal and actual tokens agree; less than one step is an error (raised
    # below by the budget's own validation).
    batch_tokens = raw["budget"]["batch_tokens"]
    raw["budget"]["tokens"] = round(tokens / batch_tokens) * batch_tokens or int(tokens)
    if grid.warmup_fraction is not None:
        raw["optim"]["warmup_steps"] = math.ceil(grid.warmup_fraction * raw["budget"]["tokens"] / batch_tokens)
    label = "grid point " + " ".join([size.name, *(f"{k}={v:g}" for k, v in where.items()), f"seed {seed}"])
    try:
        cfg = load_train_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{label}: {e.field_path}", e.problem, e.fix) from None
    if cfg.num_steps < grid.min_steps:
        raise ConfigError(f"{label}: grid.min_steps", f"{cfg.num_steps} steps, fewer than {grid.min_steps}",
                          "lower budget.batch_tokens, drop the size from this budget, or lower grid.min_steps")
    n_total = count_params(model).total
    ranks = grid.ranks.of(n_total)
    if cfg.grad_accum_steps % ranks:
        raise ConfigError(f"{label}: grid.ranks", f"its {cfg.grad_accum_steps} micro-batches per step do not split "
                          f"over {ranks} ranks", "make budget.batch_tokens / (micro_batch_size x seq_len) a multiple "
                          "of the ranks, e.g. a smaller budget.micro_batch_size")
    info = {"size": size.name, "num_layers": size.num_layers, "d_model": size.d_model, "num_heads": size.num_heads,
            "params_non_embedding": count_params(model).non_embedding, "params_total": n_total,
            "budget_tokens": raw["budget"]["tokens"], "compute": raw["budget"]["tokens"] * fpt,
            "tokens_per_param": raw["budget"]["tokens"] / n_total, "seed": seed,
            "flop_convention": grid.flop_convention, "cost_tokens": raw["budget"]["tokens"],
            "ranks": ranks, **where}
    return GridPoint(id=run_id(cfg), config=cfg, raw=raw, grid=info)


def _branch(points: list[GridPoint], warmup_fraction: float | None) -> list[GridPoint]:
    """The points of each (size, seed, setting) as one trunk (the longest) and cooldown branches off it (module
    docstring)."""
    if points[0].config.optim.schedule != "wsd":
        raise ConfigError("grid.branched", f"branches need a schedule that is flat until its decay, not "
                          f"{points[0].config.optim.schedule!r}", "optim=adamw_wsd (or grid.branched=false)")
    groups: dict[tuple, list[GridPoint]] = {}
    for p in points:  # one trunk per size, seed and tuned setting
        key = (p.grid["size"], p.grid["seed"], *(p.grid.get(f"tune_{k}") for k in ("lr_factor", "batch_factor",
                                                                                  "beta2")))
        groups.setdefault(key, []).append(p)
    out = []
    for group in groups.values():
        group.sort(key=lambda p: p.config.num_steps)
        warmup = (math.ceil(warmup_fraction * group[0].config.num_steps) if warmup_fraction is not None
                  else group[0].config.optim.warmup_steps)
        for p in group:
            p.raw["optim"]["warmup_steps"] = warmup
        trunk = group[-1]
        trunk_id = run_id(load_train_config(trunk.raw))
        starts = [p.config.optim.decay_start(p.config.num_steps) for p in group[:-1]]
        trunk.raw["checkpoint"]["branch_steps"] = sorted(set(starts))
        for p, start in zip(group[:-1], starts):
            if start <= warmup:
                raise ConfigError(f"grid point {p.grid['size']} {p.config.budget.tokens} tokens: grid.branched",
                                  f"its decay starts at step {start}, within the size's {warmup}-step warmup",
                                  "raise the smallest budget or lower grid.warmup_fraction")
            p.raw["branch"] = {"trunk": trunk_id, "step": start}
        for p in group:
            cfg = load_train_config(p.raw)
            start = p.raw["branch"]["step"] if p is not trunk else 0
            info = {**p.grid, "cost_tokens": p.config.budget.tokens - start * p.config.budget.batch_tokens,
                    "branch_of": p.raw["branch"]["trunk"] if p is not trunk else None, "branch_step": start}
            out.append(GridPoint(id=run_id(cfg), config=cfg, raw=p.raw, grid=info))
    return out


def plan_table(points: list[GridPoint], tokens_per_s: dict[str, float] | None = None) -> str:
    """The dry-run table: params by component, tokens, FLOPs, tokens/param, steps, LR, batch, estimated time. Each
    column is as wide as its widest entry, so a budget far beyond the defaults still reads as columns."""
    header = ["id", "size", "seed", "N non-emb", "N emb", "N total", "tokens", "FLOPs", "D/N tot", "steps", "lr",
              "batch", "est. s"]
    rows, total_s = [], 0.0
    for p in points:
        params = count_params(p.config.model)
        est = ""
        if tokens_per_s and p.grid["size"] in tokens_per_s:
            seconds = p.grid["cost_tokens"] / tokens_per_s[p.grid["size"]]
            total_s += seconds
            est = f"{seconds:.0f}"
        rows.append([p.id, p.grid["size"], str(p.config.seed), f"{params.non_embedding:,}", f"{params.embedding:,}",
                     f"{params.total:,}", f"{p.config.budget.tokens:,}", f"{p.grid['compute']:.2e}",
                     f"{p.grid['tokens_per_param']:.1f}", str(p.config.num_steps), f"{p.config.optim.lr:.2e}",
                     str(p.config.budget.batch_tokens), est])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:  # id and size read left to right, numbers line up on their last digit
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [line(header), "-" * len(line(header)), *map(line, rows)]
    branches = [p for p in points if p.grid.get("branch_of")]
    if branches:
        trained = sum(p.grid["compute"] * p.grid["cost_tokens"] / p.config.budget.tokens for p in points)
        lines.append(f"{len(branches)} cooldown branches: the study trains {trained:.3g} FLOPs, "
                     f"{trained / sum(p.grid['compute'] for p in points):.2f} of its points trained independently")
    lines.append(f"{len(points)} points; FLOPs under {points[0].grid['flop_convention']}"
                 + (f"; estimated {total_s / 60:.1f} min of training on one worker" if tokens_per_s else ""))
    return "\n".join(lines)
