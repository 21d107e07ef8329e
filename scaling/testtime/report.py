"""Figures and report.md of the test-time study: every figure under one line saying what Snell et al. (2024) found
and what this run shows. Accuracy is process-correct (every step right) unless a name says "answer"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scaling.fit.plots import save_figure  # noqa: E402
from scaling.testtime.analysis import NUM_BINS  # noqa: E402

SEARCH_STYLE = {"beam": "s-", "lookahead": "^-", "dvts": "d-"}


def _style(strategy: str) -> str:
    return next((v for k, v in SEARCH_STYLE.items() if strategy.startswith(k)), ".-")


def _panels(models: list[dict], height: float = 3.8):
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), height), squeeze=False)
    return fig, axes[0]


def _title(m: dict) -> str:
    return f"{m['run_id']} ({m['params_non_embedding']:,} params)"


def _sorted(curve: dict) -> list[str]:
    return sorted(curve, key=int)


def _curve(ax, curve: dict[str, float], style: str, label: str) -> None:
    """A {budget: accuracy} curve against the budget."""
    ks = _sorted(curve)
    ax.plot([int(k) for k in ks], [curve[k] for k in ks], style, label=label)


def _bins(ax, values_by_bin: dict[str, list[float]], label: str, style: str) -> None:
    for b in range(NUM_BINS):
        ks = _sorted(values_by_bin)
        ax.plot([int(k) for k in ks], [values_by_bin[k][b] for k in ks], style, color=plt.cm.viridis(b / 4),
                label=f"{label} bin {b + 1}")


def figures(results: dict[str, Any], cfg, out_dir: Path) -> dict[str, str]:
    models, paths = results["models"], {}
    for axis in ("generations", "flops"):
        fig, axes = _panels(models)
        for ax, m in zip(axes, models):
            for s, curve in m["curves"]["process"].items():
                ks = _sorted(curve)
                xs = [int(k) for k in ks] if axis == "generations" else [m["flops"][s][k] for k in ks]
                ax.plot(xs, [curve[k] for k in ks], _style(s), ms=4, label=s)
            ax.set(xscale="log", xlabel="generations N" if axis == "generations" else "inference FLOPs per problem",
                   ylabel="process-correct accuracy", title=_title(m))
        axes[0].legend(fontsize=6)
        paths[f"accuracy_vs_{axis}"] = save_figure(fig, out_dir, f"accuracy_vs_{axis}")
    for label in ("oracle", "predicted"):
        fig, axes = _panels(models)
        for ax, m in zip(axes, models):
            _bins(ax, m["per_bin"][label]["weighted_prm"], "weighted PRM", "o-")
            _bins(ax, m["per_bin"][label]["majority"], "majority", "x:")
            ax.set(xscale="log", xlabel="generations N", ylabel="accuracy", title=f"{m['run_id']}: {label} bins")
        axes[0].legend(fontsize=5, ncol=2)
        paths[f"per_bin_{label}"] = save_figure(fig, out_dir, f"per_bin_{label}")
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        width = 0.8 / len(cfg.search.budgets)
        for j, n in enumerate(cfg.search.budgets):
            beam = m["per_bin"]["oracle"][f"beam_w{int(np.sqrt(n))}"][str(n)]
            bon = m["per_bin"]["oracle"]["weighted_prm"].get(str(n))
            if bon is None:
                continue
            ax.bar(np.arange(1, NUM_BINS + 1) + j * width, np.array(beam) - np.array(bon), width, label=f"N = {n}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="difficulty bin (1 easiest)", ylabel="beam − weighted best-of-N", title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["beam_vs_best_of_n"] = save_figure(fig, out_dir, "beam_vs_best_of_n")
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        rows = [r for r in m["policy"] if r["bins"] == "oracle"]
        ax.plot([r["budget"] for r in rows], [r["policy"] for r in rows], "r.-", label="compute-optimal (CV)")
        ax.plot([r["budget"] for r in rows], [r["fixed"] for r in rows], "k.--", label="best fixed (CV)")
        _curve(ax, m["curves"]["process"]["weighted_prm"], "b.:", "weighted best-of-N")
        ax.set(xscale="log", xlabel="generations N", ylabel="accuracy", title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["compute_optimal"] = save_figure(fig, out_dir, "compute_optimal")
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        for how in ("last", "min", "prod"):
            name = "weighted_prm" if how == "last" else f"weighted_prm_{how}"
            _curve(ax, m["curves"]["process"][name], ".-", f"PRM {how}")
        _curve(ax, m["curves"]["process"]["weighted_orm"], "k.:", "ORM")
        ax.set(xscale="log", xlabel="generations N", ylabel="weighted best-of-N accuracy", title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["prm_aggregation"] = save_figure(fig, out_dir, "prm_aggregation")
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        quality = m["verifier"]["quality"]
        for name in ("orm", "prm_last", "prm_min", "prm_prod"):
            points = [(q["length"], q[name]["auc"]) for q in quality if q[name]["auc"] is not None]
            if points:
                ax.plot(*zip(*points), ".-", label=name)
        ax.axhline(0.5, color="k", lw=0.8)
        ax.set(xlabel="problem length (steps)", ylabel="AUC", ylim=(0.3, 1.02), title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["verifier_quality"] = save_figure(fig, out_dir, "verifier_quality")
    paths.update(revision_figures(models, cfg, out_dir))
    paths["exchange"] = exchange_figure(results, out_dir)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in models:
        cov = m["curves"]["process"]["coverage"]
        x = np.array([int(k) for k in _sorted(cov)])
        line = ax.plot(x, [cov[k] for k in _sorted(cov)], "o", label=m["run_id"])[0]
        fit = m["coverage_fit"]
        if fit["a"] is not None:
            grid = np.geomspace(1, x.max(), 50)
            ax.plot(grid, np.exp(fit["a"] * grid ** fit["b"]), "-", color=line.get_color())
    ax.set(xscale="log", xlabel="k", ylabel="process-correct coverage", title="coverage ≈ exp(a·k^b)")
    ax.legend(fontsize=7)
    paths["coverage_fits"] = save_figure(fig, out_dir, "coverage_fits")
    return paths


def revision_figures(models: list[dict], cfg, out_dir: Path) -> dict[str, str]:
    paths = {}
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in models:
        by_attempt = m["revisions"]["pass1_by_attempt"]
        ax.plot(range(1, len(by_attempt) + 1), by_attempt, "o-", label=m["run_id"])
    ax.set(xlabel="revision step", ylabel="pass@1 (process-correct)", title="revision model, step by step")
    ax.legend(fontsize=7)
    paths["revision_steps"] = save_figure(fig, out_dir, "revision_steps")
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        curves = m["revisions"]["curves"]
        ns = [str(n) for n in cfg.revisions.budgets]
        ax.plot([int(n) for n in ns], [curves["seq_weighted_prm_s1"][n] for n in ns], "k.--",
                label="parallel (s = 1)")
        ax.plot([int(n) for n in ns], [curves[f"seq_weighted_prm_s{n}"][n] for n in ns], "r.-",
                label="sequential (s = N)")
        rows = [r for r in m["revisions"]["optimal"] if r["selection"] == "seq_weighted_prm"]
        ax.plot([r["budget"] for r in rows], [r["policy"] for r in rows], "g.-", label="compute-optimal ratio (CV)")
        ax.set(xscale="log", xlabel="generations N", ylabel="accuracy (weighted PRM)", title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["revisions_vs_parallel"] = save_figure(fig, out_dir, "revisions_vs_parallel")
    n = str(max(cfg.revisions.budgets))
    fig, axes = _panels(models)
    for ax, m in zip(axes, models):
        per_bin = m["revisions"]["per_bin"]
        splits = sorted((k for k in per_bin if k.startswith("seq_weighted_prm_s") and n in per_bin[k]),
                        key=lambda k: int(k.rsplit("s", 1)[1]))
        xs = [int(n) // int(k.rsplit("s", 1)[1]) for k in splits]
        for b in range(NUM_BINS):
            ax.plot(xs, [per_bin[k][n][b] for k in splits], "o-", color=plt.cm.viridis(b / 4), label=f"bin {b + 1}")
        ax.set(xscale="log", xlabel=f"parallel chains at N = {n} (N/s)", ylabel="accuracy", title=m["run_id"])
    axes[0].legend(fontsize=7)
    paths["revision_ratios"] = save_figure(fig, out_dir, "revision_ratios")
    return paths


NO_PAIR = "one model: the exchange compares a smaller and a larger one (grid.sizes with two or more)"


def exchange_figure(results: dict[str, Any], out_dir: Path) -> str:
    rows = [r for r in results["exchange"] if r.get("per_bin")]
    pairs = sorted({(r["small"], r["large"]) for r in rows})
    fig, axes = plt.subplots(2, max(len(pairs), 1), figsize=(4.6 * max(len(pairs), 1), 7), squeeze=False)
    for col, (small, large) in enumerate(pairs):
        for row_i, family in enumerate(("search", "revisions")):
            ax = axes[row_i][col]
            for charged, style in ((True, "o-"), (False, "x:")):
                chosen = sorted((r for r in rows if (r["small"], r["large"], r["family"], r["charged"])
                                 == (small, large, family, charged)), key=lambda r: r["R"])
                for b in range(NUM_BINS):
                    ax.plot([r["R"] for r in chosen], [r["per_bin"][b]["small"] - r["per_bin"][b]["large"]
                                                       for r in chosen], style, color=plt.cm.viridis(b / 4),
                            label=f"bin {b + 1}" if charged else None)
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xscale="log", xlabel="R = inference / pretraining tokens", ylabel="small + test-time − large",
                   title=f"{family}: {small} vs {large}")
    if pairs:
        axes[0][0].legend(fontsize=6)
    else:
        for ax in axes.flat:
            ax.text(0.5, 0.5, NO_PAIR, ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_figure(fig, out_dir, "exchange")


def findings(results: dict[str, Any], cfg) -> dict[str, tuple[str, str]]:
    """Per figure: (what the paper found, what this run shows), the latter computed from the results."""
    models = results["models"]
    kmax = str(max(cfg.budgets))
    small_n, large_n = str(min(cfg.search.budgets)), str(max(cfg.search.budgets))

    def beam_gap(m: dict, n: str, bins: list[int]) -> float:
        beam = m["per_bin"]["oracle"][f"beam_w{int(np.sqrt(int(n)))}"][n]
        bon = m["per_bin"]["oracle"]["weighted_prm"].get(n, beam)
        return float(np.mean([beam[b - 1] - bon[b - 1] for b in bins]))

    out = {}
    out["accuracy_vs_generations"] = (
        "weighted best-of-N under a PRM beats majority voting as N grows (Snell et al. 2024, Fig. 3 left)",
        "; ".join(f"{m['run_id']}: weighted PRM {m['curves']['process']['weighted_prm'][kmax]:.3f} vs majority "
                  f"{m['curves']['process']['majority'][kmax]:.3f} at N = {kmax}" for m in models))
    out["accuracy_vs_flops"] = ("the same comparison on FLOPs: searches cost more per generation",
                                "FLOPs count a KV cache (each token once per sequence that feeds it)")
    out["per_bin_oracle"] = (
        "easy bins saturate at small N, the hardest bin barely moves (Fig. 3)",
        "; ".join(f"{m['run_id']}: bins' pass@1 on the binning draw "
                  + ", ".join(f"{v:.2f}" for v in m["bin_pass1_means"]) for m in models))
    def policy_at(m: dict, bins: str) -> float:
        return next(r["policy"] for r in m["policy"] if r["bins"] == bins and r["budget"] == int(kmax))

    out["per_bin_predicted"] = (
        "verifier-predicted bins (no oracle) give most of the oracle bins' gains (§3.2)",
        "; ".join(f"{m['run_id']}: compute-optimal at N = {kmax} with predicted bins {policy_at(m, 'predicted'):.3f},"
                  f" oracle bins {policy_at(m, 'oracle'):.3f}" for m in models))
    out["beam_vs_best_of_n"] = (
        "beam search beats best-of-N on hard bins at low budgets and falls behind on easy bins at high budgets "
        "(Fig. 3 right)",
        "; ".join(f"{m['run_id']}: bins 3-5 at N = {small_n} {beam_gap(m, small_n, [3, 4, 5]):+.3f}, bins 1-2 at "
                  f"N = {large_n} {beam_gap(m, large_n, [1, 2]):+.3f}" for m in models))
    out["compute_optimal"] = (
        "per-bin compute-optimal search matches weighted best-of-N with up to 4× less compute (Fig. 4)",
        "; ".join(f"{m['run_id']}: weighted best-of-N needs "
                  + ", ".join(f"{'> max' if v is None else f'{v:.0f}×'} at N = {n}"
                              for n, v in m["saving_vs_weighted_prm"].items()) for m in models))
    best_aggregation = {m["run_id"]: max(("last", "min", "prod"), key=lambda h: m["curves"]["process"][
        "weighted_prm" if h == "last" else f"weighted_prm_{h}"][kmax]) for m in models}
    out["prm_aggregation"] = ("aggregating the PRM by its last step works best (App. D)",
                              "; ".join(f"{k}: {v} best at N = {kmax}" for k, v in best_aggregation.items()))
    out["verifier_quality"] = (
        "the verifier is only as good as its ranking; PRM quality decides search gains (§5)",
        "; ".join(f"{m['run_id']}: PRM AUC " + ", ".join(
            f"L{q['length']} {q['prm_last']['auc']:.2f}" for q in m["verifier"]["quality"]
            if q["prm_last"]["auc"] is not None) for m in models))
    out["revision_steps"] = (
        "the revision model's pass@1 rises step by step, also beyond the 4 revisions it was trained with (Fig. 5 "
        "left)", "; ".join(f"{m['run_id']}: step 1 {m['revisions']['pass1_by_attempt'][0]:.3f} → step "
                           f"{len(m['revisions']['pass1_by_attempt'])} {m['revisions']['pass1_by_attempt'][-1]:.3f}"
                           for m in models))
    rn = max(cfg.revisions.budgets)
    out["revisions_vs_parallel"] = (
        "sequential revisions beat parallel sampling at equal budget, and the compute-optimal ratio beats both "
        "(Fig. 6 right, Fig. 8)",
        "; ".join(f"{m['run_id']}: at N = {rn} sequential {r['sequential']:.3f}, parallel {r['parallel']:.3f}, "
                  f"compute-optimal {r['policy']:.3f}" for m in models for r in m["revisions"]["optimal"]
                  if r["budget"] == rn and r["selection"] == "seq_weighted_prm"))
    out["revision_ratios"] = (
        "easy questions prefer all-sequential budgets, hard ones a mix of sequential and parallel (Fig. 7)",
        "; ".join(f"{m['run_id']}: ratio chosen per bin at N = {rn}: " + ", ".join(
            f"bin {b} {'/'.join(sorted(set(v)))}" for b, v in sorted(r["chosen"].items(), key=lambda x: int(x[0])))
                  for m in models for r in m["revisions"]["optimal"]
                  if r["budget"] == rn and r["selection"] == "seq_weighted_prm"))
    out["exchange"] = (
        "at R ≪ 1 test-time compute on a smaller model beats a ~14× larger model on easy and medium bins; on the "
        "hardest bins or at R ≫ 1 pretraining is the better use of FLOPs (Fig. 9)", exchange_summary(results))
    out["coverage_fits"] = ("coverage grows as exp(a·k^b) with k (Brown et al. 2024)", "; ".join(
        f"{m['run_id']}: R² {m['coverage_fit']['r2']:.3f}" if m["coverage_fit"]["r2"] is not None
        else f"{m['run_id']}: saturated or zero" for m in models))
    return out


def exchange_summary(results: dict[str, Any]) -> str:
    if not results["exchange"]:
        return NO_PAIR
    parts = []
    for r in results["exchange"]:
        if r["charged"] and r.get("per_bin"):
            wins = [b["bin"] for b in r["per_bin"] if b["diff_ci95"][0] > 0]
            losses = [b["bin"] for b in r["per_bin"] if b["diff_ci95"][1] < 0]
            parts.append(f"{r['family']} {r['small']}→{r['large']} R = {r['R']}: small wins bins {wins or 'none'}, "
                         f"loses {losses or 'none'}")
    return "; ".join(parts) or "no pair could afford a generation"


def render(results: dict[str, Any], cfg) -> str:
    kmax = str(max(cfg.budgets))
    ts = results["test_set"]
    lines = ["# Test-time compute study", "",
             f"{ts['problems']} test problems (worksheets mod {ts['modulus']}, lengths {ts['lengths']}; training "
             f"lengths {ts['train_lengths']}; a uniform guess of the answer is right {ts['chance']:.3f} of the time), "
             f"n = {cfg.samples_per_problem} scored samples each at temperature {cfg.temperature}, and an "
             f"independent draw of {cfg.bin_samples} that only assigns difficulty bins (1 easiest .. 5 hardest). "
             "Accuracy is process-correct (every step right) unless a column says answer-correct. FLOPs count a KV "
             "cache.", "",
             "| model | params | verifier params | greedy | pass@1 | coverage@N | majority@N | weighted PRM@N | "
             "answer-correct majority@N | compute-optimal@N | coverage law b (R²) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        c, a, fit = m["curves"]["process"], m["curves"]["answer"], m["coverage_fit"]
        opt = next((r["policy"] for r in m["policy"] if r["budget"] == int(kmax) and r["bins"] == "oracle"), None)
        law = "-" if fit["b"] is None else f"{fit['b']:.2f} ({fit['r2']:.3f})"
        lines.append(f"| {m['run_id']} | {m['params_non_embedding']:,} | {m['verifier']['params_non_embedding']:,} "
                     f"({m['verifier']['params_fraction']:.2f}) | {m['greedy']['process']:.3f} | "
                     f"{c['coverage']['1']:.3f} | {c['coverage'][kmax]:.3f} | {c['majority'][kmax]:.3f} | "
                     f"{c['weighted_prm'][kmax]:.3f} | {a['majority'][kmax]:.3f} | "
                     f"{'-' if opt is None else f'{opt:.3f}'} | {law} |")
    lines += ["", f"N = {kmax}. Verifier and revision-model training FLOPs per model: " + "; ".join(
        f"{m['run_id']}: {m['verifier']['train_flops']:.2e} / {m['revisions']['train_flops']:.2e}"
        for m in results["models"]), ""]
    lines += ["## Search: beam, lookahead and DVTS against weighted best-of-N", "",
              "| model | N | weighted PRM | " + " | ".join(_search_names(cfg)) + " |",
              "|---|---|---|" + "---|" * len(_search_names(cfg))]
    for m in results["models"]:
        c = m["curves"]["process"]
        for n in cfg.search.budgets:
            w = int(np.sqrt(n))
            cells = [c.get(f"{s}_w{w}", {}).get(str(n)) for s in _search_names(cfg)]
            lines.append(f"| {m['run_id']} | {n} | {c['weighted_prm'].get(str(n), float('nan')):.3f} | "
                         + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    lines += ["", "## Compute-optimal policy vs best fixed strategy (2-fold cross-validated)", "",
              "| model | bins | N | policy | fixed | weighted PRM | policy − fixed 95% CI |",
              "|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        for r in m["policy"]:
            lo, hi = r["policy_minus_fixed_ci95"]
            wp = "-" if r["weighted_prm"] is None else f"{r['weighted_prm']:.3f}"
            lines.append(f"| {m['run_id']} | {r['bins']} | {r['budget']} | {r['policy']:.3f} | {r['fixed']:.3f} | "
                         f"{wp} | [{lo:+.3f}, {hi:+.3f}] |")
    lines += ["", "## Sequential revisions", "",
              "| model | selection | N | parallel (s = 1) | sequential (s = N) | compute-optimal ratio (CV) | "
              "policy − parallel 95% CI |", "|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        for r in m["revisions"]["optimal"]:
            lo, hi = r["policy_minus_parallel_ci95"]
            lines.append(f"| {m['run_id']} | {r['selection']} | {r['budget']} | {r['parallel']:.3f} | "
                         f"{r['sequential']:.3f} | {r['policy']:.3f} | [{lo:+.3f}, {hi:+.3f}] |")
    lines += ["", "## Exchange: small model + test-time compute vs a larger model decoding greedily", "",
              "FLOPs-matched at each R; the small side's strategy is chosen per bin by 2-fold CV among what it can "
              "afford; \"charged\": the verifier's (and revision model's) training FLOPs are paid from the small "
              "side's budget.", "",
              "| family | small | large | R | charged | small | large | " + " | ".join(
                  f"bin {b}" for b in range(1, NUM_BINS + 1)) + " |", "|---|---|---|---|---|---|---|" + "---|" * 5]
    if not results["exchange"]:
        lines.append(f"| {NO_PAIR} |" + " |" * (6 + NUM_BINS))
    for r in results["exchange"]:
        head = f"| {r['family']} | {r['small']} | {r['large']} | {r['R']} | {'yes' if r['charged'] else 'no'} |"
        if not r.get("per_bin"):
            lines.append(head + f" {r['note']} |" + " |" * (NUM_BINS + 1))
            continue
        cells = [f"{b['small'] - b['large']:+.2f} [{b['diff_ci95'][0]:+.2f}, {b['diff_ci95'][1]:+.2f}]"
                 for b in r["per_bin"]]
        lines.append(head + f" {r['small_accuracy']:.3f} | {r['large_accuracy']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Figures", ""]
    stated = findings(results, cfg)
    for name, path in results["figures"].items():
        paper, run = stated.get(name, ("", ""))
        lines += [f"### {name}", "", f"![{name}]({path})", "", f"Paper: {paper}. This run: {run}.", ""]
    return "\n".join(lines) + "\n"


def _search_names(cfg) -> list[str]:
    return ["beam"] + [f"lookahead{k}" for k in cfg.search.lookahead] + (["dvts"] if cfg.search.dvts else [])
