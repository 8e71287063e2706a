"""The store's locks, files beside it: one for the whole store (creating, replacing, finishing) and one per part.

    with part_lock(path, part=0, nparts=4, wait=False):   # PartBusyError naming the holder, unless `wait`
        ...write part 0...

A part is written only by the process that holds its lock, so it is never written twice at once; the
kernel frees a lock the moment its holder dies, so a killed writer's part is taken by the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from ..errors import PartBusyError

__all__ = ["part_lock", "store_lock"]


@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """The store-wide lock (creating, replacing, finishing), a file beside the store."""
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


_held: set[Path] = set()  # part locks this process holds (a POSIX lock does not exclude its own process)
_held_guard = threading.Lock()


@contextlib.contextmanager
def part_lock(path: Path, part: int, nparts: int, wait: bool) -> Iterator[None]:
    """An exclusive lock on `.NAME.part-K-of-N.lock` beside the store, holding 'pid P on host H'.

    A POSIX record lock (`lockf`), not `flock`: it belongs to this process alone, so the processes it
    forks (DataLoader's decoding workers) do not hold it, and the kernel frees it the moment this
    process dies, even while an orphaned worker lives on."""
    lock_path = path.parent / f".{path.name}.part-{part}-of-{nparts}.lock"
    key = lock_path.resolve()
    with open(lock_path, "a+") as lock:
        while True:
            with _held_guard:
                mine = key in _held
                if not mine:
                    try:
                        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        _held.add(key)
                        break
                    except OSError as err:
                        if err.errno not in (errno.EACCES, errno.EAGAIN):
                            raise
            if not wait:
                lock.seek(0)
                holder = f"this process (pid {os.getpid()})" if mine else lock.read().strip() or "another process"
                raise PartBusyError(
                    f"{path}: part {part} of {nparts} is being written by {holder} (lock {lock_path}): "
                    f"wait for it, or pass --wait to wait; it is never written twice at once"
                ) from None
            time.sleep(0.1)
        try:
            lock.truncate(0)
            lock.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
            lock.flush()
            yield
        finally:
            with _held_guard:
                _held.discard(key)
