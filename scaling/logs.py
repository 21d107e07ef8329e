"""The log lines every entry point and worker process writes: one format, INFO on rank 0, libraries quieted."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging() -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_scaling", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
        handler._scaling = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Under torchrun every rank runs this; rank 0 speaks for the run, the others only warn.
    root.setLevel(logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING)
    for noisy in ("datasets", "httpx", "urllib3", "filelock", "huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
