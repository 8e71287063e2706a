"""Warm starts (src/dcsm_cache/warm.py): a `dcsm-cache` command run in a child of a real server, against the same
command run in a fresh process: the same bytes, exit codes and errors, signals passed on, a killed command's child
killed with it, requests unlike the server refused (and run fresh), and the server gone once its starter is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcsm_cache.cli.warm import python_identity
from dcsm_cache.warm import ENV_VAR, PER_JOB, refusal

TINY = "shapes-clip-tiny"


class Server:
    """`python -m dcsm_cache.warm SOCK` with `env`, its output in a log; ready once its socket is there."""

    def __init__(self, folder: Path, env: dict | None = None):
        self.path, self.log = folder / "sock", folder / "warm.log"
        self.env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != ENV_VAR}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dcsm_cache.warm", str(self.path)], env=self.env, stdout=log, stderr=log
            )
        end = time.monotonic() + 120
        while not self.path.exists():
            assert self.proc.poll() is None and time.monotonic() < end, self.log.read_text()
            time.sleep(0.1)

    def run(self, *args: str, warm: bool = True, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
        env = {**self.env, **(env or {}), **({ENV_VAR: str(self.path)} if warm else {})}
        return subprocess.run(["dcsm-cache", *args], env=env, capture_output=True, text=True, **kw)

    def forked(self) -> int:
        return self.log.read_text().count(": pid ")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0
        assert not self.path.exists()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("warm"))
    yield s
    s.stop()


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, but the part locks (they name the process that wrote)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_a_warm_command_writes_the_bytes_a_fresh_one_does(server, manifests, tmp_path):
    """extract and eval (one torch thread each, as a one-thread Snakemake job), warm and fresh: identical files."""
    job = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    for way in ("warm", "fresh"):
        out = tmp_path / way
        out.mkdir()
        before = server.forked()
        for args in (
            ["extract", "--items", str(manifests["shapes_spatial"]), "--backbone", TINY, "--out", "s.zarr"],
            ["eval", "--store", "s.zarr", "--scorer", "cosine", "--out", "r.json"],
        ):
            done = server.run(*args, "--device", "cpu", cwd=out, env=job, warm=way == "warm")
            assert done.returncode == 0, done.stderr
        assert server.forked() - before == (2 if way == "warm" else 0)
    warm, fresh = _files(tmp_path / "warm"), _files(tmp_path / "fresh")
    assert sorted(warm) == sorted(fresh) and "r.json" in warm
    assert [name for name in warm if warm[name] != fresh[name]] == []


def test_errors_exit_codes_and_output_are_the_commands(server, tmp_path):
    for warm in (True, False):
        bad = server.run(
            "eval", "--store", "missing.zarr", "--scorer", "cosine", "--out", "r.json", cwd=tmp_path, warm=warm
        )
        assert bad.returncode == 2 and bad.stdout == ""
        assert bad.stderr.count("\n") == 1 and "no feature store at missing.zarr" in bad.stderr
    assert server.run("extract", "--help").stdout == server.run("extract", "--help", warm=False).stdout
    assert server.run("--no-such-option").returncode == server.run("--no-such-option", warm=False).returncode == 2


def test_a_request_unlike_the_server_runs_in_a_fresh_process(server, tmp_path):
    """Another variable in the environment: the server refuses, says why, and the command runs fresh."""
    before = server.forked()
    done = server.run("world", "--help", env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0 and "Usage:" in done.stdout and server.forked() == before
    assert "differs in HF_HUB_OFFLINE" in server.log.read_text()


def test_what_may_differ_from_the_server():
    env = {"PATH": "/bin", "HOME": "/root", "DCSM_CPU_ISA": "avx2"}
    request = {"python": python_identity(), "argv": ["dcsm-cache", "eval"], "env": dict(env)}
    assert refusal(request, env, "avx2") is None
    job = {**env, **{k: "1" for k in PER_JOB}}  # Snakemake's per-job threads and tmpdir, the shell's own
    assert refusal({**request, "env": job}, env, "avx2") is None
    assert "MKL_CBWR" in refusal({**request, "env": {**env, "MKL_CBWR": "AUTO"}}, env, "avx2")
    assert "differs in HOME" in refusal({**request, "env": {k: v for k, v in env.items() if k != "HOME"}}, env, "avx2")
    assert "another Python" in refusal({**request, "python": ["/usr/bin/python3", "/usr", "/x"]}, env, "avx2")
    argv = ["dcsm-cache", "--quiet", "--cpu-isa", "native", "eval"]
    assert "cpu_isa native" in refusal({**request, "argv": argv}, env, "avx2")
    assert refusal({**request, "argv": ["dcsm-cache", "--cpu-isa=avx2", "eval"]}, env, "avx2") is None
    assert "differs in DCSM_CPU_ISA" in refusal({**request, "env": {**env, "DCSM_CPU_ISA": "native"}}, env, "avx2")


def _paused(proc: subprocess.Popen) -> int:
    """The pid the child prints when it reaches its fault point (`pause`, faults.py)."""
    seen = []
    for line in proc.stderr:  # (open_clip warns first that the bare architecture has random weights)
        if line.startswith("paused at store.create ("):
            return int(line.rsplit("(", 1)[1].rstrip(")\n"))
        seen.append(line)
    raise AssertionError("".join(seen))


def _gone(pid: int, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_signals_reach_the_child_and_a_killed_command_takes_its_child_with_it(manifests, tmp_path):
    """SIGTERM to the command ends the child and the command as SIGTERM; SIGKILL to the command alone (what
    an OOM killer does) and the server kills the child at once, so nothing keeps writing for a dead job."""
    s = Server(tmp_path, {"DCSM_CACHE_FAULT": "pause@store.create"})
    args = ["dcsm-cache", "extract", "--items", str(manifests["shapes_spatial"]), "--backbone", TINY, "--device", "cpu"]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / f"{sig.name}.zarr"
        env = {**s.env, ENV_VAR: str(s.path)}
        proc = subprocess.Popen([*args, "--out", str(out)], env=env, stderr=subprocess.PIPE, text=True)
        child = _paused(proc)
        assert child != proc.pid
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == -sig
        assert _gone(child), f"pid {child} outlived its command"
    s.stop()


def test_the_server_ends_when_the_process_that_started_it_is_gone(tmp_path):
    path = tmp_path / "sock"
    starter = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -m dcsm_cache.warm "{path}" $$ > "{tmp_path}/log" 2>&1 & echo $!'],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(starter.stdout.readline())
    starter.wait()
    assert _gone(pid, within=120), (tmp_path / "log").read_text()
    assert not path.exists()
