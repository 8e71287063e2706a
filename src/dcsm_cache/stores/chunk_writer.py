"""Writing a store at the disk's speed: rows gathered into whole chunks, each written once as its final file.

    with ChunkWriter(store.path, store.group, threads=4) as chunks:
        chunks.write("image/tokens", 0, tokens)      # [B, P, D] rows from row 0, any batch size

zarr-python writes a slice by reading, decoding, merging and re-encoding every chunk it touches, on
the calling thread. A store's arrays are raw rows and a crc32c (`chunk_files.py`), and extraction
writes each row once, so rows are instead copied into a buffer per chunk (a chunk that one call
holds whole is written from the caller's array), and the moment a chunk's last row is in, the buffer
(padded whole with the fill value at the array's end, as zarr does) and its checksum are written by
a pool of threads to a temporary file renamed over the chunk's name: the same bytes zarr-python
would write, read back by zarr-python, tensorstore and `RawRows` alike.
Each file's write-back to the disk starts as soon as it is written (`posix_fadvise(DONTNEED)` starts
it for dirty pages, which stay cached), so the disk works beside the extraction instead of after it.
A part of a store spans whole chunks (`feature_store.part_ranges`), so a part's writer never shares
a chunk with another process. At most `pending` chunks wait for the disk; `write` blocks beyond that.
An error in a writing thread is raised by the next `write` or at exit; a chunk left with some rows
unwritten (the caller failed) is never written.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from .. import faults
from .chunk_files import checksum, chunk_path, fill_value, raw_layout, temporary

__all__ = ["ChunkWriter"]

_START_WRITEBACK = hasattr(os, "posix_fadvise")  # (Linux and the BSDs; elsewhere the cache decides)


@dataclass
class _Array:
    arr: zarr.Array
    rows: int  # rows per chunk
    raw: bool

    @property
    def rows_shape(self) -> tuple[int, ...]:
        return tuple(self.arr.shape[1:])


@dataclass
class _Chunk:
    buf: np.ndarray  # the whole chunk, [rows per chunk, ...]
    missing: int  # rows of it not written yet


class ChunkWriter:
    """Whole chunks of a store's arrays, written by `threads` threads (module doc)."""

    def __init__(self, root: str | os.PathLike, group: zarr.Group, threads: int = 4, pending: int = 0):
        self.root, self.group = Path(root), group
        self._arrays: dict[str, _Array] = {}
        self._open: dict[tuple[str, int], _Chunk] = {}
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="chunk-writer")
        self._slots = threading.BoundedSemaphore(pending or 2 * max(1, threads) + 2)
        self._dirs: set[Path] = set()
        self._error: BaseException | None = None

    def __enter__(self) -> "ChunkWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close(failed=exc[0] is not None)

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        """Rows `start, start + 1, ...` of array `name`; whole chunks go to the disk as soon as they are complete.

        A chunk that `values` holds whole is written from `values` itself, without a copy, so the caller
        must not change `values` after the call (extraction hands over each batch's own arrays)."""
        self._raise()
        a = self._array(name)
        if not a.raw:  # (not a layout the store makes; zarr-python knows it)
            a.arr[start : start + len(values)] = values
            return
        end = start + len(values)
        for c in range(start // a.rows, -(-end // a.rows) if end > start else start // a.rows):
            lo, hi = max(start, c * a.rows), min(end, (c + 1) * a.rows)
            chunk = self._open.get((name, c))
            if chunk is None and hi - lo == a.rows and values.dtype == a.arr.dtype and values.shape[1:] == a.rows_shape:
                self._submit(chunk_path(self.root, name, a.arr, c), values[lo - start : hi - start])  # no copy
                continue
            if chunk is None:
                n = min(a.rows, a.arr.shape[0] - c * a.rows)  # rows of the array in this chunk
                shape, dtype = (a.rows, *a.arr.shape[1:]), a.arr.dtype
                fill = fill_value(a.arr)
                buf = np.empty(shape, dtype) if n == a.rows else np.full(shape, fill, dtype)
                chunk = self._open[name, c] = _Chunk(buf, n)
            chunk.buf[lo - c * a.rows : hi - c * a.rows] = values[lo - start : hi - start]
            chunk.missing -= hi - lo
            if chunk.missing <= 0:
                del self._open[name, c]
                self._submit(chunk_path(self.root, name, a.arr, c), chunk.buf)

    def close(self, failed: bool = False) -> None:
        """Wait for every chunk to be on disk; raise a writing thread's error (unless the caller failed)."""
        self._pool.shutdown(wait=True)
        left, self._open = sorted(self._open), {}
        if failed:
            return
        self._raise()
        if left:  # a caller's bug, not bad input: its rows must cover whole chunks
            raise RuntimeError(f"{self.root}: chunks {left[:4]} were left with rows unwritten and were not written")

    def _array(self, name: str) -> _Array:
        if name not in self._arrays:
            arr = self.group[name]
            self._arrays[name] = _Array(arr, arr.chunks[0], raw_layout(arr))
        return self._arrays[name]

    def _submit(self, path: Path, buf: np.ndarray) -> None:
        self._slots.acquire()
        future = self._pool.submit(self._write_file, path, buf)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        self._slots.release()
        if future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_file(self, path: Path, buf: np.ndarray) -> None:
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        body = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
        tmp = temporary(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_all(fd, [body, checksum(body)])
            if _START_WRITEBACK:  # the disk starts on this file now, not when the cache fills or at the final sync
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        faults.point("chunk.write")


def _write_all(fd: int, parts: list) -> None:
    """os.writev until every byte of `parts` is written (a large write may be cut short)."""
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views:
            views[0] = views[0][n:]
