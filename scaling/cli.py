"""Entry points behind ``train.py`` and ``sweep.py``: the only module that sees Hydra's DictConfig. It adapts the
command line to typed configs and hands over (the trainer; the sweep pipeline in scaling.pipeline).

Config mistakes and data problems end the process with one line on stderr that names the field and the fix,
and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError, ModelConfig, TrainConfig, load_train_config
from scaling.errors import EXIT_BUSY, EXIT_FAILED_JOBS, EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError
from scaling.logs import setup_logging

log = logging.getLogger("scaling")
# Absolute, so that Hydra finds the packaged configs however the entry point was started (`python -m`, a console
# script, `python train.py` in a checkout), from any directory.
CONFIGS = str(Path(__file__).resolve().parent / "configs")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


# Hydra raises its errors instead of printing them when this is "1" (hydra._internal.utils.run_and_report).
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"
_raising_set_here = False  # whether config_files_reported set HYDRA_FULL_ERROR (the user had not)


@contextlib.contextmanager
def config_files_reported() -> Iterator[None]:
    """Around Hydra's entry point: a config file that is not YAML (a typo in configs/, a damaged saved config.yaml)
    becomes one line naming the file, the place and the fix. Hydra prints such an error as a traceback through its
    own frames; it raises it under HYDRA_FULL_ERROR=1, which this sets while Hydra composes the config
    (``task_environment`` unsets it for the run itself), and prints Hydra's own short errors as Hydra does. A user who
    set the variable gets Hydra's errors raw, as asked."""
    global _raising_set_here
    if os.environ.get(HYDRA_FULL_ERROR) == "1":
        yield
        return
    os.environ[HYDRA_FULL_ERROR] = "1"
    _raising_set_here = True
    try:
        yield
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a config file"
        fail(f"{where} is not valid YAML: {e.problem} (fix: correct the file there)")
    except UnicodeDecodeError as e:
        path = _config_file_being_read(e)
        if path is None:
            raise
        fail(f"{path} is not a config file: byte {e.start} is not UTF-8 text (fix: restore the file, or name another "
             "with --config-path/--config-name)")
    except CompactHydraException as e:
        print(e, file=sys.stderr)
        if isinstance(e.__cause__, OmegaConfBaseException):
            print(e.__cause__, file=sys.stderr)
        sys.exit(1)
    finally:
        os.environ.pop(HYDRA_FULL_ERROR, None)
        _raising_set_here = False


def _config_file_being_read(e: BaseException) -> str | None:
    """The file Hydra's file config source was reading when ``e`` was raised, or None when it was not reading one."""
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "load_config" and "full_path" in frame.f_locals:
            return str(frame.f_locals["full_path"])
        tb = tb.tb_next
    return None


@contextlib.contextmanager
def task_environment() -> Iterator[None]:
    """The run itself, and every process it starts, with HYDRA_FULL_ERROR as the user left it: Hydra reports a failed
    run its own way. Set again afterwards, for the next job's composition in a multirun."""
    if not _raising_set_here:
        yield
        return
    os.environ.pop(HYDRA_FULL_ERROR, None)
    try:
        yield
    finally:
        os.environ[HYDRA_FULL_ERROR] = "1"


def to_container(cfg: DictConfig) -> dict[str, Any]:
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        fail(f"{e.full_key or 'config'}: cannot resolve ({type(e).__name__}: {str(e).splitlines()[0]})")
    container.pop("hydra", None)
    return container  # type: ignore[return-value]


def absolutize(raw: dict[str, Any], *dotted: str) -> None:
    """Make path fields absolute, so a frozen config means the same thing from any working directory."""
    for key in dotted:
        section, name = key.split(".")
        raw[section][name] = str(Path(raw[section][name]).expanduser().absolute())


def register_tasks() -> None:
    """The generated tasks the project ships (the data layer knows none by itself)."""
    from scaling.testtime.task import register

    register()


def resolve_data(raw: dict[str, Any]) -> None:
    """Corpus paths made absolute (against the directory the user ran from) and their contents fingerprinted,
    before the config is hashed or frozen: a frozen config names exactly the text it trains on."""
    from scaling.config import DataConfig, parse
    from scaling.data import content_fingerprint

    data = raw["data"]
    data["paths"] = [str(Path(p).expanduser().absolute()) for p in data.get("paths") or []]
    if data.get("fingerprint") is None and (data.get("source") == "task" or data.get("source") == "files"
                                            and data["paths"]):
        data["fingerprint"] = content_fingerprint(parse(DataConfig, data, "data."))


def resolve_precision(raw: dict[str, Any], model: ModelConfig | None = None) -> None:
    """``precision.dtype=auto`` replaced by the dtype it stands for on this machine for ``model`` (default: the
    config's own), before the config is hashed or frozen (scaling.precision)."""
    if raw["precision"]["dtype"] != "auto":
        return
    from scaling.config import RunConfig, parse
    from scaling.hardware import resolve_device, resolve_threads
    from scaling.precision import choose

    run = parse(RunConfig, raw["run"], "run.")
    model = model or parse(ModelConfig, raw["model"], "model.")
    dtype, why = choose(model, resolve_device(run), resolve_threads(run), Path(raw["data"]["cache_dir"]))
    log.info("precision=auto: %s (%s)", dtype, why)
    raw["precision"]["dtype"] = dtype


def parse_train_config(raw: dict[str, Any]) -> TrainConfig:
    absolutize(raw, "run.out_dir", "data.cache_dir")
    try:
        resolve_data(raw)
        resolve_precision(raw)
        return load_train_config(raw)
    except UserError as e:
        fail(str(e))


def run_guarded(body: Callable[[], None]) -> None:
    """Turn the errors a user can fix into one line and exit code 2."""
    from scaling.trainer import Interrupted, RunBusy

    try:
        body()
    except UserError as e:
        fail(str(e))
    except RunBusy as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BUSY)
    except Interrupted as e:
        log.warning("%s", e)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENOTDIR, errno.EEXIST, errno.EDQUOT):
            fail(f"cannot write {e.filename or ''}: {e.strerror} (fix: free space or choose a writable run.out_dir "
                 "/ sweep.out_dir; nothing already written was changed)")
        raise


_failed_jobs: list[str] = []  # this process's failed multirun jobs (Hydra's basic launcher runs them in turn here)


def exit_after_multirun() -> None:
    """After a multirun: name every failed job and exit non-zero if there was one."""
    if _failed_jobs:
        print(f"error: {len(_failed_jobs)} job(s) of the multirun failed (their errors are above):\n  "
              + "\n  ".join(_failed_jobs), file=sys.stderr)
        sys.exit(EXIT_FAILED_JOBS)


def train_main(cfg: DictConfig) -> None:
    """One run. In a multirun (`-m`) a job that fails is reported and the next job starts; the process exits
    non-zero at the end (exit_after_multirun). Ctrl-C still ends the whole multirun."""
    setup_logging()
    register_tasks()
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)

    def job() -> None:
        raw = to_container(cfg)
        train_cfg = parse_train_config(raw)
        if train_cfg.data.offline:
            # No hub look-ups anywhere (transformers, datasets): fail fast instead of waiting on DNS.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

        def body() -> None:
            from scaling.trainer import train

            run_directory = train(train_cfg, raw, overrides)
            if os.environ.get("RANK", "0") == "0":
                print(f"results: {run_directory}")

        run_guarded(body)

    if hydra_cfg.mode != RunMode.MULTIRUN:
        job()
        return
    try:
        job()
    except SystemExit as e:
        if e.code in (0, None):
            return
        if e.code == EXIT_INTERRUPTED:
            raise
        _failed_jobs.append(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): exit {e.code}")
    except Exception as e:  # a bug in one job: keep its traceback in the log, run the others
        log.exception("job %s failed", hydra_cfg.job.num)
        _failed_jobs.append(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): {type(e).__name__}: {e}")


# ------------------------------------------------------------------------------------------------ sweep


def sweep_main(cfg: DictConfig) -> None:
    """Expand the grid, freeze every point, run them (locally or on Slurm), collect the tables and fit."""
    setup_logging()
    register_tasks()
    raw = to_container(cfg)
    from scaling.config import TaskConfig, parse
    from scaling.grid import GridConfig, expand, plan_table
    from scaling.launch import LocalLauncherConfig, SlurmLauncherConfig, workers_and_slots
    from scaling.pipeline import Sweep, SweepConfig, run_sweep

    sweep_raw, grid_raw, launcher_raw = raw.pop("sweep"), raw.pop("grid"), raw.pop("launcher")
    testtime_raw = raw.pop("testtime", None)
    try:
        sweep = parse(SweepConfig, sweep_raw, "sweep.")
        grid = parse(GridConfig, grid_raw, "grid.")
        launcher_cls = {"local": LocalLauncherConfig, "slurm": SlurmLauncherConfig}.get(launcher_raw.get("kind"))
        if launcher_cls is None:
            raise ConfigError("launcher.kind", f"unknown launcher {launcher_raw.get('kind')!r}", "use local or slurm")
        launcher = parse(launcher_cls, launcher_raw, "launcher.")
        testtime, task = None, None
        if testtime_raw is not None:
            from scaling.testtime.study import TestTimeConfig

            testtime = parse(TestTimeConfig, testtime_raw, "testtime.")
            if raw["data"].get("task") is None:
                raise ConfigError("data", "the test-time study needs a task corpus", "use data=worksheet")
            task = parse(TaskConfig, raw["data"]["task"], "data.task.")
    except ConfigError as e:
        fail(str(e))
    sweep_dir = Path(sweep.out_dir).expanduser().absolute() / sweep.name
    raw["run"]["out_dir"] = str(sweep_dir / "runs")
    raw["run"]["progress"] = False
    raw["tracking"]["group"] = sweep.name
    absolutize(raw, "data.cache_dir")
    try:
        resolve_data(raw)
    except UserError as e:
        fail(str(e))
    if raw["data"]["offline"]:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    def body() -> None:
        nonlocal launcher
        points = expand(grid, raw)
        if raw["precision"]["dtype"] == "auto":  # one dtype for every point, chosen for the largest model
            from scaling.flops import count_params

            resolve_precision(raw, max((p.config.model for p in points), key=lambda m: count_params(m).total))
            points = expand(grid, raw)
        if launcher.kind == "slurm":
            from scaling.launch import resolve_slurm

            launcher = resolve_slurm(launcher, points)
        if sweep.dry_run:
            rates = None
            if sweep.probe:
                import torch

                from scaling.probe import tokens_per_second

                torch.set_num_threads(1)
                rates = {}
                for p in points:
                    if p.grid["size"] not in rates:
                        rates[p.grid["size"]] = tokens_per_second(p.config)
            print(plan_table(points, rates))
            if launcher.kind == "slurm":
                from scaling.launch import array_groups, render_sbatch

                # One array per (cooldown branch?, ranks); branches start after the others (launch.submit_slurm).
                groups = array_groups([{"id": p.id, "grid": p.grid} for p in points])
                for (branches, ranks), ids in groups.items():
                    print(f"\n# an array script that would be submitted ({len(ids)} points, {ranks} rank(s) each"
                          f"{', after the other arrays' if branches else ''}):")
                    print(render_sbatch(sweep_dir, sweep.name, ids, launcher, ranks=ranks,
                                        after="OTHER_ARRAY_JOB_IDS" if branches else None))
            print(f"dry run: nothing written; the sweep would go to {sweep_dir}")
            return
        cpu_workers = (workers_and_slots(launcher, [], os.cpu_count() or 1)[0] if launcher.kind == "local"
                       else os.cpu_count() or 1)
        run_sweep(Sweep(sweep, sweep_dir, cpu_workers, testtime, task), grid.kind, points, launcher)

    run_guarded(body)


