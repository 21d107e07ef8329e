"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from scaling.errors import UserError


class CorruptFile(UserError, ValueError):
    """A file the project wrote is damaged; the message names it, the line, and the fix."""


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """0666 less the process's umask: what open() would create (mkstemp's 0600 would hide files from a team)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path, fix: str = "delete it to regenerate") -> Any:
    """Parse a JSON file, naming the file and ``fix`` in the error when it is corrupt."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFile(f"{path} is not valid JSON ({_why(e)}) (fix: {fix})") from None


def _why(e: json.JSONDecodeError | UnicodeDecodeError) -> str:
    """Where the text stops being JSON: a parse error's line, or the first byte that is not UTF-8."""
    if isinstance(e, UnicodeDecodeError):
        return f"byte {e.start} is not UTF-8 text"
    return f"{e.msg}: line {e.lineno} column {e.colno}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines, skipping a truncated last line (a writer killed mid-line) but not corruption elsewhere."""
    lines = Path(path).read_bytes().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines) - 1:
                break
            raise CorruptFile(f"{path}: line {i + 1} is not valid JSON; the file is corrupt (fix: delete the run "
                              "directory to start the run over)") from None
    return rows


@functools.lru_cache(maxsize=256)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file's bytes; cached by (path, size, mtime), so each file is read once per process."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_fingerprint(paths: list[str]) -> str:
    """A short hash of the files' names and contents: replacing a file's text changes it, touching it does not."""
    parts = []
    for path in sorted(paths):
        st = os.stat(path)
        parts.append(f"{path}\0{_content_digest(path, st.st_size, st.st_mtime_ns)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
