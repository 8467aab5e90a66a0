"""Freed memory kept for reuse during training: no page faults for a block allocated again."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import genlab
from genlab.train import memory

# Run in a fresh process: how glibc serves a request depends on what the process's heap went
# through before (a large free top of the heap serves a 64 MB tensor without new pages).
MEASURE = """
import json, resource, torch
from genlab.train.memory import reusing_freed_memory
BLOCK = 16 * 2**20  # float32 values: 64 MB, above glibc's largest mmap threshold (32 MB)

def faults():
    # 4 allocations of a 64 MB tensor, each freed before the next, after 6 such: until a freed
    # block fits the next aligned request the heap grows (a steady state, as a training run's
    # after its first steps)
    for _ in range(6):
        torch.ones(BLOCK)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        torch.ones(BLOCK)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20

counts = {"before": faults()}
with reusing_freed_memory():
    counts["inside"] = faults()
    with reusing_freed_memory():
        pass
    counts["inside, after a nested block"] = faults()
    counts["resident MB inside"] = resident_mb()
counts["resident MB after"] = resident_mb()
print(json.dumps(counts))
"""


def test_a_freed_block_is_reused_inside_and_returned_after():
    """glibc by default maps a fresh block from the kernel for each 64 MB tensor and unmaps it
    when freed: one fault per 4 KB page, every time. Inside the block the memory is reused; a
    nested block keeps the setting; afterwards the free memory is returned."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True
    ).stdout
    counts = json.loads(out.splitlines()[-1])
    pages = 16 * 2**20 * 4 // resource.getpagesize()  # of one block
    assert counts["before"] >= 4 * pages, counts
    assert counts["inside"] < pages // 10, counts
    assert counts["inside, after a nested block"] < pages // 10, counts
    # the freed blocks stayed with the process inside (at least one, 64 MB); after it they go back
    assert counts["resident MB after"] < counts["resident MB inside"] - 40, counts


def test_training_reuses_freed_memory(monkeypatch):
    """A training run (its epochs and its last fit) runs inside the block, which ends with it."""
    depths = []
    original = genlab.models.VAE.training_step

    def recording(self, *args, **kwargs):
        depths.append(memory._depth)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(genlab.models.VAE, "training_step", recording)
    genlab.fit("vae", genlab.data.load("digits"), steps=2, val_fraction=0.0)
    assert depths == [1, 1] and memory._depth == 0
