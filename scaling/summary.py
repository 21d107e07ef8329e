"""``summary.json``, the file whose presence marks a run as done: its format and the check that a file really is one.

The trainer writes it (atomically, last); the sweep's status, the tables and the trainer's "already finished" test
read it. A file that is not a valid summary (``null``, ``{}``, a list, a summary missing its losses) never counts as
finished: it is reported with its path and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.errors import UserError
from scaling.io import read_json

SUMMARY_FORMAT = 1
STATUSES = ("finished", "diverged")
REQUIRED = ("run_id", "status", "final_val_loss", "min_val_loss", "tokens", "steps", "params", "flops",
            "wallclock_s", "device", "dtype", "tokens_repeated", "last_good_step")


class SummaryCorrupt(UserError, ValueError):
    pass


def problem(summary: Any) -> str | None:
    """Why ``summary`` is not a run summary, or None when it is one."""
    if not isinstance(summary, dict):
        return f"holds {type(summary).__name__}, not a summary"
    missing = [k for k in REQUIRED if k not in summary]
    if missing:
        return f"lacks {', '.join(missing)}"
    if summary["status"] not in STATUSES:
        return f"has status {summary['status']!r}, not one of {', '.join(STATUSES)}"
    return None


def read_summary(path: Path) -> dict[str, Any]:
    """The summary at ``path``; :class:`SummaryCorrupt` naming the file and the fix when it is not one."""
    try:
        summary = read_json(path)
    except ValueError:
        summary = ValueError
    reason = "is not valid JSON" if summary is ValueError else problem(summary)
    if reason:
        raise SummaryCorrupt(f"{path} is corrupt: it {reason} (fix: delete it to re-run the point)")
    return summary
