"""Entry points behind ``train.py`` and ``sweep.py``: the only module that sees Hydra's DictConfig.

Config mistakes and data problems end the process with one line on stderr that names the field and the fix,
and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError, TrainConfig, load_train_config

log = logging.getLogger("scaling")

# Written above every frozen config so that `python train.py --config-path DIR --config-name config` re-runs it
# with the same Hydra settings as train.yaml (no Hydra output directory, our own logging).
FROZEN_HEADER = """\
# Fully resolved config of one run; re-run it with:
#   python train.py --config-path {directory} --config-name config
defaults:
  - _self_
  - override hydra/job_logging: none
  - override hydra/hydra_logging: none
hydra:
  run:
    dir: .
  output_subdir: null
"""

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 3


def setup_logging() -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_scaling", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
        handler._scaling = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("datasets", "httpx", "urllib3", "filelock", "huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


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


def parse_train_config(raw: dict[str, Any]) -> TrainConfig:
    absolutize(raw, "run.out_dir", "data.cache_dir")
    try:
        return load_train_config(raw)
    except ConfigError as e:
        fail(str(e))


def frozen_yaml(raw: dict[str, Any], directory: Path) -> str:
    return FROZEN_HEADER.format(directory=directory) + OmegaConf.to_yaml(OmegaConf.create(raw))


def run_guarded(body: Callable[[], None]) -> None:
    """Turn the errors a user can fix into one line and exit code 2."""
    from scaling.checkpoint import CheckpointError
    from scaling.corpus import CorpusError
    from scaling.data import DataError
    from scaling.hardware import PrecisionError
    from scaling.trainer import Interrupted

    try:
        body()
    except (ConfigError, DataError, CorpusError, PrecisionError, CheckpointError) as e:
        fail(str(e))
    except Interrupted as e:
        log.warning("%s", e)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as e:
        if e.errno in (28, 30, 13):  # no space left, read-only file system, permission denied
            fail(f"cannot write {e.filename or ''}: {e.strerror} (fix: free space or choose a writable run.out_dir)")
        raise


def train_main(cfg: DictConfig) -> None:
    setup_logging()
    raw = to_container(cfg)
    train_cfg = parse_train_config(raw)
    if train_cfg.data.offline:
        # No hub look-ups anywhere (transformers, datasets): fail fast instead of waiting on DNS.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    def body() -> None:
        from scaling.config import run_id
        from scaling.trainer import train

        directory = Path(train_cfg.run.out_dir) / run_id(train_cfg)
        run_dir = train(train_cfg, frozen_yaml(raw, directory))
        print(f"results: {run_dir}")

    run_guarded(body)
