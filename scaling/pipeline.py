"""A sweep after its grid is expanded: freeze, launch, then a list of steps (tables, the fit, a study's analysis).

A new study is a new step in ``STEPS``, not a new branch in the entry point; each step reads the sweep directory
(scaling.sweepdir) and writes its own outputs there.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from scaling.config import ConfigError, TaskConfig
from scaling.sweepdir import DONE, freeze, run_dir, statuses

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    name: str
    """Directory name of the sweep under `out_dir` (letters, digits, `-`, `_`, `.`)."""
    out_dir: str
    dry_run: bool
    """Print the table of points (with estimated times) and run nothing."""
    probe: bool
    """Measure each size's throughput for the dry-run estimates."""
    fit: bool
    """Fit scaling laws when the sweep ends (report/)."""
    fit_params: str
    """Parameter count N of the sweep's laws (non_embedding or total); with grid.flop_convention it is the
    convention pair written into the manifest, which every fit of the sweep uses unless told otherwise."""
    fit_bootstrap: int
    """Bootstrap refits for the intervals (0: none)."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError("sweep.name", f"{self.name!r} is not a safe directory name",
                              "use letters, digits, '-', '_' and '.'")
        if self.fit_params not in ("non_embedding", "total"):
            raise ConfigError("sweep.fit_params", f"unknown parameter count {self.fit_params!r}",
                              "use total or non_embedding")
        if self.fit_bootstrap < 0:
            raise ConfigError("sweep.fit_bootstrap", f"{self.fit_bootstrap} is negative", "use 0 (none) or e.g. 200")


@dataclass(frozen=True)
class Sweep:
    """What the steps after the runs need to know."""

    config: SweepConfig
    directory: Path
    cpu_workers: int
    """Single-threaded processes the steps may run side by side on CPU: the local launcher's workers (one per core
    unless ``launcher.workers`` says otherwise), so a sweep held to fewer cores stays there after its runs."""
    testtime: Any = None
    """The test-time study's config (scaling.testtime.study.TestTimeConfig), when the sweep has one."""
    task: TaskConfig | None = None


def tables(sweep: Sweep) -> None:
    from scaling.results import write_tables

    write_tables(sweep.directory)
    log.info("tables: %s", sweep.directory / "results")


def fit(sweep: Sweep) -> None:
    if not sweep.config.fit:
        return
    from scaling.fit import checks
    from scaling.fit.run import fitted, write_fit
    from scaling.fit.table import FitInputError, from_sweep

    try:
        table = from_sweep(sweep.directory)
        for note in table.notes:
            log.warning("fit: %s", note)
        results = write_fit(table, sweep.directory / "report", bootstrap=sweep.config.fit_bootstrap)
        names, report = fitted(results), sweep.directory / "report" / "report.md"
        if names:
            log.info("fit: %s (%s)", report, ", ".join(names))
            # A law that misses a goal is still written, and said so where the sweep ends, not only in the report.
            (log.warning if checks.missed(results["checks"]) else log.info)("fit: %s", checks.summary(
                results["checks"]))
        else:
            log.warning("fit: no law could be fitted from these runs; %s says why", report)
    except (FitInputError, ValueError) as e:
        log.error("fit skipped: %s", e)


def testtime_study(sweep: Sweep) -> None:
    if sweep.testtime is None:
        return
    from scaling.testtime.study import run_study

    run_study(sweep.directory, sweep.testtime, sweep.task, sweep.cpu_workers)
    log.info("test-time study: %s", sweep.directory / "testtime" / "report.md")


STEPS: tuple[Callable[[Sweep], None], ...] = (tables, fit, testtime_study)


def run_sweep(sweep: Sweep, kind: str, points: list, launcher: Any) -> None:
    """Freeze the points, run them (locally, or on Slurm and wait when asked), then every step in order; exits 1 if
    a point failed, after the steps have used the others."""
    from scaling.launch import run_local, submit_slurm, wait_slurm

    config, directory = sweep.config, sweep.directory
    conventions = {"params": config.fit_params, "flops": points[0].grid["flop_convention"]}
    added = freeze(directory, config.name, kind, points, conventions)
    grown = f" ({added} added to the {len(points) - added} already there)" if 0 < added < len(points) else ""
    log.info("sweep %s: %d points frozen in %s%s", config.name, len(points), directory, grown)
    if launcher.kind == "local":
        final = run_local(directory, launcher)
    else:
        job_id = submit_slurm(directory, config.name, launcher)
        if job_id is not None and not launcher.wait:
            print(f"submitted slurm array job {job_id}; status: python -m scaling status {directory}")
            return
        if job_id is not None:
            wait_slurm(job_id, launcher.poll_interval_s)
        final = statuses(directory)
    for step in STEPS:
        step(sweep)
    failed = [pid for pid, status in final.items() if status not in DONE]
    print(f"sweep {config.name}: {len(final) - len(failed)} of {len(final)} points done -> {directory}")
    if failed:
        for pid in failed:
            log.error("point %s: %s (log: %s)", pid, final[pid], run_dir(directory, pid) / "process.log")
        sys.exit(1)
