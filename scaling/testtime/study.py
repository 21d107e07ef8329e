"""The test-time compute study over a trained sweep of task models (``python sweep.py experiment=testtime``).

For every finished model of the sweep (Snell et al. 2024 on the project's own models):

1. sample n solutions per test problem (the scoring draw) and an independent draw for difficulty bins;
2. train an ORM and a PRM, sized as a fraction of the policy, on its samples of training problems;
3. score: parallel strategies (majority, best-of-N, weighted best-of-N under each verifier and PRM aggregation);
4. search with the PRM: beam search, lookahead search and DVTS, beam width √N;
5. fine-tune a revision model from the policy and sample chains of revisions;
6. decode greedily (the large side of the exchange).

Every strategy is measured per problem twice, process-correct (primary) and answer-correct. ``analysis`` turns the
per-problem results into bins, cross-validated policies and the exchange; ``report`` into figures and report.md.
Results: ``<sweep>/testtime/`` (results.json, samples per model, figures, report.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from scaling import sweepdir
from scaling.config import (ConfigError, ModelConfig, TaskConfig, check_at_least, check_device, check_lr, check_seed,
                            load_train_config)
from scaling.flops import count_params, matmul_params
from scaling.hardware import device_named
from scaling.io import atomic_write_json, atomic_write_text, read_json
from scaling.logs import setup_logging
from scaling.testtime import analysis, revision
from scaling.testtime.cost import decode_flops, sampling_flops, scoring_flops
from scaling.testtime.sampling import Policy, by_length, perturbed_samples, sample_problems
from scaling.testtime.search import Search, search
from scaling.testtime.strategies import make_subsets, pass_at_k, subset_accuracy
from scaling.testtime.task import Problem, check, generate, held_out_problems
from scaling.testtime.verifier import (AGGREGATIONS, TrainedVerifier, aggregate, initial_trunk, labels_for,
                                       train_verifier, verifier_shape)

log = logging.getLogger(__name__)

PARALLEL = {"majority": ("majority", None), "best_of_n_orm": ("best_of_n", "orm"), "weighted_orm": ("weighted", "orm"),
            "best_of_n_prm": ("best_of_n", "prm_last"), "weighted_prm": ("weighted", "prm_last"),
            "weighted_prm_min": ("weighted", "prm_min"), "weighted_prm_prod": ("weighted", "prm_prod")}
"""Parallel strategies: (selection, score). ``weighted_prm`` aggregates the PRM by the last line."""


@dataclass(frozen=True, kw_only=True)
class VerifierConfig:
    init: Literal["policy", "scratch"]
    """``policy``: fine-tune the policy's trunk with ``added_layers`` blocks on top (Snell et al. fine-tune their
    verifiers from the base model); ``scratch``: a model of the policy's depth and ``params_fraction`` of its
    parameters. The report states each verifier's size as a fraction of its policy's."""
    added_layers: int
    params_fraction: float
    steps: int
    lr: float
    train_problems: int
    """Training problems (every test length, none of them a test problem) the policy solves to make the verifiers'
    (and the revision model's) data."""
    samples_per_problem: int
    likelihood: bool
    """The verifiers also read each token's log-probability under the policy (see ``verifier``)."""
    perturbed: float
    """The fraction of the verifiers' training samples that also get a perturbed twin: a wrong residue at a random
    blank, continued by the policy (a strong policy's own samples hold few errors to learn from)."""

    def __post_init__(self) -> None:
        for name in ("steps", "train_problems", "samples_per_problem"):
            check_at_least(f"testtime.verifier.{name}", getattr(self, name), 1, "use 1 or more")
        check_at_least("testtime.verifier.added_layers", self.added_layers, 0, "use 0 or more, e.g. 2")
        check_lr(self.lr, "testtime.verifier.lr")


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    budgets: list[int]
    """Generation budgets N of the searches; the beam width is √N (each N a perfect square)."""
    lookahead: list[int]
    """Lookahead depths k (greedy rollouts; Snell et al. use k = 1, 3)."""
    dvts: bool

    def __post_init__(self) -> None:
        if any(k < 1 for k in self.lookahead):
            raise ConfigError("testtime.search.lookahead", f"{self.lookahead} holds a depth below 1 (depth 0 is beam "
                              "search, which the study runs anyway)", "use depths of 1 or more, e.g. [1, 3]")


@dataclass(frozen=True, kw_only=True)
class RevisionConfig:
    budgets: list[int]
    """Generation budgets N; each splits into N/s chains of s revisions for every power of two s ≤ N."""
    context_attempts: int
    """Earlier attempts a revision reads (Snell et al. use 4)."""
    steps: int
    lr: float
    batch_size: int

    def __post_init__(self) -> None:
        for name in ("context_attempts", "steps", "batch_size"):
            check_at_least(f"testtime.revisions.{name}", getattr(self, name), 1, "use 1 or more")
        check_lr(self.lr, "testtime.revisions.lr")


@dataclass(frozen=True, kw_only=True)
class TestTimeConfig:
    samples_per_problem: int
    """n: samples per test problem that strategies are scored on (every budget k ≤ n is estimated from them)."""
    bin_samples: int
    """An independent draw per test problem that only assigns difficulty bins."""
    budgets: list[int]
    """Generation budgets k of the parallel strategies."""
    temperature: float
    subsets: int
    """Random size-k subsets averaged per estimate."""
    verifier: VerifierConfig
    search: SearchConfig
    revisions: RevisionConfig
    device: str
    """Where the study samples and trains: ``cpu``, ``cuda``, or ``auto`` (a GPU when there is one)."""
    exchange_ratios: list[float]
    """R = inference tokens / pretraining tokens of the small model (Snell et al. use 0.16, 0.79, 22)."""
    seed: int

    def __post_init__(self) -> None:
        for name in ("samples_per_problem", "bin_samples", "subsets"):
            check_at_least(f"testtime.{name}", getattr(self, name), 1, "use 1 or more")
        check_device(self.device, "testtime.device")
        check_seed(self.seed, "testtime.seed")
        if any(r <= 0 for r in self.exchange_ratios):
            raise ConfigError("testtime.exchange_ratios", f"{self.exchange_ratios} holds a ratio of 0 or below",
                              "use positive ratios of inference to pretraining tokens, e.g. [0.16, 0.79, 22]")
        if not self.budgets or min(self.budgets) < 1:
            raise ConfigError("testtime.budgets", f"{self.budgets}: every budget k is a number of samples, 1 or more",
                              "e.g. [1, 2, 4, 8]")
        # Greedy decoding (0) gives one sample per problem; below 0 there is no distribution to sample.
        if not self.temperature > 0:
            raise ConfigError("testtime.temperature", f"{self.temperature}: the study draws several samples per "
                              "problem, which needs a positive temperature", "e.g. 0.8")
        if not 0 <= self.verifier.perturbed <= 1:
            raise ConfigError("testtime.verifier.perturbed", f"{self.verifier.perturbed} is not in [0, 1]",
                              "use a fraction such as 0.25, or 0 for the policy's own samples only")
        if not 0 < self.verifier.params_fraction <= 1:
            raise ConfigError("testtime.verifier.params_fraction", f"{self.verifier.params_fraction} is not in (0, 1]",
                              "use a fraction such as 0.5 (it sizes a verifier trained from scratch)")
        if max(self.budgets) > self.samples_per_problem:
            raise ConfigError("testtime.budgets", f"budget {max(self.budgets)} exceeds samples_per_problem",
                              "raise testtime.samples_per_problem or lower the budgets")
        for n in self.search.budgets:
            if math.isqrt(n) ** 2 != n or n < 4:
                raise ConfigError("testtime.search.budgets", f"{n} is not a perfect square ≥ 4 (beam width √N)",
                                  "use budgets such as [4, 16, 64]")
        if any(n & (n - 1) for n in self.revisions.budgets):
            raise ConfigError("testtime.revisions.budgets", f"{self.revisions.budgets} holds a non-power of two",
                              "use powers of two, e.g. [1, 2, 4, 8]")


def searches(cfg: SearchConfig) -> list[Search]:
    out = []
    for n in cfg.budgets:
        width = math.isqrt(n)
        out += [Search("beam", n, width)] + [Search("lookahead", n, width, k) for k in cfg.lookahead]
        out += [Search("dvts", n, width)] if cfg.dvts else []
    return out


def _layout_batches(policy: Policy, rows: list[dict], kind: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Verifier training batches, one layout (problem length) each."""
    out = []
    for length in sorted({r["length"] for r in rows}):
        chosen = [r for r in rows if r["length"] == length]
        ids = policy.encode([r["prompt"] + r["completion"] for r in chosen])
        target = labels_for(ids, chosen, kind)
        for start in range(0, len(chosen), 64):
            out.append((ids[start:start + 64], target[start:start + 64]))
    return out


def _scores(policy: Policy, orm: TrainedVerifier, prm: TrainedVerifier, rows: list[dict]) -> None:
    """Add each row's ORM score and PRM line scores (and their aggregations)."""
    for length in sorted({r["length"] for r in rows}):
        chosen = [r for r in rows if r["length"] == length]
        ids = policy.encode([r["prompt"] + r["completion"] for r in chosen])
        lines = prm.line_scores(ids, chosen[0]["prompt"] + chosen[0]["completion"]).numpy()
        for r, o, line in zip(chosen, orm.score(ids).numpy(), lines):
            r["orm"], r["prm_lines"] = float(o), [float(x) for x in line]
            for how in AGGREGATIONS:
                r[f"prm_{how}"] = float(aggregate(line[None], how)[0])


def _grid(rows: list[dict], problems: int, n: int, key: str) -> np.ndarray:
    out = np.zeros((problems, n))
    for r in rows:
        out[r["problem"], r["sample"]] = -1 if r[key] is None else r[key]
    return out


def _prm_scorer(policy: Policy, prm: TrainedVerifier):
    def score(problems: list[Problem], texts: list[str]) -> np.ndarray:
        return prm.score(policy.encode(texts)).numpy()

    return score


def study_model(run_dir: Path, problems: list[Problem], train_pool: list[Problem], cfg: TestTimeConfig,
                train_max_steps: int, out_dir: Path, device: str) -> dict[str, Any]:
    """Everything measured for one trained model, per problem."""
    train_cfg = load_train_config(sweepdir.read_frozen(run_dir / "config.yaml", fix="copy the point's config from the "
                                                       "sweep's points/ directory into the run's"))
    model_cfg: ModelConfig = train_cfg.model
    summary = read_json(run_dir / "summary.json")
    policy = Policy.load(run_dir, device)
    n, num_problems = cfg.samples_per_problem, len(problems)
    rows = sample_problems(policy, problems, n, cfg.temperature, cfg.seed)
    bin_rows = sample_problems(policy, problems, cfg.bin_samples, cfg.temperature, cfg.seed + 99991)
    v = cfg.verifier
    vrows = sample_problems(policy, train_pool, v.samples_per_problem, cfg.temperature, cfg.seed + 1)
    examples = vrows + perturbed_samples(policy, vrows, train_pool, v.perturbed, cfg.temperature, cfg.seed + 2)
    vcfg = verifier_shape(model_cfg, v.init, v.params_fraction, v.added_layers)
    orm, prm = (train_verifier(kind, _layout_batches(policy, examples, kind),
                               initial_trunk(policy.model, model_cfg, v.init, v.params_fraction, v.added_layers)[0],
                               vcfg, policy.model, v.likelihood, v.steps, v.lr, cfg.seed, device)
                for kind in ("orm", "prm"))
    _scores(policy, orm, prm, rows)
    _scores(policy, orm, prm, bin_rows)
    with open(out_dir / f"samples-{run_dir.name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    answers = _grid(rows, num_problems, n, "answer").astype(int)
    answer_ok, process_ok = (_grid(rows, num_problems, n, k).astype(bool) for k in ("correct", "process_correct"))
    scores = {k: _grid(rows, num_problems, n, k) for k in ("orm", "prm_last", "prm_min", "prm_prod")}
    subsets = make_subsets(n, cfg.subsets, cfg.seed)
    acc: dict[str, dict[str, dict[int, np.ndarray]]] = {"process": {}, "answer": {}}
    for kind, ok in (("process", process_ok), ("answer", answer_ok)):
        acc[kind]["coverage"] = {k: np.array([pass_at_k(n, int(c), k) for c in ok.sum(1)]) for k in cfg.budgets}
    for name, (how, score_kind) in PARALLEL.items():
        s = scores[score_kind] if score_kind else np.ones((num_problems, n))
        for kind in ("process", "answer"):
            acc[kind][name] = {}
        for k in cfg.budgets:
            both = np.array([subset_accuracy(answers[i], s[i], answer_ok[i], process_ok[i], k, how, subsets)
                             for i in range(num_problems)])
            acc["answer"][name][k], acc["process"][name][k] = both[:, 0], both[:, 1]

    prompt_len = len(problems[0].prompt)
    completion = np.array([p.completion_chars for p in problems])
    likelihood_of = model_cfg if v.likelihood else None

    def parallel_flops(k: int, verified: bool) -> float:
        """Mean FLOPs of k samples per problem, and of the verifier judging them when one is used."""
        return float(np.mean([sampling_flops(model_cfg, prompt_len, c, k)
                              + (scoring_flops(vcfg, prompt_len, c, k, likelihood_of) if verified else 0.0)
                              for c in completion]))

    flops = {name: {k: parallel_flops(k, name in PARALLEL and PARALLEL[name][1] is not None) for k in cfg.budgets}
             for name in acc["process"]}

    score = _prm_scorer(policy, prm)
    groups = by_length(problems)
    for plan in searches(cfg.search):
        result = {"process": np.zeros(num_problems), "answer": np.zeros(num_problems),
                  "explored": np.zeros(num_problems)}
        spent = 0.0
        for length, idx in groups.items():
            found, per_problem = search(plan, policy, score, [problems[i] for i in idx], cfg.temperature,
                                        cfg.seed + plan.budget, model_cfg, vcfg)
            result["process"][idx] = [r["process_correct"] for r in found]
            result["answer"][idx] = [r["correct"] for r in found]
            result["explored"][idx] = [r["explored_process_correct"] for r in found]
            spent += per_problem * len(idx)
        for kind in ("process", "answer"):
            acc[kind].setdefault(plan.name, {})[plan.budget] = result[kind]
        flops.setdefault(plan.name, {})[plan.budget] = spent / num_problems

    revisions = revision_study(policy, prm, problems, train_pool, vrows, cfg, model_cfg, vcfg, train_max_steps)
    greedy = sample_problems(policy, problems, 1, 0.0, cfg.seed)
    log.info("test-time study of %s: process pass@1 %.3f, coverage@%d %.3f, greedy %.3f", run_dir.name,
             acc["process"]["coverage"][1].mean(), max(cfg.budgets),
             acc["process"]["coverage"][max(cfg.budgets)].mean(), np.mean([r["process_correct"] for r in greedy]))
    bin_ok = _grid(bin_rows, num_problems, cfg.bin_samples, "process_correct")
    return {
        "run_id": run_dir.name, "params_matmul": matmul_params(model_cfg),
        "params_non_embedding": summary["params"]["non_embedding"], "tokens": summary["tokens"],
        "pretrain_flops": summary["flops"]["6n_attention"],
        "inference_flops_per_token": 2.0 * matmul_params(model_cfg),
        "verifier": {"params_non_embedding": count_params(vcfg).non_embedding,
                     "params_fraction": count_params(vcfg).non_embedding / summary["params"]["non_embedding"],
                     "d_model": vcfg.d_model, "inference_flops_per_token": 2.0 * count_params(vcfg).non_embedding,
                     "train_flops": orm.train_flops + prm.train_flops,
                     "train_flops_by_kind": {"orm": orm.train_flops, "prm": prm.train_flops},
                     "train_seconds": orm.train_seconds + prm.train_seconds,
                     "quality": analysis.verifier_quality(rows)},
        "acc": acc, "flops": flops, "revisions": revisions,
        "greedy": {"process": np.array([r["process_correct"] for r in greedy], dtype=float),
                   "answer": np.array([r["correct"] for r in greedy], dtype=float),
                   "flops": parallel_flops(1, False)},
        "bin_pass1": bin_ok.mean(1), "bin_predicted": _grid(bin_rows, num_problems, cfg.bin_samples,
                                                            "prm_last").mean(1),
        "lengths": np.array([p.length for p in problems]),
        "tokens_per_question": float(prompt_len + completion.mean()),
    }


def revision_study(policy: Policy, prm: TrainedVerifier, problems: list[Problem], train_pool: list[Problem],
                   vrows: list[dict], cfg: TestTimeConfig, model_cfg: ModelConfig, vcfg: ModelConfig,
                   train_max_steps: int) -> dict[str, Any]:
    """Fine-tune the revision model, sample its chains, and score every (budget, chain length) split."""
    rc = cfg.revisions

    def chains_of(reference: bool) -> list[tuple[Problem, list[str], str]]:
        # The revision model writes solutions, so like the policy it learns only the training lengths: what it
        # writes beyond them is revision, not fine-tuning on the test's lengths.
        return [c for c in revision.revision_chains(train_pool, vrows, rc.context_attempts, cfg.seed, reference)
                if c[0].length <= train_max_steps]

    chains, targets = chains_of(reference=False), "own samples"
    if len(chains) < rc.batch_size:  # not one batch of chains: Snell et al.'s recipe has too little to train on
        log.warning("the policy solved %d training problems: its revision model trains on worked solutions",
                    len(chains))
        chains, targets = chains_of(reference=True), "worked solutions"
    reviser = revision.fine_tune(policy, chains, rc.steps, rc.lr, rc.batch_size, model_cfg, cfg.seed)
    longest = max(rc.budgets)
    num_problems = len(problems)
    answers = np.full((num_problems, longest, longest), -1)
    answer_ok = np.zeros((num_problems, longest, longest), dtype=bool)
    process_ok = np.zeros_like(answer_ok)
    prm_scores = np.zeros((num_problems, longest, longest))
    for length, idx in by_length(problems).items():
        group = [problems[i] for i in idx]
        pool = revision.sample_chains(reviser.policy, group, longest, longest, rc.context_attempts,
                                      cfg.temperature, cfg.seed + length)
        for i, p, problem_chains in zip(idx, group, pool):
            rows = [revision_row(p, c) for chain in problem_chains for c in chain]
            ids = policy.encode([p.prompt + c for chain in problem_chains for c in chain])
            prm_scores[i] = prm.score(ids).numpy().reshape(longest, longest)
            answers[i] = np.array([r[0] for r in rows]).reshape(longest, longest)
            answer_ok[i] = np.array([r[1] for r in rows]).reshape(longest, longest)
            process_ok[i] = np.array([r[2] for r in rows]).reshape(longest, longest)
    rng = np.random.default_rng(cfg.seed)
    acc: dict[str, dict[str, dict[str, np.ndarray]]] = {"process": {}, "answer": {}}
    flops: dict[str, dict[str, float]] = {}
    prompt_len = len(problems[0].prompt)
    for n in rc.budgets:
        s = 1
        while s <= n:
            picks = [rng.choice(longest, size=n // s, replace=False) for _ in range(cfg.subsets)]
            for how, name in revision.SELECTIONS.items():
                hits = np.zeros((num_problems, 2))
                for i in range(num_problems):
                    for chosen in picks:
                        picked = revision.select_in_chains(answers[i][chosen, :s], prm_scores[i][chosen, :s], how)
                        if picked is not None:
                            hits[i] += answer_ok[i][chosen, :s][picked], process_ok[i][chosen, :s][picked]
                hits /= len(picks)
                key = f"{name}_s{s}"
                acc["answer"].setdefault(key, {})[str(n)] = hits[:, 0]
                acc["process"].setdefault(key, {})[str(n)] = hits[:, 1]
                chain_cost = np.mean([revision.chain_flops(model_cfg, prompt_len, p.completion_chars, s,
                                                           rc.context_attempts) for p in problems])
                verify = (np.mean([scoring_flops(vcfg, prompt_len, p.completion_chars, n, None)
                                   + (n * decode_flops(model_cfg, 0, prompt_len + p.completion_chars, 1)
                                      if cfg.verifier.likelihood else 0.0)  # the policy re-reads the reviser's text
                                   for p in problems]) if how != "majority" else 0.0)
                flops.setdefault(key, {})[str(n)] = float(chain_cost * (n // s) + verify)
            s *= 2
    by_attempt = process_ok.mean(1).mean(0)  # pass@1 at each revision step, averaged over chains and problems
    return {"acc": acc, "flops": flops, "pass1_by_attempt": [float(x) for x in by_attempt],
            "train_flops": reviser.train_flops, "train_seconds": reviser.train_seconds, "chains": len(chains),
            "targets": targets}


def revision_row(problem: Problem, completion: str) -> tuple[int, bool, bool]:
    c = check(problem, completion)
    return (-1 if c.answer is None else c.answer), c.correct, c.process_correct


def measured(run_dir: Path, problems: list[Problem], pool: list[Problem], cfg: TestTimeConfig, task: TaskConfig,
             out_dir: Path, device: str) -> dict[str, Any]:
    """``study_model``'s record, kept under ``records/`` keyed by the study's settings and code, so that a study
    stopped after some models (or in its analysis) resumes without sampling them again."""
    code = [f.read_bytes().hex() for f in sorted(Path(__file__).parent.glob("*.py"))]
    key = hashlib.sha256(json.dumps([dataclasses.asdict(cfg), dataclasses.asdict(task), code], sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    path = out_dir / "records" / f"{run_dir.name}-{key}.pkl"
    if path.exists():
        log.info("test-time study of %s: measured before (%s)", run_dir.name, path)
        with open(path, "rb") as f:
            return pickle.load(f)  # the study's own output, written below
    record = study_model(run_dir, problems, pool, cfg, task.max_steps, out_dir, device)
    path.parent.mkdir(exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump(record, f)
    path.with_suffix(".tmp").replace(path)
    return record


def problem_sets(cfg: TestTimeConfig, task: TaskConfig) -> tuple[list[Problem], list[Problem]]:
    """The test problems, and the training problems the verifiers and the revision model learn from (none of them
    a test problem)."""
    problems = held_out_problems(task.modulus, task.test_max_steps, task.test_per_length, task.seed)
    pool = generate(cfg.verifier.train_problems, task.min_steps, task.test_max_steps, task.modulus,
                    seed=task.seed + 424242, exclude=frozenset(p.key for p in problems))
    return problems, pool


def measured_all(runs: list[Path], problems: list[Problem], pool: list[Problem], cfg: TestTimeConfig,
                 task: TaskConfig, out_dir: Path, device: str, cpu_workers: int) -> list[dict[str, Any]]:
    """Every model's record, in the order of ``runs``. On CPU up to ``cpu_workers`` models are studied side by
    side, each in a single-threaded process as the sweep's points run (each model's study is seeded on its own, so
    the records are those of one model after another); on a GPU, one after another."""
    workers = min(len(runs), cpu_workers) if device == "cpu" else 1
    log.info("test-time study: %d models on %s, %d at a time", len(runs), device, workers)
    if workers == 1:
        return [measured(r, problems, pool, cfg, task, out_dir, device) for r in runs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_study_process) as executor:
        return list(executor.map(measured, runs, *(repeat(a) for a in (problems, pool, cfg, task, out_dir, device))))


def _study_process() -> None:
    """A study worker: one thread (the other workers have the other cores) and the sweep's log lines."""
    torch.set_num_threads(1)
    setup_logging()


def run_study(sweep_dir: Path, cfg: TestTimeConfig, task: TaskConfig, cpu_workers: int) -> dict[str, Any]:
    """The study of every finished model of the sweep (on CPU up to ``cpu_workers`` models side by side); empty
    when none finished."""
    out_dir = sweep_dir / "testtime"
    out_dir.mkdir(parents=True, exist_ok=True)
    device = str(device_named(cfg.device, "testtime.device"))
    if device == "cpu":
        torch.set_num_threads(1)
    problems, pool = problem_sets(cfg, task)
    # The sweep's one reader validates the manifest's run ids before any path is built from them.
    runs = [sweepdir.run_dir(sweep_dir, p["id"]) for p in sweepdir.read_manifest(sweep_dir)["points"]
            if sweepdir.point_status(sweepdir.run_dir(sweep_dir, p["id"]))[0] == "finished"]
    if not runs:  # every point failed: the sweep says which and exits 1; there is nothing to study
        log.warning("test-time study: no point of %s finished; nothing to study", sweep_dir)
        return {}
    models = measured_all(runs, problems, pool, cfg, task, out_dir, device, cpu_workers)
    results = analysis.analyse(models, cfg, task)
    from scaling.testtime import report

    results["figures"] = report.figures(results, cfg, out_dir)
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "report.md", report.render(results, cfg))
    return results
