"""Named fault points, for the tests that prove crash safety by killing a real process.

    faults.point("part.marker")      # DCSM_CACHE_FAULT=kill@part.marker: SIGKILL this process here

`DCSM_CACHE_FAULT` holds `ACTION@POINT[#N]` (comma-separated for several): at the N-th time (default
1st) this process reaches POINT, `kill` sends itself SIGKILL (no cleanup runs, as when a scheduler
kills a job) and `pause` prints `paused at POINT (pid)` on stderr and sleeps, so that a test can act
while it holds its locks and then kill it. Unset (always, outside tests), a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import sys
import time

ENV = "DCSM_CACHE_FAULT"
POINTS = (
    "store.create",  # the store's arrays are being created (before its attributes are written)
    "chunk.write",  # between the arrays of one batch's write
    "part.marker",  # every chunk of the part is written, its marker is not
    "train.step",  # after an optimiser step
    "train.checkpoint",  # the resume checkpoint's temporary file is written, not yet renamed
)
_hits: dict[str, int] = {}


def _plan() -> dict[str, tuple[str, int]]:
    plan = {}
    for spec in filter(None, os.environ.get(ENV, "").split(",")):
        action, _, rest = spec.partition("@")
        name, _, nth = rest.partition("#")
        plan[name] = (action, int(nth or 1))
    return plan


def point(name: str) -> None:
    """Do what DCSM_CACHE_FAULT asks at this point, if anything."""
    if ENV not in os.environ:
        return
    want = _plan().get(name)
    if want is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != want[1]:
        return
    if want[0] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif want[0] == "pause":
        print(f"paused at {name} ({os.getpid()})", file=sys.stderr, flush=True)
        time.sleep(600)
