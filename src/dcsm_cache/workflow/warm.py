"""The workflow's warm server (warm.py): started before the first job, stopped after the last.

    onstart:
        warm.start(workflow, config)

A local run (not a cluster executor, not a job on a node) with `warm_start: true` starts
`python -m dcsm_cache.warm` in a session of its own, its log at .snakemake/dcsm-cache-warm.log, and
sets DCSM_CACHE_WARM for the jobs: each `dcsm-cache` job then runs in a child of the server, without
importing torch again. Jobs that start before it is listening (its imports take a few seconds) run as
fresh processes, as does any job the server refuses. The server ends once its children have, on
`stop()` or when Snakemake itself is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from ..cli.warm import ENV_VAR

__all__ = ["start", "stop"]

_server: subprocess.Popen | None = None


def start(workflow, config: dict) -> None:
    """Start the server for this run's jobs, where the jobs run here and the config asks for it."""
    global _server
    if not config.get("warm_start", True) or not workflow.local_exec or workflow.remote_exec:
        return
    path = os.path.join(tempfile.mkdtemp(prefix="dcsm-warm-"), "sock")  # short: a socket's path has ≤ 107 bytes
    env = {**os.environ, "DCSM_CPU_ISA": str(config.get("cpu_isa", "native"))}  # as the jobs' shell prefix sets
    os.makedirs(".snakemake", exist_ok=True)
    with open(os.path.join(".snakemake", "dcsm-cache-warm.log"), "w") as log:
        _server = subprocess.Popen(
            [sys.executable, "-m", "dcsm_cache.warm", path, str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a killed process group (Ctrl-C, SIGKILL) reaches the jobs, not the server
        )
    os.environ[ENV_VAR] = path


def stop() -> None:
    """Jobs from now on start fresh; the server ends once the children it has have ended."""
    global _server
    os.environ.pop(ENV_VAR, None)
    if _server is not None and _server.poll() is None:
        _server.send_signal(signal.SIGTERM)
    _server = None
