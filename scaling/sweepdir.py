"""The sweep directory and the frozen config: their one owner (paths, manifest, frozen configs, point status).

Layout::

    manifest.json            format, grid kind, convention pair, every point's id and grid position
    points/<id>/config.yaml  the frozen, fully resolved config of each point (written before any run)
    runs/<id>/               each run's own directory (scaling.trainer; its summary: scaling.summary)
    slurm/                   the array script, each submission's point list, job id, task logs (scaling.launch)
    results/                 runs.csv, evals.csv (scaling.results)
    report/                  fit.json, report.md, figures/ (scaling.fit)

Every other module asks this one: it validates point ids before any path is built from them, and a sweep
directory of another format is refused with the fix. Imports no torch.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from scaling.config import RUN_ID, ConfigError, load_train_config, run_id, semantic
from scaling.errors import UserError
from scaling.io import atomic_write_json, atomic_write_text, read_json
from scaling.summary import STATUSES, SummaryCorrupt, read_summary

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SWEEP_FORMAT = 1
DONE = STATUSES  # statuses a sweep never runs again

# Written above every frozen config so that `python -m scaling.train --config-path DIR --config-name config` re-runs it
# with train.yaml's own Hydra settings (no Hydra output directory, the project's logging, the multirun directory).
TRAIN_YAML = Path(__file__).resolve().parent / "configs" / "train.yaml"
FROZEN_COMMENT = """\
# Fully resolved config of one run; re-run it with:
#   python -m scaling.train --config-path {directory} --config-name config
"""


def _hydra_settings() -> dict[str, Any]:
    """train.yaml's Hydra node and its overrides of Hydra's own config groups: what a frozen config repeats."""
    train = yaml.safe_load(TRAIN_YAML.read_text())
    overrides = [d for d in train["defaults"] if isinstance(d, dict) and next(iter(d)).startswith("override hydra/")]
    return {"defaults": ["_self_", *overrides], "hydra": train["hydra"]}


class SweepFormatError(UserError, ValueError):
    pass


# ------------------------------------------------------------------------------------------------ frozen configs


def frozen_yaml(raw: dict[str, Any], directory: Path) -> str:
    """A resolved config as the YAML file that re-runs it from ``directory``."""
    return (FROZEN_COMMENT.format(directory=directory) + yaml.safe_dump(_hydra_settings(), sort_keys=False)
            + OmegaConf.to_yaml(OmegaConf.create(raw)))


REFREEZE = "run `python sweep.py` with the sweep's grid again: it writes a point's config anew"


def read_frozen(path: Path, fix: str = REFREEZE) -> dict[str, Any]:
    """A frozen config (a point's or a run's ``config.yaml``) as a plain mapping, without its Hydra header;
    :class:`SweepFormatError` naming the file and ``fix`` when it is missing or damaged."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SweepFormatError(f"{path} is missing (fix: {fix})") from None
    except yaml.YAMLError as e:
        raise SweepFormatError(f"{path} is not valid YAML ({str(e).splitlines()[0]}) (fix: {fix})") from None
    if not isinstance(config, dict):
        raise SweepFormatError(f"{path} is not a frozen config (fix: {fix})")
    config.pop("defaults", None)
    config.pop("hydra", None)
    return config


def read_point_config(sweep_dir: Path, point_id: str) -> dict[str, Any]:
    """A point's frozen config, checked against the one its run recorded when it started: a frozen config edited
    since describes another run than the one trained under its id, and a table read from it would mislabel that
    run."""
    path = point_dir(sweep_dir, point_id) / "config.yaml"
    config = read_frozen(path)
    recorded = run_dir(sweep_dir, point_id) / "config.yaml"
    if recorded.exists():
        differing = _differing(semantic(config), semantic(read_frozen(recorded, fix=f"copy {path} there")))
        if differing:
            raise SweepFormatError(f"{path} was edited after its run started: {', '.join(differing[:3])} "
                                   f"{'differs' if len(differing) == 1 else 'differ'} from the run's own "
                                   f"{recorded.name}, so it no longer describes the run trained under its id (fix: "
                                   f"{REFREEZE}; a variant of a point is a run of its own: `python -m scaling.train "
                                   f"--config-path {recorded.parent} --config-name config field=value`)")
    return config


def _differing(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two nested mappings differ."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [prefix.rstrip(".") or "the config"]
    return [key for k in sorted(a.keys() | b.keys(), key=str)
            for key in _differing(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{prefix}{k}.")]


_ABSENT = object()


# ------------------------------------------------------------------------------------------------ paths


def point_dir(sweep_dir: Path, point_id: str) -> Path:
    return Path(sweep_dir) / "points" / point_id


def run_dir(sweep_dir: Path, point_id: str) -> Path:
    return Path(sweep_dir) / "runs" / point_id


def branch_point(run_directory: Path, step: int) -> Path:
    """Where a run keeps its state at ``step`` for cooldown branches (the trainer writes it, a branch and the
    launcher look for it)."""
    return Path(run_directory) / "branch_points" / f"step-{step:08d}.pt"


# ------------------------------------------------------------------------------------------------ manifest


SWEEP_DIR_FIX = "pass the directory a sweep wrote, sweep.out_dir/sweep.name, e.g. sweeps/default"


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    if not Path(sweep_dir).exists():
        raise SweepFormatError(f"{sweep_dir} does not exist (fix: {SWEEP_DIR_FIX})")
    if not path.exists():
        raise SweepFormatError(f"{sweep_dir} is not a sweep directory: it has no {MANIFEST}, which `python sweep.py` "
                               f"writes when it freezes a sweep's points (fix: {SWEEP_DIR_FIX})")
    manifest = read_json(path, fix="delete it: `python sweep.py` with the sweep's grid writes it again and keeps the "
                         "runs")
    for point in manifest.get("points", []):
        if not RUN_ID.fullmatch(str(point.get("id"))):
            raise SweepFormatError(f"{path}: {point.get('id')!r} is not a valid point id (12 hex digits); the "
                                   "manifest was edited or is corrupt")
    if manifest.get("format") != SWEEP_FORMAT:
        raise SweepFormatError(f"{path}: sweep format {manifest.get('format')!r}, this version reads "
                               f"{SWEEP_FORMAT} (fix: use the matching version of scaling, or re-freeze the sweep)")
    return manifest


def freeze(sweep_dir: Path, name: str, kind: str, points: list[Any], conventions: dict[str, str]) -> int:
    """Write every point's config and the manifest before anything runs; returns how many points were added.

    Re-freezing the same grid adds none. A grid that keeps every frozen point and adds more (seeds, budgets, sizes)
    extends the sweep: the frozen points, their configs and their runs stay as they are, so what has finished is
    not run again. Any other grid in the same directory is an error (two grids never mix in one sweep), and so is
    another convention pair. ``points`` are :class:`scaling.grid.GridPoint`; ``conventions`` is the (params,
    flops) pair every fit of the sweep uses."""
    sweep_dir = Path(sweep_dir)
    entries = [{"id": p.id, "grid": p.grid} for p in points]
    manifest = {"format": SWEEP_FORMAT, "name": name, "kind": kind,
                "created": datetime.now(timezone.utc).isoformat(), "conventions": conventions, "points": entries}
    added = points
    if (sweep_dir / MANIFEST).exists():
        manifest = read_manifest(sweep_dir)
        kept = {p["id"]: p for p in manifest["points"]}
        if not kept.keys() <= {p.id for p in points}:
            raise ConfigError("sweep.name", f"{sweep_dir} already holds a different grid",
                              "choose another sweep.name (or sweep.out_dir), delete the old sweep, or keep every "
                              "point of its grid: a sweep can only grow, by seeds, budgets or sizes")
        frozen_pair = manifest.get("conventions")  # None: an older sweep, which gains the pair now
        if frozen_pair not in (None, conventions):
            raise ConfigError("sweep.fit_params", f"{sweep_dir} fits under params={frozen_pair['params']}, "
                              f"flops={frozen_pair['flops']}, not params={conventions['params']}, "
                              f"flops={conventions['flops']}", "keep the sweep's pair, or fit it under another: "
                              f"python -m scaling fit {sweep_dir} --params P --flops F --out DIR")
        added = [p for p in points if p.id not in kept]
        # A frozen config is a function of the grid alone (its id is its hash): one deleted, damaged or edited since
        # is written again.
        lost = [p for p in points if p.id in kept and not _intact(point_dir(sweep_dir, p.id) / "config.yaml", p.id)]
        if lost:
            log.warning("%d frozen point config(s) in %s were missing, damaged or edited; written again from the "
                        "grid: %s", len(lost), sweep_dir, ", ".join(p.id for p in lost))
        _write_configs(sweep_dir, lost)
        if not added and frozen_pair is not None:
            return 0
        manifest["conventions"] = conventions
        manifest["points"] = [kept.get(e["id"], e) for e in entries]  # the grid's order; frozen entries as written
    _write_configs(sweep_dir, added)
    atomic_write_json(sweep_dir / MANIFEST, manifest)
    return len(added)


def _intact(frozen_config: Path, point_id: str) -> bool:
    """Whether the file is the frozen config of ``point_id``: readable, and hashing to that id."""
    try:
        return run_id(load_train_config(read_frozen(frozen_config))) == point_id
    except UserError:  # missing, not YAML, or not a valid config
        return False


def _write_configs(sweep_dir: Path, points: list[Any]) -> None:
    for point in points:
        directory = point_dir(sweep_dir, point.id)
        atomic_write_text(directory / "config.yaml", frozen_yaml(point.raw, directory))


# ------------------------------------------------------------------------------------------------ status


def point_status(run_directory: Path) -> tuple[str, dict[str, Any] | None]:
    """`finished` / `diverged` (a valid summary), `corrupt` (a summary that is not one), `failed` (error
    recorded), `started` (metrics but no summary), else `pending`."""
    summary_path = run_directory / "summary.json"
    if summary_path.exists():
        try:
            summary = read_summary(summary_path)
        except SummaryCorrupt as e:
            return "corrupt", {"error": str(e)}
        return summary["status"], summary
    if (run_directory / "failed.json").exists():
        try:
            return "failed", read_json(run_directory / "failed.json")
        except ValueError:
            return "failed", None
    if (run_directory / "metrics.jsonl").exists():
        return "started", None
    return "pending", None


def statuses(sweep_dir: Path) -> dict[str, str]:
    """Every point's status, in manifest order."""
    return {p["id"]: point_status(run_dir(sweep_dir, p["id"]))[0] for p in read_manifest(sweep_dir)["points"]}


def pending(sweep_dir: Path) -> list[dict[str, Any]]:
    """The manifest entries of the points that still have to run (not finished, not diverged)."""
    return [p for p in read_manifest(sweep_dir)["points"] if point_status(run_dir(sweep_dir, p["id"]))[0] not in DONE]
