"""The package runs from anywhere: a non-editable install in a fresh virtual environment runs a sweep from an
unrelated directory (configs shipped in the package, console scripts, points started as `python -m scaling.train`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import CACHE_DIR, ROOT
from tests.test_sweep import SWEEP_TINY


def _wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the package's sources (the checkout gets no build/ or egg-info)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "scaling", src / "scaling", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    return next((tmp_path / "dist").glob("scaling-*.whl"))


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed (not editable). Its dependencies are this
    environment's (a path entry, read after the venv's own site-packages), so nothing is downloaded."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def test_a_sweep_from_a_fresh_non_editable_install_in_an_unrelated_directory(tmp_path):
    venv = _fresh_venv(tmp_path, _wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SCALING_CACHE_DIR"] = str(CACHE_DIR)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import scaling; print(scaling.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where).resolve().is_relative_to(venv.resolve())  # the installed copy, not the checkout

    result = subprocess.run([str(venv / "bin" / "scaling-sweep"), "sweep.out_dir=sweeps", "sweep.name=installed",
                             *SWEEP_TINY], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = elsewhere / "sweeps" / "installed"
    manifest = json.loads((sweep / "manifest.json").read_text())
    assert len(manifest["points"]) == 6
    for p in manifest["points"]:
        assert json.loads((sweep / "runs" / p["id"] / "summary.json").read_text())["status"] == "finished"
    assert (sweep / "report" / "fit.json").exists()
    # The frozen config re-runs through the module entry point from any directory.
    first = manifest["points"][0]["id"]
    rerun = subprocess.run([str(venv / "bin" / "python"), "-m", "scaling.train", "--config-path",
                            str(sweep / "points" / first), "--config-name", "config",
                            f"run.out_dir={tmp_path / 'rerun'}"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((tmp_path / "rerun" / first / "summary.json").read_text())["status"] == "finished"
