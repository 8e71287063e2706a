"""heap.keep_freed_memory: freed blocks are reused instead of page-faulted in again; opt-outs honoured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dcsm_cache import heap

pytestmark = pytest.mark.skipif(not heap._glibc(), reason="glibc's mallopt")

# 40 rounds of a fresh 48 MB tensor (over glibc's largest dynamic mmap threshold, 32 MiB), written and
# freed; page faults counted over the last 20 (torch's aligned allocations settle in the heap over a few)
_ROUNDS = """
import json, resource, sys
import torch
from dcsm_cache.heap import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for i in range(40):
    if i == 20:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(12_000_000)
    del a
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _run(script: str, mode: str, **env) -> dict:
    env = {**{k: v for k, v in os.environ.items() if k not in heap._ENV}, **env}
    out = subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default, kept = _run(_ROUNDS, "default"), _run(_ROUNDS, "keep")
    assert kept["kept"] and not default["kept"]
    pages = 48_000_000 // 4096
    assert default["faults"] > 15 * pages  # each round maps fresh pages
    assert kept["faults"] < pages  # the heap's pages, reused


@pytest.mark.parametrize("var", ["MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD"])
def test_a_users_allocator_settings_are_left_alone(var):
    value = "131072" if var.startswith("MALLOC") else "/nonexistent-allocator.so"
    script = "import json; from dcsm_cache.heap import keep_freed_memory; print(json.dumps(keep_freed_memory()))"
    assert _run(script, "keep", **{var: value}) is False


def test_train_sets_it_before_training(monkeypatch):
    """(Recorded, not made: the setting would last for the rest of the test process.)"""
    from click.testing import CliRunner

    import dcsm_cache.cli as cli
    import dcsm_cache.pipeline.train as train_module

    calls = []
    monkeypatch.setattr(cli.stages, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(train_module, "train", lambda *a, **k: calls.append("train") or {})
    result = CliRunner().invoke(cli.main, ["train", "--store", "s.zarr", "--out", "d.pt"])
    assert result.exit_code == 0, result.output
    assert calls == ["keep", "train"]
