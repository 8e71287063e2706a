"""Crash safety and concurrency, proven by killing real processes (`faults.py` names the points).

`dcsm-cache extract` runs in child processes (tests/forkserver.py: each child runs the CLI's main in
its own process) and is SIGKILLed inside store creation, between the arrays of a chunk write, just
before a part's marker and at random times (three seeds); after each kill a rerun finishes the job
and the store equals an uninterrupted run's file for file, byte for byte. Two processes write the
two parts of one store at once (every row present); a second process asked for a part another holds
stops in one line naming the holder's pid and host and writes nothing, or with --wait waits for it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from dcsm_cache.errors import IncompleteStoreError
from dcsm_cache.stores.feature_store import FeatureStore
from dcsm_cache.stores.verify import verify_store

from conftest import TINY_BACKBONE
from forkserver import ForkServer

pytestmark = pytest.mark.slow


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def extract_args(manifest, out, *extra):
    return [
        "extract",
        "--items",
        manifest,
        "--backbone",
        TINY_BACKBONE,
        "--out",
        out,
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        "batch_size=4",
        "--set",
        "chunk_rows=8",  # several chunks per array even for the tiny store
        "--set",
        "progress=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def server():
    with ForkServer() as fs:
        yield fs


@pytest.fixture(scope="module")
def reference(server, manifests, tmp_path_factory):
    """An uninterrupted run's store, and how long it took."""
    out = tmp_path_factory.mktemp("reference") / "s.zarr"
    t = time.monotonic()
    assert server.run(extract_args(manifests["shapes_spatial"], out), out.parent / "log") == 0
    return out, time.monotonic() - t


def wait_for(log: Path, text: str, pid: int, server: ForkServer, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.exists() and text in log.read_text():
            return
        if pid in server.exits:
            raise AssertionError(f"exited before {text!r}: {log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in {log} after {timeout} s")


def test_killed_at_each_named_point_a_rerun_gives_the_same_store(server, manifests, reference, tmp_path):
    out, log = tmp_path / "s.zarr", tmp_path / "log"
    args = extract_args(manifests["shapes_spatial"], out)
    points = ("store.create#3", "chunk.write#5", "part.marker")
    for point in points:  # each run continues what the killed one before it left
        status = server.run(args, log, env={"DCSM_CACHE_FAULT": f"kill@{point}"})
        assert status == -signal.SIGKILL, (point, log.read_text())
    with pytest.raises(IncompleteStoreError):  # no part marked finished
        FeatureStore.open(out)
    # what a kill inside zarr's own atomic chunk write leaves: a half-written temporary file
    (out / "image" / "tokens" / "c" / "0" / "0" / "0.0123456789abcdef.partial").write_bytes(b"half a chunk")
    assert server.run(args, log) == 0, log.read_text()
    assert files(out) == files(reference[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_at_a_random_time_a_rerun_gives_the_same_store(server, manifests, reference, tmp_path, seed):
    out, log = tmp_path / "s.zarr", tmp_path / "log"
    args = extract_args(manifests["shapes_spatial"], out)
    pid = server.start(args, log)
    time.sleep(random.Random(seed).uniform(0.1, 0.9 * reference[1]))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it finished first (reaped already)
        pass
    assert server.wait(pid) in (-signal.SIGKILL, 0)
    assert server.run(args, log) == 0, log.read_text()
    assert files(out) == files(reference[0])


def test_two_processes_write_the_two_parts_at_once_and_every_row_is_there(server, manifests, reference, tmp_path):
    out = tmp_path / "s.zarr"
    pids = [
        server.start(extract_args(manifests["shapes_spatial"], out, "--part", p, "--nparts", 2), tmp_path / f"log{p}")
        for p in (0, 1)
    ]
    assert [server.wait(p) for p in pids] == [0, 0], [(tmp_path / f"log{p}").read_text() for p in (0, 1)]
    assert verify_store(out)[1] == []
    one, two = zarr.open_group(reference[0], mode="r"), zarr.open_group(out, mode="r")
    for name in ("image/tokens", "image/pooled", "image/valid", "text/tokens", "text/ids", "text/length"):
        np.testing.assert_array_equal(one[name][:], two[name][:], err_msg=name)


def test_a_part_held_by_another_process_is_never_written_twice(server, manifests, reference, tmp_path):
    out = tmp_path / "s.zarr"
    args = extract_args(manifests["shapes_spatial"], out)
    holder = server.start(args, tmp_path / "holder", env={"DCSM_CACHE_FAULT": "pause@part.marker"})
    wait_for(tmp_path / "holder", "paused at part.marker", holder, server)
    before = files(out)
    assert server.run(args, tmp_path / "second") == 2
    message = (tmp_path / "second").read_text().strip().splitlines()[-1]  # (after open_clip's warning)
    assert message.startswith("dcsm-cache: error: ") and f"pid {holder} on host {socket.gethostname()}" in message
    waiter = server.start([*args, "--wait"], tmp_path / "waiter")
    time.sleep(1.0)
    assert waiter not in server.exits  # waiting for the lock
    assert files(out) == before  # nothing written by either
    os.kill(holder, signal.SIGKILL)  # the kernel releases its lock; the waiter redoes the part
    assert server.wait(holder) == -signal.SIGKILL
    assert server.wait(waiter) == 0, (tmp_path / "waiter").read_text()
    assert files(out) == files(reference[0])


def test_the_dcsm_cache_command_itself_killed_mid_write(server, manifests, reference, tmp_path):
    """The same, through the installed `dcsm-cache` entry point in a plain subprocess."""
    import shutil
    import subprocess

    out, log = tmp_path / "s.zarr", tmp_path / "log"
    args = extract_args(manifests["shapes_spatial"], out)
    cmd = [shutil.which("dcsm-cache") or "dcsm-cache", *map(str, args)]
    env = {**os.environ, "DCSM_CACHE_FAULT": "kill@chunk.write#9"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert server.run(args, log) == 0, log.read_text()
    assert files(out) == files(reference[0])


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_killing_extract_alone_frees_its_part_for_a_rerun_at_once(server, manifests, reference, tmp_path):
    """What an OOM killer does: SIGKILL the extracting process alone while its decoding worker lives. The worker,
    forked after the part's lock was taken, must not hold it: a rerun started at once takes the part and finishes."""
    out, log = tmp_path / "s.zarr", tmp_path / "log"
    args = extract_args(manifests["shapes_spatial"], out)
    args[args.index("--workers") + 1] = "1"
    pid = server.start(args, log, env={"DCSM_CACHE_FAULT": "pause@chunk.write#2"})
    wait_for(log, "paused at chunk.write", pid, server)
    workers = children(pid)
    assert workers, "no decoding worker to orphan"
    os.kill(pid, signal.SIGKILL)
    assert server.wait(pid) == -signal.SIGKILL
    assert any(Path(f"/proc/{w}").exists() for w in workers)  # the orphaned worker still lives...
    assert server.run(args, tmp_path / "rerun") == 0, (tmp_path / "rerun").read_text()  # ...and holds nothing
    assert files(out) == files(reference[0])
