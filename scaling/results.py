"""Collect a sweep directory into tidy tables, from the files runs write (never from log text).

* ``runs``: one row per grid point — config fields, params by component, actual tokens, FLOPs under each
  convention, final/min validation loss with its standard error and per-source losses, status, wallclock, device;
* ``evals``: one row per eval event — run id, step, tokens, FLOPs, validation loss (mean, standard error, and
  ``val_loss.<source>`` per corpus source).

Imports no torch: the analysis side runs anywhere.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from scaling.errors import UserError
from scaling.io import atomic_write, read_json, read_jsonl
from scaling.summary import SummaryCorrupt, read_summary

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SWEEP_FORMAT = 1


class SweepFormatError(UserError, ValueError):
    pass


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():
        raise SweepFormatError(f"{sweep_dir} is not a sweep directory (no {MANIFEST}); pass a sweep directory or a "
                               "CSV/JSONL table")
    manifest = read_json(path)
    for point in manifest.get("points", []):
        if not re.fullmatch(r"[0-9a-f]{12}", str(point.get("id"))):
            raise SweepFormatError(f"{path}: {point.get('id')!r} is not a valid point id (12 hex digits); the "
                                   "manifest was edited or is corrupt")
    if manifest.get("format") != SWEEP_FORMAT:
        raise SweepFormatError(f"{path}: sweep format {manifest.get('format')!r}, this version reads "
                               f"{SWEEP_FORMAT} (fix: use the matching version of scaling, or re-freeze the sweep)")
    return manifest


def point_status(run_dir: Path) -> tuple[str, dict[str, Any] | None]:
    """`finished` / `diverged` (summary present), `failed` (error recorded), `running`/`interrupted` (checkpoint or
    metrics but no summary), else `pending`."""
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = read_summary(summary_path)
        except SummaryCorrupt as e:
            return "corrupt", {"error": str(e)}
        return summary["status"], summary
    if (run_dir / "failed.json").exists():
        try:
            return "failed", read_json(run_dir / "failed.json")
        except ValueError:
            return "failed", None
    if (run_dir / "metrics.jsonl").exists():
        return "started", None
    return "pending", None


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
        run_dir = sweep_dir / "runs" / pid
        status, summary = point_status(run_dir)
        row: dict[str, Any] = {"run_id": pid, "status": status, **{f"grid.{k}": v for k, v in point["grid"].items()}}
        config = yaml.safe_load((sweep_dir / "points" / pid / "config.yaml").read_text())
        config.pop("defaults", None)
        config.pop("hydra", None)
        _flatten("config.", config, row)
        if summary and status in ("finished", "diverged"):
            row.update(final_val_loss=summary["final_val_loss"], min_val_loss=summary["min_val_loss"],
                       final_val_loss_se=summary.get("final_val_loss_se"), eval_sequences=summary.get("eval_sequences"),
                       tokens=summary["tokens"], steps=summary["steps"], wallclock_s=summary["wallclock_s"],
                       device=summary["device"], dtype=summary["dtype"], tokens_repeated=summary["tokens_repeated"],
                       last_good_step=summary["last_good_step"])
            row.update({f"params_{k}": v for k, v in summary["params"].items()})
            row.update({f"flops_{k}": v for k, v in summary["flops"].items()})
            row.update({f"final_val_loss.{k}": v for k, v in (summary.get("final_val_loss_by_source") or {}).items()})
        elif summary:
            row["error"] = summary.get("error")
        run_rows.append(row)
        metrics = run_dir / "metrics.jsonl"
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


__all__ = ["collect", "write_tables", "read_manifest", "point_status", "SweepFormatError"]
