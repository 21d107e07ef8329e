"""Process-level CPU settings the trainer applies: they must change what the process does, not only return True."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# A training step in miniature: eight 4 MiB activations alive together, then all freed; prints the page faults of
# ten such steps after three warm-up steps.
_FAULTS = """
import json, resource, sys, torch
from scaling.hardware import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def step():
    buffers = [torch.empty(1 << 20).fill_(1.0) for _ in range(8)]
    del buffers
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keeping_freed_memory_stops_the_per_step_page_faults():
    default, kept = _faults("default"), _faults("keep")
    if not kept["kept"]:
        pytest.skip("the C library has no mallopt (not glibc)")
    # Ten steps of 8,192 pages each: by default glibc trims the freed heap top, so every step faults its pages in
    # again; kept, the pages stay mapped.
    assert default["faults"] > 10 * 8192 // 2
    assert kept["faults"] < 10 * 8192 // 50

