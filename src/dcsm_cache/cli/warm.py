"""The command's side of warm starts (dcsm_cache/warm.py has the server): hand the command line to a warm child.

    code = forward(sys.argv)     # None: no server named in DCSM_CACHE_WARM, or it refused; run here

Standard modules only, so that a command that runs warm costs a Python start-up and this.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

ENV_VAR = "DCSM_CACHE_WARM"  # the server's socket; set for the workflow's jobs by workflow/warm.py
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
MAX_MESSAGE = 1 << 20  # a request: arguments and environment, as JSON

__all__ = ["ENV_VAR", "MAX_MESSAGE", "forward", "python_identity", "signal_child"]


def forward(argv: list[str]) -> int | None:
    """Run `argv` in a child of the server named by DCSM_CACHE_WARM; its exit code, or None (no server, or it
    refused: run here). A child killed by a signal kills this process with the same signal."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.connect(path)
        request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "python": python_identity()}
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        answer = json.loads(conn.recv(MAX_MESSAGE) or b'{"refused": "no answer"}')
    except (OSError, ValueError):
        conn.close()
        return None
    if "pid" not in answer:
        conn.close()
        return None
    child = answer["pid"]
    for sig in _FORWARDED:
        signal.signal(sig, lambda sig, _frame: signal_child(child, sig))
    try:
        end = json.loads(conn.recv(MAX_MESSAGE) or b"{}")
    finally:
        conn.close()
    if not end:  # the server was killed: the child's code is lost; wait for it to end, then fail
        while _alive(child):
            time.sleep(0.1)
        return 1
    if "signal" in end:
        for sig in _FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), end["signal"])
        return 128 + end["signal"]
    return end["exit"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def signal_child(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def python_identity() -> list[str]:
    """What a server must share with the command: the interpreter, its environment (venv) and this package."""
    return [os.path.realpath(sys.executable), sys.prefix, os.path.dirname(os.path.abspath(__file__))]
