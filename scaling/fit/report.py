"""A one-page ``report.md`` of a fit: conventions, laws with intervals, compute-optimal table, out-of-sample
checks, what could not be fitted, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.fit.approach1 import LATE_IN_RUN
from scaling.fit.approach3 import DEFAULT_FORM, FORM_WHY
from scaling.fit.table import CONVENTIONS_WHY
from scaling.io import atomic_write_text


def _ci(ci: dict, key: str) -> str:
    lo, hi = ci.get(key) or (None, None)
    return "n/a" if lo is None or hi is None else f"[{lo:.3g}, {hi:.3g}]"


def _conventions(results: dict[str, Any]) -> list[str]:
    conv = results["conventions"]
    relation = conv.get("C_of_N_D", {}).get("form", "C/D not determined by N")
    lines = ["# Scaling-law fit", "",
             f"**N = {conv['params']} parameters; C = FLOPs under {conv['flops']}** ({relation}). Every N, C and "
             f"D_opt below is counted this way. {results['n_runs']} runs ({results['n_points']} rows), "
             f"C = {results['compute_range'][0]:.2g}..{results['compute_range'][1]:.2g}.", "",
             f"Why this pair by default: {CONVENTIONS_WHY}", ""]
    if "study_cost" in results:
        c = results["study_cost"]
        lines += [f"Study cost: {c['branches']} of the {c['runs']} runs are cooldown branches of a longer run of "
                  f"their size, so the study trained {c['flops_trained']:.3g} FLOPs, {c['ratio']:.2f} of the "
                  f"{c['flops_independent']:.3g} its runs would cost trained independently. Each run enters the "
                  "law with its own D and C.", ""]
    if "eval" in results:
        e = results["eval"]
        lines += [f"Evaluation: each run's loss is the mean over {e['sequences']} held-out sequences sampled across "
                  f"the whole validation split; its standard error is {e['median_se']:.2g} (median over runs, "
                  f"{100 * e['median_se_rel']:.2f}% of the loss)"
                  + (f", against a median gap of {e['median_gap']:.2g} between neighbouring sizes of a budget"
                     if e["median_gap"] is not None else "") + ".", ""]
    return lines


def _law(r: dict[str, Any]) -> str:
    by_n, by_d = f"{r['A']:.4g}/N^{r['alpha']:.4f}", f"{r['B']:.4g}/D^{r['beta']:.4f}"
    if r["form"] == "chinchilla":
        return f"{r['E']:.4g} + {by_n} + {by_d}"
    p = f"{1 / r['beta']:.4f}"
    return f"{r['E']:.4g} + (({by_n})^{p} + ({by_d})^{p})^{r['beta']:.4f}"


def _approach3(r: dict[str, Any], flops: str) -> list[str]:
    ci = r["ci95"]
    lines = [f"## Approach 3: {r['formula']} (form `{r['form']}`)", "",
             f"L(N, D) = {_law(r)} ({r['bootstrap']} bootstrap refits over whole runs).", "",
             f"Why {DEFAULT_FORM} is the default: {FORM_WHY}", "",
             "| parameter | value | 95% CI |", "|---|---|---|"]
    lines += [f"| {k} | {r[k]:.4g} | {_ci(ci, k)} |" for k in ("E", "A", "B", "alpha", "beta", "a", "b")
              if k in r]
    if "a" in r:
        lo, hi = r["exponents_over"]
        lines += ["", f"N_opt ∝ C^a and D_opt ∝ C^b over the runs' budgets (C = {lo:.2g}..{hi:.2g} under {flops}): "
                  f"a = {r['a']:.3f}, b = {r['b']:.3f}, a + b = {r['a_plus_b']:.3f}; their limits at large C are "
                  f"β/(α+β) = {r['a_limit']:.3f} and α/(α+β) = {r['b_limit']:.3f}."]
    if "compute_optimal" in r:
        lines += ["", "Rows beyond the runs extrapolate the fitted form and inherit its uncertainty (the loss "
                  "interval is the 95% range of the bootstrap fits).", "",
                  f"| C ({flops}) | N_opt | D_opt (tokens) | tokens/param | predicted loss | 95% interval |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {row['C']:.1e} | {row['N_opt']:.3g} | {row['D_opt']:.3g} | {row['tokens_per_param']:.1f} | "
                  f"{row['loss']:.4f} | {_ci(row, 'loss_pi95')} |" for row in r["compute_optimal"]]
    return lines + [""]


def _tuning(t: dict[str, Any], untuned: dict[str, Any] | None) -> list[str]:
    lines = ["## Per-size tuning", "",
             "Each (N, D) cell trained with several settings; the law above uses each cell's best run. lr_opt and "
             "batch_opt are refined along their swept axis (a parabola in log through the best and its neighbours).",
             "", "| cell | N | C | best loss | untuned loss | lr_opt | batch_opt (tokens) | β2 |",
             "|---|---|---|---|---|---|---|---|"]
    for c in t["cells"]:
        untuned_loss = "n/a" if c["untuned_loss"] is None else f"{c['untuned_loss']:.4f}"
        lines.append(f"| {c['cell']} | {c['N']:.3g} | {c['C']:.3g} | {c['loss']:.4f} | {untuned_loss} | "
                     f"{c['lr_opt']:.3g} | {c['batch_tokens_opt']:.0f} | {c['beta2']:g} |")
    for variable, laws in t.get("laws", {}).items():
        lines += [""] + [f"- {key}_opt = {law['coef']:.3g}·{variable}^{law['exponent']:.3f}"
                         for key, law in laws.items()]
    if t.get("next"):
        n = t["next"]
        variable = "C" if "C" in n else "N"
        lines.append(f"- proposed for the next point ({variable} = {n[variable]:.3g}): "
                     + ", ".join(f"{k} {v:.3g}" for k, v in n.items() if k != variable))
    if untuned:
        lines += ["", f"Without tuning (the untuned runs alone) approach 3 gives α = {untuned['alpha']:.3f}, "
                  f"β = {untuned['beta']:.3f}, a = {untuned['a_limit']:.3f}"
                  + (f": shifts of {untuned['shift']['alpha']:+.3f}, {untuned['shift']['beta']:+.3f}, "
                     f"{untuned['shift']['a_limit']:+.3f} from the tuned law, whose losses are "
                     f"{-100 * untuned['mean_loss_gap']:.2f}% lower on average at the untuned points"
                     if "shift" in untuned else "") + "."]
    lines += [f"- {note}" for note in t["notes"]]
    return lines + [""]


def _held_out(name: str, title: str, r: dict[str, Any]) -> list[str]:
    runs = r["runs"] if "runs" in r else [x for f in r["folds"] for x in f.get("runs", [])]
    total = len(runs)
    lines = [f"### {title}", "",
             f"Mean |relative error| {100 * r['mean_abs_rel_error']:.2f}% (max {100 * r['max_abs_rel_error']:.2f}%), "
             f"signed {100 * r['mean_rel_error']:+.2f}% (predicted above the actual loss for {r['n_overpredicted']} "
             f"of {total} runs); {r['inside_pi95']} of {total} held-out runs inside their 95% prediction interval.",
             ""]
    folds = [f for f in r.get("folds", []) if "runs" in f]
    if folds:  # signed errors that change with the held-out level: the law's curvature misses the runs'
        level = "budget" if "budget" in folds[0] else "size"
        lines += [f"Signed mean error by held-out {level}: " + ", ".join(
            f"{f[level]:.3g} {100 * f['mean_rel_error']:+.2f}%" for f in folds) + ".", ""]
    lines += ["| run | N | D | actual | predicted | error | 95% interval |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {x['run_id']} | {x['N']:.3g} | {x['D']:.3g} | {x['actual']:.4f} | {x['predicted']:.4f} | "
              f"{100 * x['rel_error']:+.2f}% | {_ci(x, 'pi95')} |" for x in runs]
    skipped = [f for f in r.get("folds", []) if "not_fitted" in f]
    lines += [f"- not fitted for {f.get('budget', f.get('size')):.3g}: {f['not_fitted']}" for f in skipped]
    return lines + [""]


def _checks(checks: dict[str, dict[str, Any]]) -> list[str]:
    verdict = {True: "met", False: "**not met**", None: "not checked"}
    return (["## Checks", "", "| check | goal | measured | |", "|---|---|---|---|"]
            + [f"| {name} | {c['goal']} | {c['measured']} | {verdict[c['met']]} |" for name, c in checks.items()]
            + [""])


def render(results: dict[str, Any]) -> str:
    flops = results["conventions"]["flops"]
    lines = _conventions(results)
    if "checks" in results:
        lines += _checks(results["checks"])
    if "approach3" in results:
        lines += _approach3(results["approach3"], flops)
    if "tuning" in results:
        lines += _tuning(results["tuning"], results.get("untuned"))
    if "approach2" in results:
        r = results["approach2"]
        lines += [f"## Approach 2: IsoFLOP profiles ({r['method']})", "",
                  f"N_opt ∝ C^{r['a']:.3f} (95% CI {_ci(r['ci95'], 'a')}), D_opt ∝ C^{r['b']:.3f} "
                  f"(95% CI {_ci(r['ci95'], 'b')}), a + b = {r['a_plus_b']:.3f}, over {r['n_budgets']} budgets; "
                  f"D_opt is read off each profile at N_opt (intervals: {r['ci95_method']}).", ""]
    if "approach1" in results:
        r = results["approach1"]
        lines += ["## Approach 1: envelope of training curves", "",
                  f"N_opt ∝ C^{r['a']:.3f} (95% CI {_ci(r['ci95'], 'a')}), D_opt ∝ C^{r['b']:.3f} "
                  f"(95% CI {_ci(r['ci95'], 'b')}) from {r['n_runs']} runs"
                  + (f", the seeds of each of {r['n_configs']} grid points averaged into one curve."
                     if r["n_configs"] < r["n_runs"] else ".")
                  + f" {100 * r['late_share']:.0f}% of the envelope lies within the last "
                  f"{100 * (1 - LATE_IN_RUN):.0f}% of its run's tokens (Hoffmann et al. 2022 found all of theirs "
                  "there); the rest are checkpoints read in mid-schedule.",
                  ""]
    if "kaplan" in results:
        k = results["kaplan"]
        lines += ["## Kaplan power laws", "", f"Rule: {k['rule']}; L(C) keeps each budget's best size on the "
                  "frontier (the seeds of one size averaged).", "", "| law | α | scale | E | rmse (log) |",
                  "|---|---|---|---|---|"]
        for name, f in k.items():
            if name.startswith("L(") and name != "L(N, D)" and isinstance(f, dict):
                lines.append(f"| {name} | {f['alpha']:.4f} | {f['x_c']:.3g} | {f['E']:.3g} | {f['rmse_log']:.4f} |")
        j = k.get("L(N, D)")
        if j:
            lines += ["", f"Joint: L(N, D) = ((N_c/N)^(α_N/α_D) + D_c/D)^α_D with N_c = {j['N_c']:.3g}, "
                      f"D_c = {j['D_c']:.3g}, α_N = {j['alpha_N']:.4f}, α_D = {j['alpha_D']:.4f} "
                      f"(rmse {j['rmse_log']:.4f} in log-loss)."]
        lines.append("")
    checks = [(name, title) for name, title in (
        ("backtest", "Extrapolation: the largest budget held out"),
        ("leave_one_budget_out", "Leave one budget out"),
        ("size_ladder", "Size ladder: each size predicted from the smaller ones")) if name in results]
    if checks:
        lines += ["## Out-of-sample checks (approach 3, whole runs held out)", ""]
        if "backtest" in results:
            b = results["backtest"]
            lines += [f"**Extrapolation error: {100 * b['mean_abs_rel_error']:.2f}%** mean |relative error| "
                      f"(signed {100 * b['mean_rel_error']:+.2f}%) on the "
                      f"{b['n_test_runs']} runs of the held-out {'budget' if b['holdout_by'] == 'flops' else 'size'}"
                      f"(s), fitted on the other {b['n_train_runs']}.", ""]
            for other, e in b.get("other_forms", {}).items():
                lines += [f"The same split fitted in the `{other}` form: " + (
                    f"not fitted ({e['not_fitted']})" if "not_fitted" in e else
                    f"{100 * e['mean_abs_rel_error']:.2f}% (signed {100 * e['mean_rel_error']:+.2f}%, "
                    f"{e['n_overpredicted']} of {b['n_test_runs']} predicted too high)") + ".", ""]
        for name, title in checks:
            lines += _held_out(name, title, results[name])
    if results.get("not_identifiable"):
        lines += ["## Not identifiable", ""] + [f"- {k}: {v}" for k, v in results["not_identifiable"].items()] + [""]
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
