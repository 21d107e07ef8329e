"""Figures and the report section of the test-time study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scaling.fit.plots import save_figure  # noqa: E402


def figures(results: dict[str, Any], out_dir: Path) -> list[str]:
    models = results["models"]
    paths = []
    for axis in ("generations", "flops"):
        fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
        for ax, m in zip(axes[0], models):
            for s, curve in m["curves"].items():
                ks = sorted(curve, key=int)
                xs = [int(k) for k in ks] if axis == "generations" else [m["flops"][s][k] for k in ks]
                ax.plot(xs, [curve[k] for k in ks], "o-" if s.startswith("beam") else ".-", ms=4, label=s)
            ax.set(xscale="log", xlabel="generations k" if axis == "generations" else "inference FLOPs per problem",
                   ylabel="accuracy", title=f"{m['run_id']} ({m['params_non_embedding']:,} params)")
        axes[0][0].legend(fontsize=7)
        paths.append(save_figure(fig, out_dir, f"accuracy_vs_{axis}"))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        for s in ("coverage", "majority", "weighted_prm"):
            ks = sorted(m["per_bin"][s], key=int)
            for b in range(5):
                ax.plot([int(k) for k in ks], [m["per_bin"][s][k][b] for k in ks],
                        color=plt.cm.viridis(b / 4), ls={"coverage": "-", "majority": ":", "weighted_prm": "--"}[s],
                        label=f"{s} bin {b + 1}" if s == "coverage" or b == 0 else None)
        ax.set(xscale="log", xlabel="generations k", ylabel="accuracy", title=f"{m['run_id']} per difficulty bin")
    axes[0][0].legend(fontsize=6)
    paths.append(save_figure(fig, out_dir, "per_bin"))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.5), squeeze=False)
    for ax, m in zip(axes[0], models):
        rows = [r for r in m["policy"] if r["bins"] == "oracle"]
        ax.plot([r["budget"] for r in rows], [r["policy"] for r in rows], "r.-", label="compute-optimal (CV)")
        ax.plot([r["budget"] for r in rows], [r["fixed"] for r in rows], "k.--", label="best fixed (CV)")
        ax.set(xscale="log", xlabel="generations k", ylabel="accuracy", title=m["run_id"])
    axes[0][0].legend(fontsize=7)
    paths.append(save_figure(fig, out_dir, "compute_optimal"))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for row in results["exchange"]:
        if row.get("per_bin"):
            margin = np.mean([b["small"] - b["large"] for b in row["per_bin"]])
            ax.plot(row["R"], margin, "o", label=f"{row['small']} vs {row['large']}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="R = inference / pretraining tokens", ylabel="small+TTC − large (accuracy)",
           title="FLOPs-matched exchange")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7)
    paths.append(save_figure(fig, out_dir, "exchange"))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in models:
        ks = sorted(m["curves"]["coverage"], key=int)
        x = np.array([int(k) for k in ks])
        line = ax.plot(x, [m["curves"]["coverage"][k] for k in ks], "o", label=m["run_id"])[0]
        fit = m["coverage_fit"]
        if fit["a"] is not None:
            grid = np.geomspace(1, x.max(), 50)
            ax.plot(grid, np.exp(fit["a"] * grid ** fit["b"]), "-", color=line.get_color())
    ax.set(xscale="log", xlabel="k", ylabel="coverage", title="coverage ≈ exp(a·k^b)")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir, "coverage_fits"))
    return paths


def render(results: dict[str, Any], cfg) -> str:
    kmax = str(max(cfg.budgets))
    ts = results["test_set"]
    lines = ["# Test-time compute study", "",
             f"{ts['problems']} test problems (chains of arithmetic mod {ts['modulus']}, lengths {ts['lengths']}; "
             f"training lengths {ts['train_lengths']}), n = {cfg.samples_per_problem} samples each at temperature "
             f"{cfg.temperature}. Prefill is counted per sample (not shared). Difficulty bins: 1 easiest .. 5 hardest.",
             "", "| model | params | pass@1 | coverage@k | majority@k | weighted BoN (PRM)@k | compute-optimal@k | a "
             "| b | fit R² | hardest-bin gain |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        c, fit = m["curves"], m["coverage_fit"]
        opt = next(r["policy"] for r in m["policy"] if r["budget"] == int(kmax) and r["bins"] == "oracle")
        a, b, r2 = ("-" if fit[key] is None else f"{fit[key]:.3f}" for key in ("a", "b", "r2"))
        lines.append(f"| {m['run_id']} | {m['params_non_embedding']:,} | {c['coverage']['1']:.3f} | "
                     f"{c['coverage'][kmax]:.3f} | {c['majority'][kmax]:.3f} | {c['weighted_prm'][kmax]:.3f} | "
                     f"{opt:.3f} | {a} | {b} | {r2} | {m['hardest_bin_gain']:+.3f} |")
    lines += ["", f"k = {kmax}. Verifier training cost per model (ORM / PRM FLOPs): "
              + "; ".join(f"{m['run_id']}: {m['verifier']['orm']['train_flops']:.2e} / "
                          f"{m['verifier']['prm']['train_flops']:.2e}" for m in results["models"]), ""]
    lines += ["## Compute-optimal policy vs best fixed strategy (2-fold cross-validated)", "",
              "| model | bins | k | policy | fixed | policy − fixed 95% CI |", "|---|---|---|---|---|---|"]
    for m in results["models"]:
        for r in m["policy"]:
            lo, hi = r["policy_minus_fixed_ci95"]
            lines.append(f"| {m['run_id']} | {r['bins']} | {r['budget']} | {r['policy']:.3f} | {r['fixed']:.3f} | "
                         f"[{lo:+.3f}, {hi:+.3f}] |")
    lines += ["", "## Beam search vs best-of-N at equal generation budget", "",
              "| model | N | best-of-N (PRM) | weighted (PRM) | " + " | ".join(
                  f"beam w{w}" for w in cfg.beam_widths) + " |", "|---|---|---|---|" + "---|" * len(cfg.beam_widths)]
    for m in results["models"]:
        for budget in cfg.beam_budgets:
            b = str(budget)
            beams = [m["curves"].get(f"beam_prm_w{w}", {}).get(b) for w in cfg.beam_widths]
            lines.append(f"| {m['run_id']} | {budget} | {m['curves']['best_of_n_prm'].get(b, float('nan')):.3f} | "
                         f"{m['curves']['weighted_prm'].get(b, float('nan')):.3f} | "
                         + " | ".join("-" if v is None else f"{v:.3f}" for v in beams) + " |")
    lines += ["", "## Exchange: small model + test-time compute vs a larger model (FLOPs-matched)", "",
              "f = generations per question the small model can afford (pretraining 6·N·D, inference 2·N per token, "
              "verifier scoring and training included); small side: its best strategy at the largest budget ≤ f; "
              "large side: one sample.", "",
              "| small | large | R | f | k used | bin 1 | bin 2 | bin 3 | bin 4 | bin 5 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["exchange"]:
        if not r.get("per_bin"):
            lines.append(f"| {r['small']} | {r['large']} | {r['R']} | {r['f']:.2f} | - | {r['note']} |||||")
            continue
        cells = [f"{b['small'] - b['large']:+.2f} [{b['diff_ci95'][0]:+.2f}, {b['diff_ci95'][1]:+.2f}]"
                 for b in r["per_bin"]]
        lines.append(f"| {r['small']} | {r['large']} | {r['R']} | {r['f']:.1f} | {r['budget']}"
                     f"{' (capped)' if r['capped'] else ''} | " + " | ".join(cells) + " |")
    lines += ["", "## Checks", ""] + [f"- {c}" for c in checks(results, cfg)]
    lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in results["figures"]]
    return "\n".join(lines) + "\n"


def checks(results: dict[str, Any], cfg) -> list[str]:
    """The qualitative patterns a correct implementation should show, each stated with its numbers."""
    out, kmax = [], str(max(cfg.budgets))
    for m in results["models"]:
        c = m["curves"]
        cov = [c["coverage"][str(k)] for k in cfg.budgets]
        monotone = all(b >= a - 1e-12 for a, b in zip(cov, cov[1:]))
        out.append(f"{m['run_id']}: coverage never decreases with k: {monotone} ({', '.join(f'{v:.3f}' for v in cov)})")
        out.append(f"{m['run_id']}: coverage@{kmax} {c['coverage'][kmax]:.3f} ≥ weighted BoN "
                   f"{c['weighted_prm'][kmax]:.3f} ≥ majority {c['majority'][kmax]:.3f} (within noise)")
        worst = min(r["policy"] - r["fixed"] for r in m["policy"])
        out.append(f"{m['run_id']}: compute-optimal minus best fixed, worst over budgets and binnings: {worst:+.3f}")
        out.append(f"{m['run_id']}: hardest bin gains {m['hardest_bin_gain']:+.3f} in coverage from k=1 to k={kmax}"
                   + (f"; pass@1 beyond the training lengths: {m['beyond_training_pass1']:.3f}"
                      if m["beyond_training_pass1"] is not None else ""))
        small_budgets = [b for b in cfg.beam_budgets if b <= 8]
        beam_wins = [b for b in small_budgets
                     if max(c.get(f"beam_prm_w{w}", {}).get(str(b), 0) for w in cfg.beam_widths)
                     > c["best_of_n_prm"].get(str(b), 1)]
        out.append(f"{m['run_id']}: beam search beats best-of-N (PRM) at small budgets {beam_wins or 'none'} of "
                   f"{small_budgets} (Snell et al. report it on medium bins; at this scale it is a finding either way)")
    return out
