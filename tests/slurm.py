"""A real single-node Slurm cluster on localhost for the tests: installed from Debian when missing (as root),
started with its own state directory, stopped afterwards (only the daemons this fixture started). The node declares
two GPUs as a generic resource backed by placeholder files (no devices; slurmd logs that they are not device files and
counts them), so Slurm itself validates GPU requests; its memory comes from the config (config_overrides)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SLURM_CONF = """\
ClusterName=scalingtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=30
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(RuntimeError):
    pass


def ensure_installed() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurm-wlm and munge are not installed and installing them needs root")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], check=True, capture_output=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


class LocalSlurm:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.conf = directory / "slurm.conf"
        self.started: list[Path] = []
        self.munged_pid: Path | None = None

    def start(self) -> None:
        ensure_installed()
        for sub in ("state", "spool", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(SLURM_CONF.format(host=host, dir=self.dir, cpus=os.cpu_count() or 1))
        for i in range(2):
            (self.dir / f"gpu{i}").touch()
        (self.dir / "gres.conf").write_text(f"NodeName={host} Name=gpu File={self.dir}/gpu[0-1]\n")
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            key = Path("/etc/munge/munge.key")
            if not key.exists():
                subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/mungekey", "--create"], check=True)
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
            self.munged_pid = Path("/run/munge/munged.pid")
        env = self.env()
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=env)
        self.started.append(self.dir / "slurmctld.pid")
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, env=env)
        self.started.append(self.dir / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
            if out.stdout.strip() in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"the node did not come up: {(self.dir / 'log' / 'slurmctld.log').read_text()[-2000:]}")

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def stop(self) -> None:
        for pid_file in [*reversed(self.started), *([self.munged_pid] if self.munged_pid else [])]:
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
