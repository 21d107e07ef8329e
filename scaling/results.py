"""Collect a sweep directory into tidy tables, from the files runs write (never from log text).

* ``runs``: one row per grid point — config fields, params by component, actual tokens, FLOPs under each
  convention, final/min validation loss with its standard error and per-source losses, status, wallclock, device;
* ``evals``: one row per eval event — run id, step, tokens, FLOPs, validation loss (mean, standard error, and
  ``val_loss.<source>`` per corpus source).

Imports no torch: the analysis side runs anywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.io import atomic_write, read_jsonl
from scaling.sweepdir import point_status, read_manifest, read_point_config, run_dir

log = logging.getLogger(__name__)

def _flatten(prefix: str, tree: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in tree.items():
        if isinstance(value, dict):
            _flatten(f"{prefix}{key}.", value, out)
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value


def collect(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    run_rows, eval_rows = [], []
    for point in manifest["points"]:
        pid = point["id"]
        run_directory = run_dir(sweep_dir, pid)
        status, summary = point_status(run_directory)
        row: dict[str, Any] = {"run_id": pid, "status": status, **{f"grid.{k}": v for k, v in point["grid"].items()}}
        _flatten("config.", read_point_config(sweep_dir, pid), row)
        if summary and status in ("finished", "diverged"):
            row.update(final_val_loss=summary["final_val_loss"], min_val_loss=summary["min_val_loss"],
                       final_val_loss_se=summary.get("final_val_loss_se"), eval_sequences=summary.get("eval_sequences"),
                       tokens=summary["tokens"], steps=summary["steps"], wallclock_s=summary["wallclock_s"],
                       device=summary["device"], dtype=summary["dtype"], tokens_repeated=summary["tokens_repeated"],
                       last_good_step=summary["last_good_step"],
                       branch_tokens=(summary.get("branch") or {}).get("tokens", 0), git_sha=summary.get("git_sha"))
            row.update({f"version.{k}": v for k, v in (summary.get("versions") or {}).items()})
            row.update({f"params_{k}": v for k, v in summary["params"].items()})
            row.update({f"flops_{k}": v for k, v in summary["flops"].items()})
            row.update({f"final_val_loss.{k}": v for k, v in (summary.get("final_val_loss_by_source") or {}).items()})
        elif summary:
            row["error"] = summary.get("error")
        run_rows.append(row)
        metrics = run_directory / "metrics.jsonl"
        if metrics.exists():
            for event in read_jsonl(metrics):
                if event.get("event") == "eval":
                    by_source = {f"val_loss.{k}": v for k, v in (event.get("val_loss_by_source") or {}).items()}
                    eval_rows.append({"run_id": pid, **{k: v for k, v in event.items()
                                                        if k not in ("event", "val_loss_by_source")}, **by_source})
    return pd.DataFrame(run_rows), pd.DataFrame(eval_rows)


def write_tables(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, evals = collect(sweep_dir)
    out = Path(sweep_dir) / "results"
    atomic_write(out / "runs.csv", lambda tmp: runs.to_csv(tmp, index=False))
    atomic_write(out / "evals.csv", lambda tmp: evals.to_csv(tmp, index=False))
    return runs, evals


__all__ = ["collect", "write_tables"]
