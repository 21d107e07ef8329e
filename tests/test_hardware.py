"""Process-level CPU settings the trainer applies: they must change what the process does, not only return True."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# In a fresh process: where a 24 MiB block comes from (glibc's mallinfo2: heap `arena` vs mmapped `hblkhd`), whether
# the heap keeps it after free, and the page faults of each of ten training steps in miniature (eight 4 MiB
# activations and one of 48 MiB alive together, then all freed) after three warm-up steps. glibc raises its mmap
# threshold to the largest block freed so far, but never above 32 MiB: by default the 48 MiB block is mapped and
# unmapped, and so faulted in, every step.
_PROBE = """
import ctypes, json, resource, statistics, sys, torch
from scaling.hardware import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
MiB = 1 << 20
before = libc.mallinfo2()
block = torch.empty(6 * MiB)  # 24 MiB of fp32
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()

def step():
    buffers = [torch.empty(MiB).fill_(1.0) for _ in range(8)] + [torch.empty(12 * MiB).fill_(1.0)]
    del buffers

for _ in range(3):
    step()
faults = []
for _ in range(10):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(json.dumps({
    "kept": kept,
    "mmapped_MiB": (held.hblkhd - before.hblkhd) / MiB,
    "heap_grew_MiB": (held.arena - before.arena) / MiB,
    "heap_kept_MiB": (freed.arena - before.arena) / MiB,
    # The median step: the heap may still grow once or twice after warm-up (another thread's small block can land
    # between the freed ones), a one-off that the trainer pays too and that is not the per-step cost tested here.
    "step_faults": statistics.median(faults),
    "block_pages": 48 * MiB // resource.getpagesize(),
}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keeping_freed_memory_serves_blocks_from_the_heap_and_keeps_them():
    default, kept = _probe("default"), _probe("keep")
    if not kept["kept"]:
        pytest.skip("the C library has no mallopt (not glibc)")
    # By default glibc serves a block this large with its own mmap and unmaps it on free, so every step faults the
    # 48 MiB block in again (whether freed heap blocks are also trimmed depends on what lies above them: not checked).
    assert default["mmapped_MiB"] >= 24
    assert default["step_faults"] >= 0.9 * default["block_pages"]
    # Kept: the block comes from the heap, the heap keeps it after free, and steps stop faulting their pages in.
    # The heap may already hold a few free MiB at its top, so it grows by a little less than the block.
    assert kept["mmapped_MiB"] == 0 and kept["heap_grew_MiB"] > 16
    assert kept["heap_kept_MiB"] == kept["heap_grew_MiB"]
    assert kept["step_faults"] < kept["block_pages"] // 100
