"""The test-time compute study over a trained sweep of task models (``python sweep.py experiment=testtime``).

For every finished model of the sweep: sample n solutions per test problem and check them exactly; train an ORM and
a PRM on the model's own samples of training problems; score; run PRM-guided beam search; then compare strategies per
generation budget and per inference-FLOP budget, per difficulty bin, pick the compute-optimal strategy per bin with
2-fold cross-validation, fit coverage laws, and weigh test-time compute against a larger model (the exchange).
Results: ``<sweep>/testtime/`` (results.json, samples per model, figures, report.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.config import ModelConfig, TaskConfig, load_train_config
from scaling.flops import matmul_params
from scaling.io import atomic_write_json, atomic_write_text, read_json
from scaling import sweepdir
from scaling.testtime import analysis
from scaling.testtime.cost import generation_flops, verifier_flops
from scaling.testtime.sampling import Policy, sample_problems
from scaling.testtime.search import beam_search
from scaling.testtime.strategies import make_subsets, pass_at_k, subset_accuracy
from scaling.testtime.task import Problem, generate, held_out_problems
from scaling.testtime.verifier import TrainedVerifier, labels_for, train_verifier

log = logging.getLogger(__name__)

SELECTIONS = {"majority": ("majority", None), "best_of_n_orm": ("best_of_n", "orm"),
              "weighted_orm": ("weighted", "orm"), "best_of_n_prm": ("best_of_n", "prm"),
              "weighted_prm": ("weighted", "prm")}


@dataclass(frozen=True, kw_only=True)
class VerifierConfig:
    num_layers: int
    d_model: int
    num_heads: int
    steps: int
    lr: float
    train_problems: int
    """Training problems the policy solves to make the verifiers' data."""
    samples_per_problem: int


@dataclass(frozen=True, kw_only=True)
class TestTimeConfig:
    samples_per_problem: int
    """n: stored samples per test problem (every budget k ≤ n is estimated from them)."""
    budgets: list[int]
    """Generation budgets k."""
    temperature: float
    subsets: int
    """Random size-k subsets averaged per estimate."""
    verifier: VerifierConfig
    beam_budgets: list[int]
    beam_widths: list[int]
    exchange_ratios: list[float]
    """R = inference tokens / pretraining tokens of the small model (Snell et al. use 0.16, 0.79, 22)."""
    seed: int

    def __post_init__(self) -> None:
        from scaling.config import ConfigError

        if max(self.budgets) > self.samples_per_problem:
            raise ConfigError("testtime.budgets", f"budget {max(self.budgets)} exceeds samples_per_problem",
                              "raise testtime.samples_per_problem or lower the budgets")


def _verifier_model(policy_model: ModelConfig, v: VerifierConfig) -> ModelConfig:
    return dataclasses.replace(policy_model, num_layers=v.num_layers, d_model=v.d_model, num_heads=v.num_heads,
                               d_ff=None)


def _batches(policy: Policy, rows: list[dict], kind: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Verifier training batches, one per problem length (one layout each)."""
    out = []
    for length in sorted({r["length"] for r in rows}):
        chosen = [r for r in rows if r["length"] == length]
        ids = policy.encode([r["prompt"] + r["completion"] for r in chosen])
        target = labels_for(ids, len(chosen[0]["prompt"]), chosen, kind)
        for start in range(0, len(chosen), 64):
            out.append((ids[start:start + 64], target[start:start + 64]))
    return out


def _score(policy: Policy, verifier: TrainedVerifier, rows: list[dict]) -> np.ndarray:
    scores = np.zeros(len(rows))
    by_length: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_length.setdefault(r["length"], []).append(i)
    for indices in by_length.values():
        ids = policy.encode([rows[i]["prompt"] + rows[i]["completion"] for i in indices])
        scores[indices] = verifier.score(ids).numpy()
    return scores


def study_model(run_dir: Path, problems: list[Problem], train_pool: list[Problem], cfg: TestTimeConfig,
                out_dir: Path) -> dict[str, Any]:
    """Everything measured for one trained model."""
    train_cfg = load_train_config(sweepdir.read_frozen(run_dir / "config.yaml"))
    summary = read_json(run_dir / "summary.json")
    policy = Policy.load(run_dir)
    n = cfg.samples_per_problem
    rows = sample_problems(policy, problems, n, cfg.temperature, cfg.seed)
    vrows = sample_problems(policy, train_pool[: cfg.verifier.train_problems], cfg.verifier.samples_per_problem,
                            cfg.temperature, cfg.seed + 1)
    vcfg = _verifier_model(train_cfg.model, cfg.verifier)
    verifiers = {kind: train_verifier(kind, _batches(policy, vrows, kind), vcfg, cfg.verifier.steps,
                                      cfg.verifier.lr, cfg.seed) for kind in ("orm", "prm")}
    for kind, verifier in verifiers.items():
        for row, score in zip(rows, _score(policy, verifier, rows)):
            row[kind] = float(score)
    with open(out_dir / f"samples-{run_dir.name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    num_problems = len(problems)
    answers = np.full((num_problems, n), -1)
    correct = np.zeros((num_problems, n), dtype=bool)
    scores = {k: np.zeros((num_problems, n)) for k in ("orm", "prm")}
    for r in rows:
        answers[r["problem"], r["sample"]] = -1 if r["answer"] is None else r["answer"]
        correct[r["problem"], r["sample"]] = r["correct"]
        for k in scores:
            scores[k][r["problem"], r["sample"]] = r[k]
    truth = np.array([p.answer for p in problems])
    subsets = make_subsets(n, cfg.subsets, cfg.seed)
    acc: dict[str, dict[int, np.ndarray]] = {"coverage": {}, **{s: {} for s in SELECTIONS}}
    for k in cfg.budgets:
        acc["coverage"][k] = np.array([pass_at_k(n, int(c), k) for c in correct.sum(1)])
        for name, (how, score_kind) in SELECTIONS.items():
            s = scores[score_kind] if score_kind else np.ones((num_problems, n))
            acc[name][k] = np.array([subset_accuracy(answers[i], s[i], truth[i], k, how, subsets)
                                     for i in range(num_problems)])

    # FLOPs per problem of one generation (prompt + completion, prefill not shared) and of one verifier score.
    gen = np.array([generation_flops(train_cfg.model, len(p.prompt), p.completion_chars, 1) for p in problems])
    score = np.array([verifier_flops(vcfg, len(p.prompt) + p.completion_chars, 1) for p in problems])
    flops = {name: {k: float((gen + (score if SELECTIONS.get(name, (None, None))[1] else 0)).mean() * k)
                    for k in cfg.budgets} for name in acc}

    prm = verifiers["prm"]
    for width in cfg.beam_widths:
        name = f"beam_prm_w{width}"
        acc[name], flops[name] = {}, {}
        for budget in cfg.beam_budgets:
            if budget < width or budget % width:
                continue
            result, spent = np.zeros(num_problems), 0.0
            for length in sorted({p.length for p in problems}):
                idx = [i for i, p in enumerate(problems) if p.length == length]
                found, per_problem = beam_search(policy, prm, [problems[i] for i in idx], budget, width,
                                                 cfg.temperature, cfg.seed + budget, train_cfg.model, vcfg)
                result[idx] = [r["correct"] for r in found]
                spent += per_problem * len(idx)
            acc[name][budget] = result
            flops[name][budget] = spent / num_problems
    log.info("test-time study of %s: pass@1 %.3f, coverage@%d %.3f", run_dir.name, acc["coverage"][1].mean(),
             max(cfg.budgets), acc["coverage"][max(cfg.budgets)].mean())
    return {
        "run_id": run_dir.name, "params_matmul": matmul_params(train_cfg.model),
        "params_non_embedding": summary["params"]["non_embedding"], "tokens": summary["tokens"],
        "pretrain_flops_6nd": 6.0 * matmul_params(train_cfg.model) * summary["tokens"],
        "verifier": {kind: {"train_flops": v.train_flops, "train_seconds": v.train_seconds,
                            "train_tokens": v.train_tokens, "params": matmul_params(vcfg)}
                     for kind, v in verifiers.items()},
        "acc": acc, "flops": flops, "predicted_difficulty": scores["orm"].mean(1),
        "lengths": np.array([p.length for p in problems]),
    }


def analyse(models: list[dict[str, Any]], cfg: TestTimeConfig, train_max_steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"models": []}
    for m in models:
        num_problems = len(m["lengths"])
        folds = np.random.default_rng(cfg.seed).permutation(num_problems) % 2
        oracle_bins = analysis.difficulty_bins(m["acc"]["coverage"][1])
        predicted_bins = analysis.difficulty_bins(m["predicted_difficulty"])
        strategies = [s for s in m["acc"] if s != "coverage"]
        curves = {s: {str(k): float(v.mean()) for k, v in m["acc"][s].items()} for s in m["acc"]}
        per_bin = {s: {str(k): [float(v[oracle_bins == b].mean()) for b in range(1, 6)]
                       for k, v in m["acc"][s].items()} for s in m["acc"]}
        policy_rows = []
        for k in cfg.budgets:
            candidates = {s: m["acc"][s][k] for s in strategies if k in m["acc"][s]}
            for label, bins in (("oracle", oracle_bins), ("predicted", predicted_bins)):
                policy, fixed, chosen = analysis.cross_validated_policy(candidates, bins, folds)
                policy_rows.append({"budget": k, "bins": label, "policy": float(policy.mean()),
                                    "fixed": float(fixed.mean()),
                                    "policy_minus_fixed_ci95": analysis.bootstrap_ci(policy - fixed, cfg.seed),
                                    "chosen": chosen})
        ks = np.array(cfg.budgets)
        coverage = np.array([m["acc"]["coverage"][k].mean() for k in cfg.budgets])
        out["models"].append({
            "run_id": m["run_id"], "params_matmul": m["params_matmul"],
            "params_non_embedding": m["params_non_embedding"], "tokens": m["tokens"],
            "pretrain_flops_6nd": m["pretrain_flops_6nd"], "verifier": m["verifier"], "curves": curves,
            "flops": {s: {str(k): v for k, v in f.items()} for s, f in m["flops"].items()},
            "per_bin": per_bin, "policy": policy_rows, "coverage_fit": analysis.fit_coverage(ks, coverage),
            "hardest_bin_gain": per_bin["coverage"][str(max(cfg.budgets))][4] - per_bin["coverage"]["1"][4],
            "beyond_training_pass1": float(m["acc"]["coverage"][1][m["lengths"] > train_max_steps].mean())
            if (m["lengths"] > train_max_steps).any() else None,
        })
    out["exchange"] = exchange(models, cfg)
    return out


def exchange(models: list[dict[str, Any]], cfg: TestTimeConfig) -> list[dict[str, Any]]:
    """Small model + test-time compute vs a larger model with one sample, FLOPs-matched, per bin and R."""
    rows = []
    ordered = sorted(models, key=lambda m: m["params_matmul"])
    for i, small in enumerate(ordered):
        for large in ordered[i + 1:]:
            bins = analysis.difficulty_bins(small["acc"]["coverage"][1])
            for ratio in cfg.exchange_ratios:
                v = small["verifier"]["orm"]
                f = analysis.exchange_multiplier(small["params_matmul"], small["tokens"], large["params_matmul"],
                                                 large["tokens"], ratio, v["params"], v["train_flops"])
                affordable = [k for k in cfg.budgets if k <= f]
                row = {"small": small["run_id"], "large": large["run_id"], "R": ratio, "f": f,
                       "M": large["params_matmul"] / small["params_matmul"]}
                if not affordable:
                    row.update(budget=None, note="the small model cannot afford one verified sample")
                    rows.append(row)
                    continue
                k = max(affordable)
                best = max((s for s in small["acc"] if s != "coverage" and k in small["acc"][s]),
                           key=lambda s: small["acc"][s][k].mean())
                diff = small["acc"][best][k] - large["acc"]["majority"][1]
                row.update(budget=k, capped=f > max(cfg.budgets), strategy=best, per_bin=[
                    {"bin": b, "small": float(small["acc"][best][k][bins == b].mean()),
                     "large": float(large["acc"]["majority"][1][bins == b].mean()),
                     "diff_ci95": analysis.bootstrap_ci(diff[bins == b], cfg.seed + b)} for b in range(1, 6)])
                rows.append(row)
    return rows


def run_study(sweep_dir: Path, cfg: TestTimeConfig, task: TaskConfig) -> dict[str, Any]:
    out_dir = sweep_dir / "testtime"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    problems = held_out_problems(task.modulus, task.test_max_steps, task.test_per_length, task.seed)
    pool = generate(cfg.verifier.train_problems, task.min_steps, task.max_steps, task.modulus,
                    seed=task.seed + 424242, exclude=frozenset(p.prompt for p in problems))
    # The sweep's one reader validates the manifest's run ids before any path is built from them.
    runs = [sweepdir.run_dir(sweep_dir, p["id"]) for p in sweepdir.read_manifest(sweep_dir)["points"]
            if sweepdir.point_status(sweepdir.run_dir(sweep_dir, p["id"]))[0] == "finished"]
    models = [study_model(r, problems, pool, cfg, out_dir) for r in runs]
    results = analyse(models, cfg, task.max_steps)
    results["test_set"] = {"problems": len(problems), "lengths": f"1..{task.test_max_steps}",
                           "train_lengths": f"{task.min_steps}..{task.max_steps}", "modulus": task.modulus}
    from scaling.testtime import report

    results["figures"] = report.figures(results, out_dir)
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "report.md", report.render(results, cfg))
    return results
