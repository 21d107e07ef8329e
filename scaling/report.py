"""A one-page ``report.md`` of a fit: laws, intervals, compute-optimal table, backtest, warnings, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.io import atomic_write_text


def _ci(ci: dict, key: str) -> str:
    lo, hi = ci.get(key, [float("nan"), float("nan")])
    return f"[{lo:.3g}, {hi:.3g}]"


def render(results: dict[str, Any]) -> str:
    conv = results["conventions"]
    lines = ["# Scaling-law fit", "",
             f"{results['n_points']} runs; parameter count: **{conv['params']}**, FLOPs: **{conv['flops']}**.", ""]
    if "approach3" in results:
        r = results["approach3"]
        ci = r["ci95"]
        lines += ["## Approach 3: L(N, D) = E + A/N^α + B/D^β", "",
                  f"L(N, D) = {r['E']:.4g} + {r['A']:.4g}/N^{r['alpha']:.4f} + {r['B']:.4g}/D^{r['beta']:.4f}", "",
                  "| parameter | value | 95% CI |", "|---|---|---|"]
        lines += [f"| {k} | {r[k]:.4g} | {_ci(ci, k) if ci else 'no bootstrap'} |"
                  for k in ("E", "A", "B", "alpha", "beta", "a", "b")]
        lo, hi = results["compute_range"]
        lines += ["", f"N_opt ∝ C^{r['a']:.3f}, D_opt ∝ C^{r['b']:.3f} (C = 6ND; {r['bootstrap']} bootstrap refits).",
                  "", f"The runs span C = {lo:.2g}..{hi:.2g}; rows far above that are extrapolations of the fitted "
                  "form and inherit its uncertainty (see the intervals and the backtest).",
                  "", "| C (FLOPs) | N_opt | D_opt | tokens/param | predicted loss |", "|---|---|---|---|---|"]
        lines += [f"| {row['C']:.0e} | {row['N_opt']:.3g} | {row['D_opt']:.3g} | {row['tokens_per_param']:.1f} | "
                  f"{row['loss']:.3f} |" for row in r["compute_optimal"]]
        lines.append("")
    if "approach2" in results:
        r = results["approach2"]
        lines += [f"## Approach 2: IsoFLOP profiles ({r['method']})", "",
                  f"N_opt ∝ C^{r['a']:.3f} (95% CI {_ci(r['ci95'], 'a')}), D_opt ∝ C^{r['b']:.3f} "
                  f"(95% CI {_ci(r['ci95'], 'b')}) over {r['n_budgets']} budgets.", ""]
    if "approach1" in results:
        r = results["approach1"]
        lines += ["## Approach 1: envelope of training curves", "",
                  f"N_opt ∝ C^{r['a']:.3f} (95% CI {_ci(r['ci95'], 'a')}), D_opt ∝ C^{r['b']:.3f} "
                  f"(95% CI {_ci(r['ci95'], 'b')}) from {r['n_runs']} runs.", ""]
    if "kaplan" in results:
        lines += ["## Kaplan power laws", "", "| law | α | scale | E | rmse (log) |", "|---|---|---|---|---|"]
        for name, f in results["kaplan"].items():
            if name == "L(N, D)":
                continue
            lines.append(f"| {name} | {f['alpha']:.4f} | {f['x_c']:.3g} | {f['E']:.3g} | {f['rmse_log']:.4f} |")
        j = results["kaplan"].get("L(N, D)")
        if j:
            lines += ["", f"Joint: L(N, D) = ((N_c/N)^(α_N/α_D) + D_c/D)^α_D with N_c = {j['N_c']:.3g}, "
                      f"D_c = {j['D_c']:.3g}, α_N = {j['alpha_N']:.4f}, α_D = {j['alpha_D']:.4f} "
                      f"(rmse {j['rmse_log']:.4f} in log-loss)."]
        lines.append("")
    if "backtest" in results:
        b = results["backtest"]
        lines += ["## Backtest (extrapolation)", "",
                  f"Approach 3 fitted on the {b['n_train']} smaller runs (by {b['holdout_by']}) predicts the "
                  f"{b['n_test']} largest with mean |relative error| {100 * b['mean_abs_rel_error']:.2f}% "
                  f"(max {100 * b['max_abs_rel_error']:.2f}%).", "",
                  "| run | N | D | actual | predicted | error |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['run_id']} | {r['N']:.3g} | {r['D']:.3g} | {r['actual']:.4f} | {r['predicted']:.4f} | "
                  f"{100 * r['rel_error']:+.2f}% |" for r in b["runs"]]
        lines.append("")
    warnings = results["notes"] + [f"excluded {e}" for e in results["excluded"]]
    if "approach2" in results:
        warnings += [f"approach 2 excluded {e}" for e in results["approach2"]["excluded"]]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    if results.get("figures"):
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in results["figures"]] + [""]
    return "\n".join(lines)


def write(results: dict[str, Any], out_dir: Path) -> Path:
    path = Path(out_dir) / "report.md"
    atomic_write_text(path, render(results))
    return path
