"""`make bench`: every benchmark, measured side by side on this machine; results in bench/results/."""

from __future__ import annotations

import argparse
import importlib
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from scaling.io import atomic_write_json, atomic_write_text, read_json

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's name with its family, model and stepping: a VM's name ("AMD EPYC") does not tell one generation
    from another, and the figures depend on it."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():  # the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k)]
    return f"{name} ({', '.join(ids)})" if ids else name


def markdown(results: dict) -> str:
    lines = [f"# Benchmarks ({results['date']}, {results['machine']})", ""]
    if "throughput" in results:
        lines += ["## Trainer step vs minimal PyTorch GPT (1 thread, batch 8x256, vocab 256, interleaved)", "",
                  "ours: the trainer's model, llama (the default: RMSNorm, SwiGLU, RoPE) or gpt2 (the baseline's "
                  "blocks); baseline: a nanoGPT-style GPT-2 step (bench/baseline_gpt.py).", "",
                  "| shape (L,H,d) | arch | setting | ours tok/s | baseline tok/s | speed-up | pair ratios (quartiles) "
                  "| ours MFU | spread ours/base |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in results["throughput"]:
            q1, _, q3 = r["pair_ratio_quartiles"]
            lines.append(f"| {r['shape']} | {r.get('arch', 'gpt2')} | {r['setting']} | {r['ours_tokens_per_s']:,.0f} | "
                         f"{r['baseline_tokens_per_s']:,.0f} | {r['speedup']:.2f}x | {q1:.2f}-{q3:.2f} | "
                         f"{100 * r['ours_mfu']:.1f}% | "
                         f"{r['ours_spread_pct']:.0f}% / {r['baseline_spread_pct']:.0f}% |")
        if results.get("own_processes"):
            lines += ["", "llama, each side in its own process (alternated; medians): plain fp32 eager; fp32 eager "
                      "with glibc keeping freed memory on both sides, as every training process runs; and the "
                      "trainer's best CPU settings:", "",
                      "| shape (L,H,d) | setting | ours tok/s | baseline tok/s | speed-up |", "|---|---|---|---|---|"]
            for r in results["own_processes"]:
                lines.append(f"| {r['shape']} | {r['setting']} | {r['ours_tokens_per_s']:,.0f} | "
                             f"{r['baseline_tokens_per_s']:,.0f} | {r['speedup']:.2f}x |")
        if not results.get("fast_bf16"):
            lines.append("\nbf16 on this CPU is emulated (neither AMX nor AVX512-BF16): its rows ran 3 repeats, their "
                         "MFU is against the fp32 peak (the units emulated bf16 runs on), and the bf16/bf16 "
                         "comparison is left out.")
        lines.append("")
    if "precision_auto" in results:
        lines += ["## precision=auto on this CPU (llama, batch 4x256, one thread; the run's own probe)", "",
                  "| shape (L,H,d) | bf16 step / fp32 step speed | auto chooses |", "|---|---|---|"]
        lines += [f"| {r['shape']} | {r['bf16_speedup']:.2f}x | {r['choice']} |" for r in results["precision_auto"]]
        lines.append("")
    if "data_path" in results:
        d = results["data_path"]
        lines += ["## Data path (default train config)", "",
                  f"- loader: {d['loader_ms_per_step']:.2f} ms per step vs {d['step_ms']:.0f} ms step "
                  f"({100 * d['loader_fraction']:.2f}%)",
                  f"- cached token files opened in {d['cached_prepare_s']:.3f} s; {d['token_caches_on_disk']} "
                  "token cache(s) on disk, one per data config",
                  f"- process start to the first training step: {d['start_to_first_step_s']:.2f} s", ""]
    if "sweep_layout" in results:
        s = results["sweep_layout"]
        one_by_two, two_by_one = s["1x2"], s["2x1"]
        lines += [f"## Sweep layout ({two_by_one['points']} points of the default grid: {' '.join(s['grid'])})", "",
                  f"- 1 worker x 2 threads: {one_by_two['points_per_hour']:.0f} points/hour "
                  f"({one_by_two['seconds']:.0f} s)",
                  f"- 2 workers x 1 thread: {two_by_one['points_per_hour']:.0f} points/hour "
                  f"({two_by_one['seconds']:.0f} s)",
                  f"- ratio: {s['ratio_2x1_over_1x2']:.2f}x (the local launcher's default is one 1-thread worker "
                  "per core)", "",
                  "The cores' own ceiling, fp32 matmul n x n (total GFLOP/s):", "",
                  "| n | 1 process x 1 thread | 1 x 2 threads | 2 processes x 1 thread | 2x1 / 1x2 |",
                  "|---|---|---|---|---|"]
        for c in s["matmul_ceiling"]:
            lines.append(f"| {c['n']} | {c['1x1_flops_per_s'] / 1e9:.0f} | {c['1x2_flops_per_s'] / 1e9:.0f} | "
                         f"{c['2x1_flops_per_s'] / 1e9:.0f} | {c['ratio_2x1_over_1x2']:.2f}x |")
        lines.append("")
    if "point_start" in results:
        s = results["point_start"]
        fresh_s, forked_s = (", ".join(f"{r['seconds']:.0f} s" for r in s[k]) for k in ("fresh", "forked"))
        lines += [f"## Point start ({s['fresh'][0]['points']} points of the default grid: {' '.join(s['grid'])}, "
                  "2 workers x 1 thread, alternated)", "",
                  f"- a new interpreter per point (`launcher.preload=false`): {s['fresh_points_per_hour']:.0f} "
                  f"points/hour ({fresh_s})",
                  f"- forked from one preloaded process (`launcher.preload=true`, the default): "
                  f"{s['forked_points_per_hour']:.0f} points/hour "
                  f"({forked_s})",
                  f"- ratio: {s['ratio']:.2f}x (rounds: {', '.join(f'{r:.2f}x' for r in s['pair_ratios'])})", ""]
    if "branched" in results:
        r = results["branched"]
        b, c = r["studies"]["branched"], r["studies"]["cosine"]
        lines += ["## Cooldown branches vs independent cosine runs (the same 35 points, 2 workers)", "",
                  f"Command: `{r['command']}`; the reference adds `grid.branched=false optim=adamw_cosine`.", "",
                  f"- FLOPs trained: {b['flops_trained']:.3g} vs {c['flops_trained']:.3g}: "
                  f"**{r['flops_ratio']:.2f}x**; wall time {b['seconds']:.0f} s vs {c['seconds']:.0f} s: "
                  f"{r['seconds_ratio']:.2f}x",
                  f"- each run's loss, branch vs its cosine twin: mean {100 * r['run_gap_mean']:+.2f}%, "
                  f"max |{100 * r['run_gap_max_abs']:.2f}|%",
                  f"- the two approach-3 laws at every grid point: mean |gap| {100 * r['law_gap_mean']:.2f}%, "
                  f"max {100 * r['law_gap_max']:.2f}%", "",
                  "| exponent | branched (95% CI) | cosine (95% CI) | each inside the other's CI |",
                  "|---|---|---|---|"]
        for k, e in r["exponents"].items():
            lines.append(f"| {k} | {e['branched']:.3f} [{e['branched_ci95'][0]:.3f}, {e['branched_ci95'][1]:.3f}] "
                         f"| {e['cosine']:.3f} [{e['cosine_ci95'][0]:.3f}, {e['cosine_ci95'][1]:.3f}] | "
                         f"{'yes' if e['each_inside_the_other'] else 'no'} |")
        lines += ["", "Each run against its twin (same N and D):", "",
                  "| size | tokens/param | branched loss | cosine loss | gap |", "|---|---|---|---|---|"]
        lines += [f"| {x['size']} | {x['tokens_per_param']:g} | {x['branched_loss']:.4f} | {x['cosine_loss']:.4f} | "
                  f"{100 * x['gap']:+.2f}% |" for x in r.get("runs", [])]
        lines.append("")
    if "mup" in results:
        r = results["mup"]
        widths = sorted(r["widths"], key=int)
        lines += ["## Learning-rate transfer across width: μP vs standard parametrization", "",
                  f"Command: `{r['command']}`; the standard parametrization adds `model.mup_base_width=null`. "
                  "Each width trains at 7 learning rates a factor 2 apart (one budget, 256 steps); lr_opt is the "
                  "vertex of a parabola in log-lr through the best rate and its neighbours ('edge' when the best "
                  "is the smallest or largest rate swept).", "",
                  "| d_model | μP lr_opt | μP best loss | standard lr_opt | standard best loss |",
                  "|---|---|---|---|---|"]
        for w in widths:
            m, s_ = r["widths"][w]["mup"], r["widths"][w]["standard"]
            lines.append(f"| {w} | {m['lr_opt']:.3g}{'' if m['interior'] else ' (edge)'} | {m['best_loss']:.4f} | "
                         f"{s_['lr_opt']:.3g}{'' if s_['interior'] else ' (edge)'} | {s_['best_loss']:.4f} |")
        lines += ["", f"- lr_opt at {widths[-1]} / lr_opt at {widths[0]}: μP {r['mup_shift']:.2f}x, standard "
                  f"{r['standard_shift']:.2f}x (1 = perfect transfer)", ""]
    if "tokenize" in results:
        t = results["tokenize"]
        lines += [f"## Tokenization ({t['megabytes']:.1f} MB of the default corpus's training text, BPE 4096, medians "
                  f"of {t['rounds']} alternated rounds)", "",
                  "| path | MB/s | MB/s per core |", "|---|---|---|"]
        lines += [f"| {k.replace('_', ' ')} | {v:.2f} | {t['mb_per_s_per_core'][k]:.2f} |"
                  for k, v in t["mb_per_s"].items()]
        lines += ["", f"- the cache builder's encoder on {t['cores']} processes / the tokenizer's own encode_batch: "
                  f"{t['ratio_encoder_vs_encode_batch']:.2f}x", ""]
    if "fitter" in results:
        f = results["fitter"]
        lines += ["## Fitter", "",
                  f"- approach 3, the full grid of starts + {f['speed']['bootstrap']} bootstraps on "
                  f"{f['speed']['n_points']} points of a known law in the fitted form: "
                  + ", ".join(f"{form} {r['seconds']:.1f} s ({r['starts']} starts)"
                              for form, r in f["speed"]["forms"].items()),
                  f"- 95% bootstrap interval coverage over {f['coverage']['trials']} synthetic trials: "
                  + "; ".join(f"{form}: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in rates.items())
                              for form, rates in f["coverage"]["coverage"].items()), ""]
    if "law_forms" in results:
        lines += ["## Approach 3's forms on the shipped tables (python -m bench --only law_forms)", "",
                  "Mean |relative residual| of the fit on all points, and the backtest's mean |error| (signed) with "
                  "the largest fifth of budgets (or sizes) held out: chinchilla = E + A/N^α + B/D^β, kaplan_floor "
                  "= the default.", "",
                  "| table | points | held out by | chinchilla fit | kaplan_floor fit | chinchilla backtest | "
                  "kaplan_floor backtest |", "|---|---|---|---|---|---|---|"]
        for t in results["law_forms"]["tables"]:
            c, k = t["chinchilla"], t["kaplan_floor"]
            lines.append(f"| {t['table']} | {t['points']} | {t['held_out_by']} | {100 * c['mean_abs_residual']:.2f}% "
                         f"| {100 * k['mean_abs_residual']:.2f}% | {100 * c['backtest']:.2f}% "
                         f"({100 * c['backtest_signed']:+.2f}%) | {100 * k['backtest']:.2f}% "
                         f"({100 * k['backtest_signed']:+.2f}%) |")
        lines.append("")
    return "\n".join(lines)


def _throughput() -> dict:
    from bench import throughput
    from scaling.hardware import cpu_has_fast_bf16

    return {"throughput": throughput.run(),
            "own_processes": [throughput.own_processes(shape, setting) for setting in throughput.OWN_PROCESS_SETTINGS
                              for shape in throughput.SHAPES],
            "fast_bf16": cpu_has_fast_bf16()}


def _precision_auto() -> dict:
    from bench import throughput
    from scaling.precision import MIN_SPEEDUP, bf16_speedup

    rows = []
    for shape in throughput.SHAPES:
        speedup = bf16_speedup(throughput.model_config(*shape), 1)
        rows.append({"shape": "({},{},{})".format(*shape), "bf16_speedup": speedup,
                     "choice": "bf16" if speedup >= MIN_SPEEDUP else "fp32"})
    return {"precision_auto": rows}


def _run_of(name: str, module: str | None = None, function: str = "run") -> Callable[[], dict]:
    """Section ``name``: the figures of ``bench.<module>.<function>()`` (module: the section's name)."""
    def section() -> dict:
        return {name: getattr(importlib.import_module(f"bench.{module or name}"), function)()}
    return section


def _fitter() -> dict:
    from bench import fitter

    return {"fitter": {"speed": fitter.speed(), "coverage": fitter.coverage()}}


def _law_forms() -> dict:
    from bench import law_forms

    return {"law_forms": law_forms.compare()}


SECTIONS = {"throughput": _throughput, "precision_auto": _precision_auto, "data_path": _run_of("data_path"),
            "sweep_layout": _run_of("sweep_layout"),
            "point_start": _run_of("point_start", "sweep_layout", "point_start"),
            "branched": _run_of("branched"), "mup": _run_of("mup"), "tokenize": _run_of("tokenize"),
            "fitter": _fitter, "law_forms": _law_forms}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", nargs="*", choices=SECTIONS)
    args = parser.parse_args()
    results: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                     "machine": f"{cpu_model()}, {platform.machine()} "
                                f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads "
                                f"available, torch {torch.__version__}"}
    stem = f"{results['date']}-cpu"
    for name in args.only or SECTIONS:
        results.update(SECTIONS[name]())
        # Written after every section: a later failure loses nothing measured; --only refreshes some sections and
        # keeps the others of the same day.
        previous = RESULTS / f"{stem}.json"
        merged = {**read_json(previous), **results} if previous.exists() else results
        atomic_write_json(previous, merged)
        atomic_write_text(RESULTS / f"{stem}.md", markdown(merged))
    print(markdown(merged))


if __name__ == "__main__":
    main()
