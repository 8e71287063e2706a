"""A process that imports dcsm-cache once and forks one child per command, for the kill tests.

    with ForkServer() as fs:
        pid = fs.start(["extract", "--items", m, ...], log, env={"DCSM_CACHE_FAULT": "kill@part.marker"})
        status = fs.wait(pid)          # -9: killed by SIGKILL; 0, 2: its exit code

Each child runs the CLI's `main()` exactly as `dcsm-cache ARGS` does, in its own process with its own
environment and output file, and can be SIGKILLed like any process; only torch's import (seconds,
which would dominate a test that starts a dozen short runs) is shared. The server never runs a torch
operation itself, so no thread pool exists when it forks.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

SERVER = r"""
import json, os, sys, threading
import dcsm_cache.cli as cli
import dcsm_cache.pipeline.extract, dcsm_cache.pipeline.train, dcsm_cache.pipeline.tasks.choice  # noqa
lock = threading.Lock()
def say(obj):
    with lock:
        os.write(1, (json.dumps(obj) + "\n").encode())
def reap(pid):
    _, status = os.waitpid(pid, 0)
    say({"exit": pid, "status": os.waitstatus_to_exitcode(status)})
say({"ready": os.getpid()})
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.update(req["env"])
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 0
        try:
            cli.main(req["args"], prog_name="dcsm-cache")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    say({"started": pid})
    threading.Thread(target=reap, args=(pid,), daemon=True).start()
"""


class ForkServer:
    def __init__(self, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._buf, self.exits = b"", {}
        self._next("ready", 300)

    def _next(self, key: str, timeout: float, pid: int | None = None):
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                msg = json.loads(line)
                if "exit" in msg:
                    self.exits[msg["exit"]] = msg["status"]
                elif key in msg:
                    return msg[key]
            if key == "exit" and pid in self.exits:
                return self.exits.pop(pid)
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError(f"fork server: no {key!r} within {timeout} s")
            if select.select([self.proc.stdout], [], [], left)[0]:
                self._buf += os.read(self.proc.stdout.fileno(), 65536)

    def start(self, args, log, env: dict | None = None) -> int:
        """Start `dcsm-cache ARGS` in a new process writing stdout and stderr to `log`; its pid."""
        req = {"args": [str(a) for a in args], "log": str(log), "env": env or {}}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        return self._next("started", 60)

    def wait(self, pid: int, timeout: float = 300) -> int:
        """The child's exit status (negative: the signal that killed it)."""
        return self._next("exit", timeout, pid)

    def run(self, args, log, env: dict | None = None, timeout: float = 300) -> int:
        return self.wait(self.start(args, log, env), timeout)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
