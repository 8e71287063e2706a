"""Images inside tar shards (webdataset, img2dataset): one member's bytes, each shard read once, in order.

    data = read_member("data/laion/00000.tar", "000000003.jpg")

An `ImageRef` with a `member` names a file inside the tar at its `path`; `open_image` reads it
through here. A gzip'd shard (`.tar.gz`, `.tgz`; webdataset reads them too) is decompressed on the
fly: reading forward costs what reading it once does, and a step back decompresses again from its
start, so keep a compressed shard's rows consecutive (the webdataset loader does). A small
per-process cache keeps the last few shards open. Each shard's member index is built lazily while
reading forward, so a manifest whose rows of one shard are consecutive (what the webdataset loader
writes) reads every shard sequentially, once, without unpacking it. Reads of one shard are
serialised by a lock, because extraction decodes images in threads; a shard rewritten on disk
(new size or time) is reopened.
"""

from __future__ import annotations

import os
import tarfile
import threading
from collections import OrderedDict

from ...errors import BadInputError, InputNotFoundError

MAX_OPEN = 8  # shards kept open per process


def _mode(path: str) -> str:
    """tarfile's mode for a shard: `.tar` as it is; any other name (`.tar.gz`, `.tgz`) by its compression."""
    return "r:" if path.endswith(".tar") else "r:*"


class _Shard:
    def __init__(self, path: str, stamp: tuple[int, int]):
        self.path, self.stamp, self.lock, self.closed = path, stamp, threading.Lock(), False
        self.index: dict[str, tarfile.TarInfo] = {}
        self.scanned = False
        try:
            self.tar = tarfile.open(path, _mode(path))  # noqa: SIM115 (kept open: the cache closes it)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise BadInputError(f"shard {path} is not a tar file, plain or gzip'd ({err})") from None

    def find(self, member: str) -> tarfile.TarInfo | None:
        """The member's header, reading headers forward from where the last search stopped."""
        info = self.index.get(member)
        while info is None and not self.scanned:
            try:
                nxt = self.tar.next()
            except (tarfile.TarError, EOFError, OSError) as err:
                raise BadInputError(f"shard {self.path} is truncated or corrupt ({err})") from None
            if nxt is None:
                self.scanned = True
            else:
                self.index.setdefault(nxt.name, nxt)
                info = nxt if nxt.name == member else None
        return info

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.tar.close()


_lock = threading.Lock()
_open: OrderedDict[str, _Shard] = OrderedDict()
_pid = os.getpid()


def _shard(path: str) -> _Shard:
    global _pid
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputNotFoundError(f"shard {path} is missing") from None
    stamp = (st.st_size, st.st_mtime_ns)
    with _lock:
        if _pid != os.getpid():  # a forked child must not share its parent's file offsets
            _open.clear()
            _pid = os.getpid()
        shard = _open.get(path)
        if shard is None or shard.stamp != stamp:
            if shard is not None:
                shard.close()
            shard = _open[path] = _Shard(path, stamp)
        _open.move_to_end(path)
        while len(_open) > MAX_OPEN:
            _open.popitem(last=False)[1].close()
    return shard


def read_member(path: str | os.PathLike, member: str) -> bytes:
    """The bytes of `member` in the tar shard at `path`; a missing shard or member is an InputNotFoundError."""
    path = str(path)
    while True:
        shard = _shard(path)
        with shard.lock:
            if shard.closed:  # evicted between lookup and lock: open it again
                continue
            info = shard.find(member)
            if info is None or not info.isfile():
                raise InputNotFoundError(f"shard {path} has no member {member}")
            try:
                return shard.tar.extractfile(info).read()
            except (tarfile.TarError, EOFError, OSError) as err:
                raise BadInputError(f"shard {path}: member {member} cannot be read ({err})") from None


def has_member(path: str | os.PathLike, member: str) -> bool:
    """Whether the shard at `path` exists and holds `member` as a regular file."""
    try:
        shard = _shard(str(path))
    except InputNotFoundError:
        return False
    with shard.lock:
        if shard.closed:
            return has_member(path, member)
        info = shard.find(member)
    return info is not None and info.isfile()
