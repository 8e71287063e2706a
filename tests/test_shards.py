"""Tar shard members: read without unpacking, each shard opened once and read forward, errors name the shard."""

from __future__ import annotations

import io
import os
import tarfile
import threading

import pytest

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.formats import shards


def write_shard(path, members: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class Recorder:
    """A file wrapper that records the offset of every read."""

    def __init__(self, f):
        self.f, self.starts = f, []

    def read(self, n=-1):
        self.starts.append(self.f.tell())
        return self.f.read(n)

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.fixture
def counted_opens(monkeypatch):
    """Count the tar files shards.py opens, and track every file offset it reads from."""
    opened, real_open = [], tarfile.open

    def spy(path, mode="r", *a, **kw):
        if mode.startswith("r"):  # not the shards the tests write
            opened.append(os.path.basename(path))
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(shards.tarfile, "open", spy)
    monkeypatch.setattr(shards, "_open", type(shards._open)())  # a fresh cache for this test
    return opened


def test_members_read_in_order_open_each_shard_once(tmp_path, counted_opens):
    data = {f"{k:09d}.{ext}": f"{k}-{ext}".encode() * (k + 1) for k in range(50) for ext in ("jpg", "txt")}
    write_shard(tmp_path / "00000.tar", data)
    write_shard(tmp_path / "00001.tar", {"a.jpg": b"A"})
    names = list(data)
    assert shards.read_member(tmp_path / "00000.tar", names[0]) == data[names[0]]
    shard = shards._open[str(tmp_path / "00000.tar")]
    assert list(shard.index) == names[:1]  # no index of the whole shard up front
    shard.tar.fileobj = Recorder(shard.tar.fileobj)
    for name in names[1:]:
        assert shards.read_member(tmp_path / "00000.tar", name) == data[name]
    starts = shard.tar.fileobj.starts
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # forward only, nothing read twice
    assert list(shard.index) == names
    assert shards.read_member(tmp_path / "00001.tar", "a.jpg") == b"A"
    assert shards.read_member(tmp_path / "00000.tar", "000000003.txt") == b"3-txt" * 4  # back again: no reopen
    assert counted_opens == ["00000.tar", "00001.tar"]


def test_threads_read_the_right_bytes(tmp_path, counted_opens):
    data = {f"{k:04d}.jpg": os.urandom(3000 + k) for k in range(64)}
    write_shard(tmp_path / "s.tar", data)
    got, names = {}, list(data)

    def work(i):
        for name in names[i::4]:
            got[name] = shards.read_member(tmp_path / "s.tar", name)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == data and counted_opens == ["s.tar"]


def test_a_rewritten_shard_is_reopened(tmp_path, counted_opens):
    write_shard(tmp_path / "s.tar", {"x.jpg": b"old"})
    assert shards.read_member(tmp_path / "s.tar", "x.jpg") == b"old"
    write_shard(tmp_path / "s.tar", {"x.jpg": b"newer"})
    st = os.stat(tmp_path / "s.tar")
    os.utime(tmp_path / "s.tar", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert shards.read_member(tmp_path / "s.tar", "x.jpg") == b"newer" and len(counted_opens) == 2


def test_a_gzipped_shard_is_read_in_any_order(tmp_path, counted_opens):
    """A shard written by tarfile's "w:gz" (webdataset's .tar.gz and .tgz): opened once, decompressed on the fly."""
    data = {f"{k:03d}.jpg": bytes([k]) * (k + 100) for k in range(20)}
    for name in ("s.tar.gz", "s.tgz"):
        write_shard(tmp_path / name, data, mode="w:gz")
        for key in ["003.jpg", "019.jpg", "000.jpg", "011.jpg", "003.jpg"]:
            assert shards.read_member(tmp_path / name, key) == data[key]
        assert shards.has_member(tmp_path / name, "007.jpg") and not shards.has_member(tmp_path / name, "x.jpg")
    assert counted_opens == ["s.tar.gz", "s.tgz"]


def test_eviction_keeps_at_most_max_open(tmp_path, counted_opens, monkeypatch):
    monkeypatch.setattr(shards, "MAX_OPEN", 2)
    for i in range(4):
        write_shard(tmp_path / f"{i}.tar", {"x.jpg": bytes([i])})
    for i in [0, 1, 2, 3, 0]:
        assert shards.read_member(tmp_path / f"{i}.tar", "x.jpg") == bytes([i])
    assert len(shards._open) == 2 and counted_opens == ["0.tar", "1.tar", "2.tar", "3.tar", "0.tar"]


def test_errors_name_the_shard_and_member(tmp_path, counted_opens):
    write_shard(tmp_path / "s.tar", {"x.jpg": b"x", "d/": b""})
    with pytest.raises(InputNotFoundError, match=r"s.tar has no member y.jpg$"):
        shards.read_member(tmp_path / "s.tar", "y.jpg")
    with pytest.raises(InputNotFoundError, match=r"shard .*none.tar is missing"):
        shards.read_member(tmp_path / "none.tar", "x.jpg")
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BadInputError, match=r"bad.tar is not a tar file, plain or gzip'd"):
        shards.read_member(tmp_path / "bad.tar", "x.jpg")
    assert shards.has_member(tmp_path / "s.tar", "x.jpg") and not shards.has_member(tmp_path / "s.tar", "y.jpg")
    assert not shards.has_member(tmp_path / "none.tar", "x.jpg")
