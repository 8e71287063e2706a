"""The CPU cores this process may run on (its affinity mask, not the machine's count).

    workers = min(4, cpu_cores())

A module of its own, free of torch, so that light commands (`dcsm-cache world`) can ask too.
"""

from __future__ import annotations

import os


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
