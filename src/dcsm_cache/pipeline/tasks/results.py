"""The one result writer: every task's result JSON goes through here, atomically.

    write_result(evaluate(store, "cosine"), "results/shapes-clip/shapes_spatial/cosine.json", seeds={"train": 0})

A result is a JSON object; those with `dataset`, `backbone` and `scorer` are what `report` merges.
Each also records, under `provenance`, what produced it: the seeds, the versions of dcsm-cache, torch,
open_clip, numpy and Python, and the hardware (CPU, the SIMD level torch's CPU kernels ran at,
threads, GPU). Nothing in it is a timestamp, so the same run on the same machine writes the same bytes.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from ...atomic import write_json
from ...isa import CPU_ISAS

__all__ = ["provenance", "write_result"]

_PACKAGES = {"dcsm-cache": "dcsm-cache", "torch": "torch", "open_clip": "open_clip_torch", "numpy": "numpy"}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


@lru_cache(maxsize=1)
def _hardware() -> dict:
    import torch

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": _cpu(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),  # ATen's SIMD level: `cpu_isa` (isa.py) pins it
        "cpu_pin": {k: os.environ[k] for k in sorted(CPU_ISAS["avx2"]) if k in os.environ},  # what pinned the rest
        "gpus": gpus,
    }


def provenance(seeds: dict | None = None) -> dict:
    """Seeds, package versions and hardware of this process."""
    return {
        "seeds": dict(seeds or {}),
        "versions": {"python": platform.python_version(), **{k: _version(d) for k, d in _PACKAGES.items()}},
        "hardware": _hardware(),
    }


def write_result(result: dict, out: str | os.PathLike, seeds: dict | None = None) -> Path:
    return write_json({**result, "provenance": provenance(seeds)}, out)
