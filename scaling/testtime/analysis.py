"""From per-problem results to the study's answers: difficulty bins from an independent draw, the compute-optimal
policy (2-fold cross-validated, per bin), sequential/parallel ratios, the pretraining↔inference exchange, verifier
quality, and coverage laws. Accuracy is process-correct unless a name says "answer"."""

from __future__ import annotations

from typing import Any

import numpy as np

NUM_BINS = 5


def difficulty_bins(score: np.ndarray, easy_high: bool = True) -> np.ndarray:
    """Bins 1 (easiest) .. 5 (hardest) as quantiles of a per-problem score (ties broken by order)."""
    order = np.argsort(-score if easy_high else score, kind="stable")
    bins = np.empty(len(score), dtype=int)
    bins[order] = 1 + (np.arange(len(score)) * NUM_BINS) // len(score)
    return bins


def cross_validated_policy(acc: dict[str, np.ndarray], bins: np.ndarray, folds: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, dict[int, list[str]]]:
    """Per-problem accuracy of the compute-optimal policy (best strategy per bin, chosen on the other fold) and of
    the best fixed strategy (one for all bins, chosen on the other fold). ``acc`` maps strategy → per-problem
    accuracy at one budget.

    A bin keeps the fixed strategy unless another beats it on the training fold by more than one standard error
    of that bin's accuracy: with a few dozen problems per bin, an unregularised per-bin argmax mostly fits noise."""
    names = list(acc)
    table = np.stack([acc[n] for n in names])  # (strategies, problems)
    policy, fixed = np.zeros(table.shape[1]), np.zeros(table.shape[1])
    chosen: dict[int, list[str]] = {}
    for fold in (0, 1):
        train, test = folds != fold, folds == fold
        best_fixed = int(np.argmax(table[:, train].mean(1)))
        fixed[test] = table[best_fixed, test]
        for b in np.unique(bins):
            tr, te = train & (bins == b), test & (bins == b)
            best = best_fixed
            if tr.any():
                means = table[:, tr].mean(1)
                p = means[best_fixed]
                standard_error = np.sqrt(max(p * (1 - p), 1e-4) / tr.sum())
                if means.max() - p > standard_error:
                    best = int(np.argmax(means))
            policy[te] = table[best, te]
            chosen.setdefault(int(b), []).append(names[best])
    return policy, fixed, chosen


def bootstrap_ci(values: np.ndarray, seed: int, samples: int = 1000) -> tuple[float, float]:
    if not len(values):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(samples)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def fit_coverage(ks: np.ndarray, coverage: np.ndarray) -> dict:
    """coverage(k) ≈ exp(a·k^b) (Brown et al. 2024, "Large Language Monkeys", §3): a line in
    log(−log coverage) vs log k, over the k where 0 < coverage < 1."""
    ks, coverage = np.asarray(ks, float), np.asarray(coverage, float)
    ok = (coverage > 0) & (coverage < 1)
    if ok.sum() < 2:
        return {"a": None, "b": None, "r2": None, "max_abs_error": None, "note": "coverage saturated or zero"}
    x, y = np.log(ks[ok]), np.log(-np.log(coverage[ok]))
    slope, intercept = np.polyfit(x, y, 1)
    predicted_y = intercept + slope * x
    r2 = 1 - ((y - predicted_y) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    a, b = -float(np.exp(intercept)), float(slope)
    return {"a": a, "b": b, "r2": float(r2),
            "max_abs_error": float(np.max(np.abs(np.exp(a * ks**b) - coverage)))}


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance a right sample outscores a wrong one (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None]).mean()
    ties = (pos[:, None] == neg[None]).mean()
    return float(greater + ties / 2)


def calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the sample-weighted mean |mean score − accuracy| over equal-width score bins."""
    which = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(scores[inside].mean() - labels[inside].mean())
    return float(error)


def verifier_quality(rows: list[dict]) -> list[dict[str, Any]]:
    """Per problem length: ORM against answer-correct, the PRM's aggregations against process-correct."""
    out = []
    for length in sorted({r["length"] for r in rows}):
        chosen = [r for r in rows if r["length"] == length]
        answer = np.array([r["correct"] for r in chosen])
        process = np.array([r["process_correct"] for r in chosen])
        entry: dict[str, Any] = {"length": length, "samples": len(chosen), "process_rate": float(process.mean())}
        for name, key, labels in (("orm", "orm", answer), ("prm_last", "prm_last", process),
                                  ("prm_min", "prm_min", process), ("prm_prod", "prm_prod", process)):
            scores = np.array([r[key] for r in chosen])
            entry[name] = {"auc": auc(scores, labels), "ece": calibration_error(scores, labels)}
        out.append(entry)
    return out


def _at(curves: dict[str, dict], k: int) -> dict[str, np.ndarray]:
    return {s: c[k] for s, c in curves.items() if k in c and s != "coverage"}


def budget_saving(policy: dict[int, float], baseline: dict[int, float]) -> dict[str, float | None]:
    """For each budget N of the policy: the smallest baseline budget that matches its accuracy, over N (Snell et
    al. 2024 report "4× less compute" this way); None when no baseline budget reaches it."""
    out: dict[str, float | None] = {}
    for n, accuracy in policy.items():
        matched = [k for k in sorted(baseline) if baseline[k] >= accuracy - 1e-12]
        out[str(n)] = matched[0] / n if matched else None
    return out


def analyse_model(m: dict[str, Any], cfg, train_max_steps: int) -> dict[str, Any]:
    process = m["acc"]["process"]
    num_problems = len(m["lengths"])
    folds = np.random.default_rng(cfg.seed).permutation(num_problems) % 2
    bins = {"oracle": difficulty_bins(m["bin_pass1"]), "predicted": difficulty_bins(m["bin_predicted"])}
    budgets = sorted({k for c in process.values() for k in c})
    curves = {kind: {s: {str(k): float(v.mean()) for k, v in c.items()} for s, c in m["acc"][kind].items()}
              for kind in ("process", "answer")}
    per_bin = {label: {s: {str(k): [float(v[b == i].mean()) for i in range(1, NUM_BINS + 1)] for k, v in c.items()}
                       for s, c in process.items()} for label, b in bins.items()}
    policy_rows, policy_curve = [], {}
    for k in budgets:
        candidates = _at(process, k)
        if len(candidates) < 2:
            continue
        for label, b in bins.items():
            chosen_acc, fixed, chosen = cross_validated_policy(candidates, b, folds)
            policy_rows.append({"budget": k, "bins": label, "policy": float(chosen_acc.mean()),
                                "fixed": float(fixed.mean()), "weighted_prm": float(candidates["weighted_prm"].mean())
                                if "weighted_prm" in candidates else None,
                                "policy_minus_fixed_ci95": bootstrap_ci(chosen_acc - fixed, cfg.seed),
                                "chosen": chosen})
            if label == "oracle":
                policy_curve[k] = float(chosen_acc.mean())
    baseline = {k: float(v.mean()) for k, v in process["weighted_prm"].items()}
    return {
        "run_id": m["run_id"], "params_matmul": m["params_matmul"], "params_non_embedding": m["params_non_embedding"],
        "tokens": m["tokens"], "pretrain_flops": m["pretrain_flops"], "verifier": m["verifier"],
        "curves": curves, "flops": {s: {str(k): v for k, v in f.items()} for s, f in m["flops"].items()},
        "per_bin": per_bin, "bin_pass1_means": [float(m["bin_pass1"][bins["oracle"] == i].mean())
                                                for i in range(1, NUM_BINS + 1)],
        "policy": policy_rows, "saving_vs_weighted_prm": budget_saving(policy_curve, baseline),
        "coverage_fit": fit_coverage(np.array(cfg.budgets),
                                     np.array([process["coverage"][k].mean() for k in cfg.budgets])),
        "greedy": {"process": float(m["greedy"]["process"].mean()), "answer": float(m["greedy"]["answer"].mean())},
        "pass1_train_lengths": float(process["coverage"][1][m["lengths"] <= train_max_steps].mean()),
        "pass1_by_length": {str(n): float(process["coverage"][1][m["lengths"] == n].mean())
                            for n in sorted(set(m["lengths"].tolist()))},
        "lucky_share": {s: (curves["answer"][s][str(max(cfg.budgets))] - curves["process"][s][str(max(cfg.budgets))])
                        for s in ("majority", "weighted_prm")},
        "revisions": analyse_revisions(m, bins["oracle"], folds, cfg),
    }


def analyse_revisions(m: dict[str, Any], bins: np.ndarray, folds: np.ndarray, cfg) -> dict[str, Any]:
    """Sequential/parallel splits per budget: curves, per bin, and the ratio chosen per bin by 2-fold CV."""
    rev = m["revisions"]
    process = rev["acc"]["process"]
    out: dict[str, Any] = {"pass1_by_attempt": rev["pass1_by_attempt"], "train_flops": rev["train_flops"],
                           "chains": rev["chains"], "curves": {}, "per_bin": {}, "optimal": []}
    for key, c in process.items():
        out["curves"][key] = {n: float(v.mean()) for n, v in c.items()}
        out["per_bin"][key] = {n: [float(v[bins == i].mean()) for i in range(1, NUM_BINS + 1)] for n, v in c.items()}
    for n in cfg.revisions.budgets:
        for selection in ("seq_majority", "seq_weighted_prm", "seq_hierarchical_prm"):
            candidates = {k: c[str(n)] for k, c in process.items() if k.startswith(selection + "_s") and str(n) in c}
            parallel = candidates[f"{selection}_s1"]
            chosen_acc, _, chosen = cross_validated_policy(candidates, bins, folds)
            out["optimal"].append({"budget": n, "selection": selection, "policy": float(chosen_acc.mean()),
                                   "parallel": float(parallel.mean()),
                                   "sequential": float(candidates[f"{selection}_s{n}"].mean()),
                                   "policy_minus_parallel_ci95": bootstrap_ci(chosen_acc - parallel, cfg.seed),
                                   "chosen": chosen})
    out["flops"] = rev["flops"]
    return out


def exchange(models: list[dict[str, Any]], cfg) -> list[dict[str, Any]]:
    """Small model + test-time compute vs a larger model decoding greedily, FLOPs-matched (Snell et al. 2024, §7).

    One convention throughout: pretraining FLOPs as the runs logged them (6·N + attention), inference FLOPs as the
    study counts them (``cost``). At R = inference tokens / the small model's pretraining tokens, Q = R·D_small /
    tokens per question questions are answered; the small model may spend per question the large model's greedy
    cost plus its pretraining surplus over Q, less the training cost of what the strategy uses (the verifier, the
    revision model) when that is charged. The small side is the per-bin compute-optimal policy (2-fold CV) over the
    strategies of one family at the largest budget each can afford."""
    rows = []
    ordered = sorted(models, key=lambda m: m["params_matmul"])
    for i, small in enumerate(ordered):
        bins = difficulty_bins(small["bin_pass1"])
        folds = np.random.default_rng(cfg.seed).permutation(len(bins)) % 2
        for large in ordered[i + 1:]:
            for ratio in cfg.exchange_ratios:
                questions = ratio * small["tokens"] / small["tokens_per_question"]
                for family in ("search", "revisions"):
                    for charged in (True, False):
                        rows.append(_exchange_row(small, large, ratio, questions, family, charged, bins, folds, cfg))
    return rows


def _family(m: dict[str, Any], family: str) -> list[tuple[str, dict, dict, float]]:
    """(strategy, accuracy by budget, FLOPs by budget, training FLOPs it needs) of one family."""
    v = m["verifier"]["train_flops_by_kind"]
    if family == "search":
        out = []
        for s, acc in m["acc"]["process"].items():
            if s == "coverage":
                continue
            train = 0.0 if s == "majority" else v["orm"] if s.endswith("orm") else v["prm"]
            out.append((s, acc, m["flops"][s], train))
        return out
    rev = m["revisions"]
    return [(s, acc, rev["flops"][s], rev["train_flops"] + (v["prm"] if "weighted" in s else 0.0))
            for s, acc in rev["acc"]["process"].items()]


def _exchange_row(small, large, ratio, questions, family, charged, bins, folds, cfg) -> dict[str, Any]:
    row: dict[str, Any] = {"small": small["run_id"], "large": large["run_id"], "R": ratio, "family": family,
                           "charged": charged, "M": large["params_matmul"] / small["params_matmul"]}
    candidates, spend = {}, {}
    for name, acc, flops, train in _family(small, family):
        afford = large["greedy"]["flops"] + (large["pretrain_flops"] - small["pretrain_flops"]
                                             - (train if charged else 0.0)) / questions
        within = [k for k in acc if flops[k] <= afford]
        if within:
            k = max(within, key=lambda b: (int(b), flops[b]))
            candidates[f"{name}@{k}"], spend[f"{name}@{k}"] = acc[k], flops[k]
    large_acc = large["greedy"]["process"]
    if not candidates:
        row.update(note="the small model cannot afford one generation", per_bin=None)
        return row
    policy, _, chosen = cross_validated_policy(candidates, bins, folds)
    diff = policy - large_acc
    row.update(small_accuracy=float(policy.mean()), large_accuracy=float(large_acc.mean()),
               difference=float(diff.mean()), chosen=chosen, affordable=sorted(candidates),
               per_bin=[{"bin": b, "small": float(policy[bins == b].mean()),
                         "large": float(large_acc[bins == b].mean()),
                         "diff_ci95": bootstrap_ci(diff[bins == b], cfg.seed + b)} for b in range(1, NUM_BINS + 1)])
    return row


def analyse(models: list[dict[str, Any]], cfg, task) -> dict[str, Any]:
    return {"models": [analyse_model(m, cfg, task.max_steps) for m in models], "exchange": exchange(models, cfg),
            "test_set": {"problems": len(models[0]["lengths"]) if models else 0,
                         "lengths": f"1..{task.test_max_steps}", "train_lengths": f"{task.min_steps}..{task.max_steps}",
                         "modulus": task.modulus, "chance": 1.0 / task.modulus}}
