"""Run a frozen sweep's points locally or as one Slurm array job (the sweep directory: scaling.sweepdir).

Every point runs as its own process through the documented re-run command
``python -m scaling.train --config-path <sweep>/points/<id> --config-name config``, so any point can be re-run by
hand, from any directory, with the interpreter (and so the installed package) that started the sweep.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import multiprocessing
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from scaling.config import ConfigError, check_at_least
from scaling.errors import EXIT_BUSY, EXIT_INTERRUPTED, UserError
from scaling.grid import GridPoint
from scaling.io import atomic_write_json, atomic_write_text, read_json
from scaling.sweepdir import DONE, branch_point, pending, point_dir, point_status, read_manifest, run_dir, statuses

log = logging.getLogger(__name__)

BUSY_RETRY_S = 2.0
POLL_S = 0.1  # how often the controller looks for finished points: idle time per point is half of it
TRAIN_MODULE = "scaling.train"
IMPORT_ROOT = str(Path(__file__).resolve().parents[1])  # the directory that holds the package


@dataclass(frozen=True, kw_only=True)
class LocalLauncherConfig:
    kind: Literal["local"]
    workers: int | None
    """Parallel points; null: one per GPU slot on a GPU box, else one per `threads_per_worker` CPU cores. On a GPU
    box it is capped at the number of slots (GPUs × points_per_gpu): every worker has a GPU of its own share."""
    threads_per_worker: int
    """CPU threads of each point (1 is fastest per core on small models)."""
    points_per_gpu: int
    """Points run side by side on each GPU (processes sharing it): tiny models cannot fill a large GPU alone."""
    status_interval_s: float
    """Seconds between status lines."""
    preload: bool
    """Start each point as a fork of one process that has imported torch, transformers and the trainer once per
    sweep, instead of a new interpreter (seconds of imports) per point. Each point is still a process of its own,
    a fresh copy of that one: a crash ends only its point, and nothing a point changes reaches the next. Where
    fork is unavailable, and on a GPU box (CUDA and fork do not mix), points start as new interpreters."""

    def __post_init__(self) -> None:
        check_at_least("launcher.workers", self.workers, 1, "use 1 or more, or null for one per core (or GPU)")
        check_at_least("launcher.threads_per_worker", self.threads_per_worker, 1,
                       "use 1 or more (1 is fastest for small models)")
        check_at_least("launcher.points_per_gpu", self.points_per_gpu, 1, "use 1 or more")
        check_at_least("launcher.status_interval_s", self.status_interval_s, 0.1, "e.g. 30")


@dataclass(frozen=True, kw_only=True)
class SlurmLauncherConfig:
    kind: Literal["slurm"]
    partition: str | None
    account: str | None
    time: str
    """Per-task time limit (HH:MM:SS or D-HH:MM:SS)."""
    cpus_per_task: int
    gpus_per_task: int | None
    """GPUs per task; null: 1 when the points train on run.device=cuda, else 0."""
    mem: str | None
    """Host memory per task, e.g. 8G; null: sized from the largest point (see :func:`task_memory`)."""
    max_parallel: int | None
    """The array's `%` throttle: at most this many tasks at once."""
    signal_before_end_s: int
    """Slurm sends SIGUSR1 this long before the time limit; the run checkpoints and the task requeues."""
    extra_sbatch: list[str]
    """Extra `#SBATCH` lines, e.g. "--qos=high" (validated: options only, no shell)."""
    wait: bool
    """Wait for the array to finish, then collect results and fit."""
    poll_interval_s: float
    ranks_per_node: int | None
    """A point of several ranks (grid.ranks) spreads over ceil(ranks / ranks_per_node) nodes, this many ranks
    (GPUs) on each; null: all its ranks on one node. Each rank gets cpus_per_task CPUs and gpus_per_task GPUs."""

    def __post_init__(self) -> None:
        check_at_least("launcher.cpus_per_task", self.cpus_per_task, 1, "use 1 or more")
        check_at_least("launcher.gpus_per_task", self.gpus_per_task, 0,
                       "use 0 (CPU), 1 or more, or null (from run.device)")
        check_at_least("launcher.max_parallel", self.max_parallel, 1, "use 1 or more, or null for no throttle")
        check_at_least("launcher.signal_before_end_s", self.signal_before_end_s, 0, "e.g. 120")
        check_at_least("launcher.poll_interval_s", self.poll_interval_s, 0.1, "e.g. 10")
        check_at_least("launcher.ranks_per_node", self.ranks_per_node, 1, "e.g. 8 (GPUs per node), or null")
        if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", self.time):
            raise ConfigError("launcher.time", f"{self.time!r} is not a Slurm time limit", "use HH:MM:SS or D-HH:MM:SS")
        # sbatch --mem: a whole number of megabytes, or of the unit its suffix names (sbatch(1)).
        if self.mem is not None and not re.fullmatch(r"\d+[KMGTkmgt]?", self.mem):
            raise ConfigError("launcher.mem", f"{self.mem!r} is not a Slurm memory size", "e.g. 8G, 16000M, or null")


def point_args(sweep_dir: Path, point_id: str, extra: list[str] = ()) -> list[str]:
    return ["--config-path", str(point_dir(sweep_dir, point_id)), "--config-name", "config", *extra]


def point_command(sweep_dir: Path, point_id: str, extra: list[str] = (), ranks: int = 1) -> list[str]:
    """The re-run command of a point; a point of several ranks on this machine runs under torchrun."""
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    return [sys.executable, *launcher, "-m", TRAIN_MODULE, *point_args(sweep_dir, point_id, extra)]


def import_path() -> str | None:
    """What a point's PYTHONPATH must hold so that it imports this very package: nothing for an installed package
    (the interpreter finds it), the checkout for a source tree run without installing (``python sweep.py``)."""
    if IMPORT_ROOT in {str(Path(d).resolve()) for d in site.getsitepackages() + [site.getusersitepackages()]}:
        return None
    return os.pathsep.join(p for p in (IMPORT_ROOT, os.environ.get("PYTHONPATH")) if p)


# ------------------------------------------------------------------------------------------------ status


def print_status(sweep_dir: Path) -> int:
    """A sweep's status from its directory alone (works while a local or Slurm sweep is running)."""
    manifest = read_manifest(sweep_dir)
    rows = []
    for p in manifest["points"]:
        status, summary = point_status(run_dir(sweep_dir, p["id"]))
        loss = summary.get("final_val_loss") if summary and status == "finished" else None
        g = p["grid"]
        budget = (f"C={g['budget_flops']:.2g}" if "budget_flops" in g else f"D={g['budget_tokens']:.3g}")
        rows.append((p["id"], g["size"], budget, g["seed"], status, "" if loss is None else f"{loss:.4f}"))
    print(f"sweep {manifest['name']} ({manifest['kind']}, {len(rows)} points): {sweep_dir}")
    print(f"{'id':<14}{'size':<10}{'budget':<12}{'seed':<6}{'status':<11}val loss")
    for r in rows:
        print(f"{r[0]:<14}{r[1]:<10}{r[2]:<12}{r[3]:<6}{r[4]:<11}{r[5]}")
    counts = _counts([r[4] for r in rows])
    print(" | ".join(f"{k} {v}" for k, v in counts.items()))
    job = sweep_dir / "slurm" / "job.json"
    if job.exists():
        print(f"slurm array job {read_json(job)['job_id']}")
    return 0


def _counts(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# ------------------------------------------------------------------------------------------------ local


def gpu_slots(gpus: list[str], points_per_gpu: int) -> list[str]:
    """One slot per concurrent point, GPUs in turn ([0, 1, 0, 1] for two GPUs, two points each), so that however
    many workers take slots from the front, they spread over every GPU before any GPU gets a second point."""
    return [g for _ in range(points_per_gpu) for g in gpus]


def workers_and_slots(cfg: LocalLauncherConfig, gpus: list[str], cpu_count: int) -> tuple[int, list[str]]:
    """How many points run at once and the GPU slots they take (none on a CPU box)."""
    slots = gpu_slots(gpus, cfg.points_per_gpu)
    if not slots:
        return cfg.workers or max(1, cpu_count // cfg.threads_per_worker), []
    if cfg.workers is not None and cfg.workers > len(slots):
        log.warning("launcher.workers=%d is more than the %d GPU slots (GPUs x launcher.points_per_gpu): using %d",
                    cfg.workers, len(slots), len(slots))
    return min(cfg.workers or len(slots), len(slots)), slots


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def run_local(sweep_dir: Path, cfg: LocalLauncherConfig) -> dict[str, str]:
    """Run pending points with parallel workers; returns the final status of every point."""
    workers, gpus = workers_and_slots(cfg, _visible_gpus(), os.cpu_count() or 1)
    manifest = read_manifest(sweep_dir)
    # Largest compute first: the long runs start early, so workers finish together.
    todo = [p["id"] for p in sorted(pending(sweep_dir), key=lambda p: -p["grid"]["compute"])]
    skipped = len(manifest["points"]) - len(todo)
    if skipped:
        log.info("%d of %d points already finished: skipped", skipped, len(manifest["points"]))
    preload = cfg.preload and not gpus and "forkserver" in multiprocessing.get_all_start_methods()
    log.info("running %d points with %d workers x %d threads%s%s", len(todo), workers, cfg.threads_per_worker,
             f" on GPUs {gpus}" if gpus else "", ", each forked from one preloaded process" if preload else "")
    branches = {p["id"]: (p["grid"]["branch_of"], p["grid"]["branch_step"]) for p in manifest["points"]
                if p["grid"].get("branch_of")}
    ranks = {p["id"]: p["grid"].get("ranks", 1) for p in manifest["points"]}
    pool = _Pool(sweep_dir, todo, workers, cfg.threads_per_worker, gpus, preload, branches, ranks)
    last_report = 0.0
    try:
        while pool.busy():
            pool.start_ready()
            time.sleep(POLL_S)
            pool.collect_exited()
            pool.requeue_due()
            if time.time() - last_report >= cfg.status_interval_s or not pool.busy():
                pool.report()
                last_report = time.time()
    except KeyboardInterrupt:
        # Each run got the same SIGINT, checkpoints and exits; wait for them so nothing is left half-written.
        pool.wait_all()
        raise
    return statuses(sweep_dir)


class _Pool:
    """The local launcher's state: points queued, running (one process each, a GPU slot each on a GPU box),
    waiting to retry, and the outcome of each that exited. A cooldown branch (``branches``: point → (trunk, step))
    waits in the queue until its trunk has kept the state it starts from, so no worker idles waiting for it. A
    point of several ranks (``ranks``) takes as many workers, or as many whole GPUs, and starts under torchrun."""

    def __init__(self, sweep_dir: Path, todo: list[str], workers: int, threads: int, gpus: list[str],
                 preload: bool, branches: dict[str, tuple[str, int]], ranks: dict[str, int]) -> None:
        self.sweep_dir, self.workers, self.threads, self.preload = sweep_dir, workers, threads, preload
        self.branches, self.ranks = branches, ranks
        self.queue = list(todo)
        self.free_gpus = list(gpus)
        self.slots_per_gpu = {g: gpus.count(g) for g in gpus}
        self.running: dict[str, tuple[subprocess.Popen | _Forked, float, list[str]]] = {}
        self.retry_at: dict[str, float] = {}
        self.outcome: dict[str, str] = {}
        self.durations: list[float] = []

    def busy(self) -> bool:
        return bool(self.queue or self.running or self.retry_at)

    def _ready(self, pid: str) -> bool:
        """A branch is ready once its trunk's state exists, or once its trunk is no longer coming (then the run
        itself reports why it cannot start)."""
        if pid not in self.branches:
            return True
        trunk, step = self.branches[pid]
        coming = trunk in self.queue or trunk in self.running or trunk in self.retry_at
        return not coming or branch_point(run_dir(self.sweep_dir, trunk), step).exists()

    def _devices(self, pid: str) -> list[str] | None:
        """The GPU slots point ``pid`` would take now ([] on a CPU box), or None when it does not fit yet: one slot
        for a point of one rank, every slot of ``ranks`` GPUs nobody uses for a point of several."""
        ranks = self.ranks.get(pid, 1)
        if not self.slots_per_gpu:
            used = sum(self.ranks.get(p, 1) for p in self.running)
            return [] if used + ranks <= self.workers or not self.running else None
        if ranks == 1:
            return self.free_gpus[:1] or None
        idle = [g for g, n in self.slots_per_gpu.items() if self.free_gpus.count(g) == n]
        return [g for g in idle[:ranks] for _ in range(self.slots_per_gpu[g])] if len(idle) >= ranks else None

    def start_ready(self) -> None:
        while len(self.running) < self.workers:
            pid, devices = next(((p, d) for p in self.queue if self._ready(p) and (d := self._devices(p)) is not None),
                                (None, None))
            if pid is None:
                return
            self.queue.remove(pid)
            for slot in devices:
                self.free_gpus.remove(slot)
            ranks = self.ranks.get(pid, 1)
            if self.preload and ranks == 1:
                process = _fork_point(self.sweep_dir, pid, self.threads)
            else:
                process = _start_point(self.sweep_dir, pid, self.threads, sorted(set(devices)), ranks)
            self.running[pid] = (process, time.time(), devices)

    def collect_exited(self) -> None:
        for pid, (proc, started, devices) in list(self.running.items()):
            returncode = proc.poll()
            if returncode is None:
                continue
            del self.running[pid]
            self.free_gpus.extend(devices)
            self.outcome[pid] = _finish_point(self.sweep_dir, pid, returncode)
            if self.outcome[pid] == "finished":
                self.durations.append(time.time() - started)
            elif self.outcome[pid] == "busy":
                # Another controller is training it: try again later; its lock frees when that run ends.
                self.retry_at[pid] = time.time() + BUSY_RETRY_S

    def requeue_due(self) -> None:
        for pid, when in list(self.retry_at.items()):
            if time.time() >= when:
                del self.retry_at[pid]
                self.queue.append(pid)
        if not self.queue and not self.running and self.retry_at:  # nothing to do until the first retry
            time.sleep(max(0.0, min(self.retry_at.values()) - time.time()))

    def report(self) -> None:
        counts = _counts(list(self.outcome.values()))
        eta = ""
        if self.durations and (self.queue or self.running):
            mean = sum(self.durations) / len(self.durations)
            eta = f" | ETA {mean * (len(self.queue) + len(self.running)) / self.workers / 60:.1f} min"
        log.info("done %d | running %d | failed %d | pending %d%s",
                 counts.get("finished", 0) + counts.get("diverged", 0), len(self.running), counts.get("failed", 0),
                 len(self.queue), eta)

    def wait_all(self) -> None:
        for proc, _, _ in self.running.values():
            proc.wait()


def _fresh_run_dir(sweep_dir: Path, pid: str) -> Path:
    """The point's run directory, without the failure record of an earlier attempt."""
    directory = run_dir(sweep_dir, pid)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "failed.json").unlink(missing_ok=True)
    return directory


def _start_point(sweep_dir: Path, pid: str, threads: int, gpus: list[str], ranks: int) -> subprocess.Popen:
    directory = _fresh_run_dir(sweep_dir, pid)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if import_path() is not None:
        env["PYTHONPATH"] = import_path()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    log_file = open(directory / "process.log", "ab")
    return subprocess.Popen(point_command(sweep_dir, pid, [f"run.num_threads={threads}"], ranks), stdout=log_file,
                            stderr=subprocess.STDOUT, env=env, cwd=sweep_dir)


# What every point imports, once per sweep in the fork server (a point's own start then takes milliseconds).
PRELOAD = ["scaling.train", "scaling.trainer", "scaling.export", "scaling.data"]


class _Forked:
    """A point forked from the preloaded server, seen through the two methods of subprocess.Popen the pool uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self) -> int | None:
        self.process.join()
        return self.process.exitcode


def _fork_point(sweep_dir: Path, pid: str, threads: int) -> _Forked:
    directory = _fresh_run_dir(sweep_dir, pid)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # read when the server starts: the sweep's first point
    argv = point_args(sweep_dir, pid, [f"run.num_threads={threads}"])
    process = context.Process(target=_run_forked, args=(argv, str(sweep_dir), str(directory / "process.log")),
                              name=f"point-{pid}")
    process.start()
    return _Forked(process)


def _run_forked(argv: list[str], cwd: str, log_path: str) -> None:
    """The body of a forked point: what `python -m scaling.train ARGV` does, in ``cwd``, output to ``log_path``."""
    os.chdir(cwd)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        stream.flush()
        os.dup2(log_fd, fd)
    os.close(log_fd)
    sys.argv = [TRAIN_MODULE, *argv]
    # What `python -m` runs, called on the preloaded module: running it again as __main__ would re-execute a module
    # already imported (runpy warns so in every point's log).
    importlib.import_module(TRAIN_MODULE).main()


def _finish_point(sweep_dir: Path, pid: str, returncode: int) -> str:
    directory = run_dir(sweep_dir, pid)
    status, _ = point_status(directory)
    if status in DONE:
        return status
    if returncode == EXIT_BUSY:
        return "busy"
    if returncode == EXIT_INTERRUPTED:
        return "interrupted"
    lines = (directory / "process.log").read_text(errors="replace").strip().splitlines()
    error = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "")
    atomic_write_json(directory / "failed.json", {"returncode": returncode, "error": error})
    log.error("point %s failed (exit %d): %s", pid, returncode, error)
    return "failed"


# ------------------------------------------------------------------------------------------------ slurm

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:@%+=,/-]+")
_SAFE_EXTRA = re.compile(r"--[a-z][a-z0-9-]*(=[A-Za-z0-9_.:@%+=,/-]+)?")
HOST_BASE_GIB = 4  # the process itself: Python, torch, the tokenizer and the token memmaps
HOST_BYTES_PER_PARAM = 28  # fp32 weights, grads, AdamW's two moments (16 B), plus a checkpoint loaded to resume (12 B)


class SlurmError(UserError, RuntimeError):
    pass


def _safe(field: str, value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value):
        raise ConfigError(f"launcher.{field}", f"{value!r} has characters that are not allowed in an sbatch option",
                          "use letters, digits and _.:@%+=,/- only")
    return value


def task_memory(params_total: int, processes: int = 1) -> str:
    """Host memory for ``processes`` ranks of one point of ``params_total`` parameters on a node: what training
    holds plus a checkpoint being loaded on resume (``HOST_BYTES_PER_PARAM``, each rank holding the full state), and
    ``HOST_BASE_GIB`` for each process itself."""
    return f"{processes * (HOST_BASE_GIB + math.ceil(HOST_BYTES_PER_PARAM * params_total / 2**30))}G"


def ranks_per_node(ranks: int, cfg: SlurmLauncherConfig) -> int:
    """How many of a point's ranks share a node."""
    return min(ranks, cfg.ranks_per_node or ranks)


def resolve_slurm(cfg: SlurmLauncherConfig, points: list[GridPoint]) -> SlurmLauncherConfig:
    """Fill in GPUs and memory from the points; refuse a CPU-only request for points that train on a GPU."""
    on_gpu = any(p.config.run.device.startswith("cuda") for p in points)
    gpus = cfg.gpus_per_task if cfg.gpus_per_task is not None else int(on_gpu)
    if on_gpu and gpus == 0:
        raise ConfigError("launcher.gpus_per_task", "the points train on run.device=cuda but each task asks for 0 GPUs",
                          "launcher.gpus_per_task=1 (or null), or run.device=cpu")
    mem = cfg.mem or max((task_memory(p.grid["params_total"], ranks_per_node(p.grid["ranks"], cfg)) for p in points),
                         key=lambda m: int(m[:-1]))
    return dataclasses.replace(cfg, gpus_per_task=gpus, mem=mem)


def render_sbatch(sweep_dir: Path, name: str, point_ids: list[str], cfg: SlurmLauncherConfig,
                  points_file: Path | None = None, after: str | None = None, ranks: int = 1) -> str:
    """The array script: task i runs line i+1 of this submission's point list. Every value is validated or shell-quoted.
    ``cfg`` is resolved (:func:`resolve_slurm`): one task per point, with its GPUs and memory. ``after``: job ids
    (``:``-separated) this array starts after (cooldown branches after their trunks). ``ranks`` > 1: each point
    runs as srun + torchrun on its nodes, with a c10d rendezvous on the allocation's first node."""
    per_node = ranks_per_node(ranks, cfg)
    nodes = math.ceil(ranks / per_node)
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={_safe('job_name', 'scaling-' + name)}",
             f"#SBATCH --array=0-{len(point_ids) - 1}" + (f"%{cfg.max_parallel}" if cfg.max_parallel else ""),
             f"#SBATCH --time={_safe('time', cfg.time)}",
             *([f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1"] if ranks > 1 else ["#SBATCH --ntasks=1"]),
             f"#SBATCH --cpus-per-task={int(cfg.cpus_per_task) * per_node}",
             f"#SBATCH --mem={_safe('mem', cfg.mem)}",
             f"#SBATCH --output={_safe('output', str(sweep_dir / 'slurm' / '%A_%a.out'))}",
             f"#SBATCH --signal=B:USR1@{int(cfg.signal_before_end_s)}",
             "#SBATCH --requeue"]
    if after is not None:
        lines.append(f"#SBATCH --dependency=afterany:{_safe('dependency', after)}")
    if cfg.partition:
        lines.append(f"#SBATCH --partition={_safe('partition', cfg.partition)}")
    if cfg.account:
        lines.append(f"#SBATCH --account={_safe('account', cfg.account)}")
    if cfg.gpus_per_task:
        lines.append(f"#SBATCH --gpus-per-task={int(cfg.gpus_per_task) * per_node}")
    for extra in cfg.extra_sbatch:
        if not _SAFE_EXTRA.fullmatch(extra):
            raise ConfigError("launcher.extra_sbatch", f"{extra!r} is not a plain sbatch option",
                              "write options like --qos=high (no spaces, quotes or shell characters)")
        lines.append(f"#SBATCH {extra}")
    points_file = shlex.quote(str(points_file or sweep_dir / "slurm" / "points.txt"))
    points_dir = shlex.quote(str(sweep_dir / "points")) + '/"$POINT"'
    lines += [
        "",
        "# One frozen grid point per array task. On SIGUSR1 (time limit near) or SIGTERM (preemption) the run",
        "# checkpoints and exits 3; the task requeues and resumes from the checkpoint.",
        "set -uo pipefail",
        f"cd {shlex.quote(str(sweep_dir))}",
        *([f"export PYTHONPATH={shlex.quote(import_path())}"] if import_path() is not None else []),
        f'POINT=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {points_file})',
    ]
    train = f"-m {TRAIN_MODULE} --config-path {points_dir} --config-name config run.progress=false"
    if ranks == 1:
        lines += [
            "# Threads come from SLURM_CPUS_PER_TASK (run.num_threads=null).",
            f"{shlex.quote(sys.executable)} {train} &",
            "CHILD=$!",
            "trap 'kill -USR1 $CHILD' USR1",
            "trap 'kill -TERM $CHILD' TERM",
            "wait $CHILD; RC=$?",
            "# wait returns early when a trapped signal arrives: wait again for the run's own exit code",
            "while kill -0 $CHILD 2>/dev/null; do wait $CHILD; RC=$?; done",
            f"if [ $RC -eq {EXIT_INTERRUPTED} ]; then "
            "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; fi",
            "exit $RC",
            "",
        ]
        return "\n".join(lines)
    lines += [
        f"# {ranks} ranks: one torchrun per node ({per_node} ranks each) meeting at the first node; each rank uses",
        f"# {int(cfg.cpus_per_task)} CPU threads. A stop signal goes to the step's tasks through scancel (srun itself",
        "# would end the step at once) and torchrun passes it on to every rank as SIGTERM; the task requeues when",
        "# the run was stopped before it finished.",
        'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "PORT=$((20000 + SLURM_JOB_ID % 20000))",
        f"srun --kill-on-bad-exit=1 {shlex.quote(sys.executable)} -m torch.distributed.run --nnodes=$SLURM_NNODES "
        f"--nproc_per_node={per_node} --rdzv_backend=c10d --rdzv_endpoint=$HEAD:$PORT --rdzv_id=$SLURM_JOB_ID "
        f"{train} run.num_threads={int(cfg.cpus_per_task)} &",
        "CHILD=$!",
        "STOPPED=0",
        "trap 'STOPPED=1; scancel --signal=TERM \"${SLURM_JOB_ID}.0\"' USR1 TERM",
        "wait $CHILD; RC=$?",
        "while kill -0 $CHILD 2>/dev/null; do wait $CHILD; RC=$?; done",
        'if [ $STOPPED -eq 1 ] && [ ! -f "runs/$POINT/summary.json" ]; then '
        "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; fi",
        "exit $RC",
        "",
    ]
    return "\n".join(lines)


SQUEUE_RETRIES = 5


def _live_tasks(job_id: str) -> list[str] | None:
    """States of the array's pending or running tasks ([] once it is over); None when squeue gave no answer."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    if out.returncode != 0:
        # Slurm forgets a finished job after MinJobAge and then calls its id invalid: that is "over", not a fault.
        return [] if "Invalid job id" in out.stderr else None
    return out.stdout.split()


def _squeue(job_id: str, poll_interval_s: float) -> list[str]:
    for attempt in range(SQUEUE_RETRIES):
        states = _live_tasks(job_id)
        if states is not None:
            return states
        time.sleep(poll_interval_s * (attempt + 1))
    raise SlurmError(f"squeue failed {SQUEUE_RETRIES} times for array job {job_id}: its state is unknown, so no "
                     "tables or fit were made from a partial sweep (fix: check the cluster, then run the sweep "
                     "again; it submits nothing for finished points)")


def submit_slurm(sweep_dir: Path, name: str, cfg: SlurmLauncherConfig) -> str | None:
    """Write this submission's point list and array script and submit it; returns the job id (None: nothing
    pending). Cooldown branches go in a second array that starts after the first (their trunks) has ended, so no
    task holds an allocation waiting for a trunk; the id is then both ids, comma-separated, as squeue takes them.
    A sweep whose earlier array still has live tasks is not submitted again: those tasks read their own point
    list, which a second submission must not change under them."""
    slurm_dir = sweep_dir / "slurm"
    if (slurm_dir / "job.json").exists():
        previous = read_json(slurm_dir / "job.json")["job_id"]
        if shutil.which("squeue") is not None and _squeue(previous, cfg.poll_interval_s):
            raise SlurmError(f"array job {previous} of this sweep still has tasks pending or running (fix: wait for it "
                             f"to end, or cancel it with `scancel {previous.replace(',', ' ')}`, then submit again)")
    todo = pending(sweep_dir)
    if not todo:
        log.info("every point is finished; nothing to submit")
        return None
    submission = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    job_ids, points_files, trunk_ids = [], [], []
    for (branches, ranks), ids in array_groups(todo).items():
        label = ("branches" if branches else "sweep") + (f"-{ranks}ranks" if ranks > 1 else "")
        points_file = slurm_dir / f"points-{submission}{label.removeprefix('sweep')}.txt"
        atomic_write_text(points_file, "".join(f"{p}\n" for p in ids))
        points_files.append(points_file.name)
        script = slurm_dir / f"{label}.sbatch"
        atomic_write_text(script, render_sbatch(sweep_dir, name, ids, cfg, points_file, ranks=ranks,
                                                after=":".join(trunk_ids) if branches and trunk_ids else None))
        job_ids.append(_sbatch(script))
        if not branches:
            trunk_ids.append(job_ids[-1])
        log.info("submitted array job %s with %d tasks (%s)", job_ids[-1], len(ids), script)
    job_id = ",".join(job_ids)
    atomic_write_json(slurm_dir / "job.json", {"job_id": job_id, "points": [p["id"] for p in todo],
                                               "points_files": points_files,
                                               "submitted": datetime.now(timezone.utc).isoformat()})
    return job_id


def array_groups(points: list[dict]) -> dict[tuple[bool, int], list[str]]:
    """Point ids by array: (cooldown branch?, ranks), ordinary points first, so branches can wait on them."""
    groups: dict[tuple[bool, int], list[str]] = {}
    for p in sorted(points, key=lambda p: (bool(p["grid"].get("branch_of")), p["grid"].get("ranks", 1))):
        groups.setdefault((bool(p["grid"].get("branch_of")), p["grid"].get("ranks", 1)), []).append(p["id"])
    return groups


def _sbatch(script: Path) -> str:
    if shutil.which("sbatch") is None:
        raise SlurmError(f"sbatch not found on this machine; the array script is written: submit it from a login "
                         f"node with `sbatch {script}`")
    result = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise SlurmError(f"sbatch rejected the array ({reason[-1] if reason else f'exit {result.returncode}'}); "
                         f"fix the launcher settings or submit {script} by hand")
    return result.stdout.strip().split(";")[0]


def wait_slurm(job_id: str, poll_interval_s: float) -> None:
    """Until no task of the array is pending or running (squeue is the one query that needs no accounting); a
    squeue that keeps failing is an error, never read as "finished"."""
    while True:
        states = _squeue(job_id, poll_interval_s)
        if not states:
            return
        log.info("slurm job %s: %s", job_id, " ".join(f"{k.lower()} {v}" for k, v in _counts(states).items()))
        time.sleep(poll_interval_s)


__all__ = ["run_local", "submit_slurm", "wait_slurm", "render_sbatch", "resolve_slurm", "task_memory",
           "print_status", "point_command", "gpu_slots", "workers_and_slots", "LocalLauncherConfig",
           "SlurmLauncherConfig", "SlurmError"]
