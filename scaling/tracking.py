"""Metrics: ``metrics.jsonl`` in the run directory is the source of truth; wandb, when on, mirrors it."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scaling.config import TrackingConfig
from scaling.io import atomic_write_text, read_jsonl

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only JSON lines, flushed per event so a crash loses at most the line being written."""

    def __init__(self, path: Path, resume_after_step: int | None) -> None:
        self.path = path
        if resume_after_step is not None and path.exists():
            # Events after the checkpoint will be produced again by the resumed run: drop them (and a truncated
            # last line) so the file has no duplicated or missing steps.
            rows = [r for r in read_jsonl(path) if r["step"] <= resume_after_step]
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))  # never a half-written history
        elif resume_after_step is None:
            path.write_text("")
        self._file = open(path, "a", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def relative_paths(tree: Any) -> Any:
    """``tree`` with absolute paths made relative to the working directory (or cut to their last two parts when
    outside it), so a shared wandb project does not learn the machine's directory layout."""
    if isinstance(tree, dict):
        return {k: relative_paths(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [relative_paths(v) for v in tree]
    if isinstance(tree, str) and os.path.isabs(tree):
        relative = os.path.relpath(tree)
        return relative if not relative.startswith("..") else os.path.join("...", *Path(tree).parts[-2:])
    return tree


def server_unreachable(settings: Any, timeout_s: float = 10.0) -> str | None:
    """Why wandb's server cannot be reached from this machine, or None when it can (or a proxy stands between).
    Without it, ``wandb.init`` waits its ``init_timeout`` (90 s) before giving up: on a node without internet every
    point of a sweep would wait that long before training."""
    if settings.https_proxy or settings.http_proxy or any(
            os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    url = urlsplit(settings.base_url)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout_s).close()
    except OSError as e:
        return f"its server {settings.base_url} cannot be reached ({e.strerror or e})"
    return None


class WandbMirror:
    """Mirror of the metrics into wandb (`offline` needs no account and writes under the run directory)."""

    def __init__(self, cfg: TrackingConfig, run_dir: Path, name: str, config: dict[str, Any],
                 position: dict[str, Any] | None = None) -> None:
        """``position``: where the run sits in its grid (size, params, tokens, tokens per parameter), as wandb
        config and tags so that the UI can draw a sweep's IsoFLOP curves; a sweep's runs share its group, and
        the wandb id holds the group, so one point in two sweeps is two wandb runs."""
        self.run = None
        if cfg.mode == "off":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        settings = wandb.Settings(x_disable_meta=True, x_disable_stats=True, x_disable_machine_info=True,
                                  disable_git=True, disable_code=True, save_code=False) if cfg.redact else None
        try:
            unreachable = server_unreachable(wandb.setup().settings) if cfg.mode == "online" else None
            if unreachable:
                log.warning("wandb online tracking is off for this run: %s (fix: tracking=offline here; `wandb sync` "
                            "sends a run's wandb/ directory later, from a machine that reaches the server)",
                            unreachable)
                return
            config = relative_paths(config) if cfg.redact else config
            self.run = wandb.init(mode=cfg.mode, project=cfg.project, group=cfg.group, name=name,
                                  id=f"{cfg.group}-{name}" if cfg.group else name,
                                  job_type="sweep-point" if cfg.group else "run",
                                  tags=[f"{k}={v}" for k, v in (position or {}).items()],
                                  dir=str(run_dir), config={**config, "grid": position or {}},
                                  resume="allow", reinit="finish_previous", settings=settings)
        except Exception as e:  # wandb raises UsageError/CommError; tracking must never cost the run
            log.warning("wandb %s tracking is off for this run: %s (fix: `wandb login`, or tracking=offline)",
                        cfg.mode, " ".join(str(e).split()))

    def log(self, event: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in event.items() if isinstance(v, (int, float))}, step=event["step"])

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            self.run.finish()
