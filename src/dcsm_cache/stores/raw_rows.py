"""Minibatch reads from a store's chunk files at the speed of a memory-mapped array.

    reader = RawRows(store.path, store.group)
    tokens = reader.read("image/tokens", np.array([7, 3, 3, 512]))   # [4, P, D], any order, repeats allowed

The store writes its large arrays chunked along rows only, with no compressor: a chunk file is the
rows' raw little-endian bytes followed by their crc32c (zarr v3 stores edge chunks whole). So each
chunk file a read falls in is mapped once (kept for later reads), its checksum checked then, and the
rows copied out; a chunk never written holds the fill value. An array stored any other way is read
through zarr (`chunk_files.select_rows`). `FeatureStore.read_rows` reads through here, and only it;
`bench_store.py` measures it.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import zarr

from ..errors import StoreCorruptError
from .chunk_files import checksum, chunk_path, fill_value, raw_layout, select_rows

MAX_MAPS = 4096  # chunk files kept mapped: address space, not memory (the pages stay in the page cache)
ROW_AT_A_TIME = 64  # up to this many rows (a minibatch) a row at a time costs less than grouping by chunk


class RawRows:
    """Rows of a store's arrays from their mapped chunk files (module doc)."""

    def __init__(self, path: Path, group: zarr.Group):
        self.path, self.group = path, group
        self._layouts: dict[str, tuple[zarr.Array, bool]] = {}
        self._maps: dict[tuple[str, int], np.ndarray | None] = {}

    def read(self, name: str, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        arr, raw = self._layout(name)
        if not raw:
            return select_rows(arr, rows)
        chunk = arr.chunks[0]
        out = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
        if len(rows) <= ROW_AT_A_TIME:
            for j, r in enumerate(rows.tolist()):
                c, o = divmod(r, chunk)
                block = self._chunk(name, arr, c)
                out[j] = fill_value(arr) if block is None else block[o]
            return out
        which = rows // chunk
        for c in np.unique(which):
            at = np.flatnonzero(which == c)
            block = self._chunk(name, arr, int(c))
            out[at] = fill_value(arr) if block is None else block[rows[at] - c * chunk]
        return out

    def _layout(self, name: str) -> tuple[zarr.Array, bool]:
        """The array, and whether its chunk files are raw little-endian rows and a crc32c."""
        if name not in self._layouts:
            arr = self.group[name]
            self._layouts[name] = (arr, raw_layout(arr))
        return self._layouts[name]

    def _chunk(self, name: str, arr: zarr.Array, c: int) -> np.ndarray | None:
        if (name, c) not in self._maps:
            if len(self._maps) > MAX_MAPS:
                self._maps.clear()
            path = chunk_path(self.path, name, arr, c)
            shape = (arr.chunks[0], *arr.shape[1:])
            self._maps[name, c] = checked_map(path, arr.dtype.newbyteorder("<"), shape) if path.exists() else None
        return self._maps[name, c]


def checked_map(path: Path, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """A chunk file mapped as a plain ndarray of `shape` (indexing a np.memmap builds an object per row),
    after its crc32c, the file's last 4 bytes, is checked against the bytes before it."""
    size = int(np.prod(shape)) * dtype.itemsize
    with open(path, "rb") as f:  # (mmap itself: np.memmap's wrapper cost ~0.1 ms a chunk, RESULTS.md)
        found = os.fstat(f.fileno()).st_size
        if found != size + 4:  # (an empty file cannot even be mapped)
            raise StoreCorruptError(
                f"{path} is {found} bytes where its chunk takes {size + 4} (cut short or overwritten after it was "
                f"written): re-extract the store"
            )
        mapped = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)
    body, stored = mapped[:-4], bytes(mapped[-4:])
    if checksum(body) != stored:
        raise StoreCorruptError(
            f"{path} fails its checksum (the bytes changed after they were written): re-extract the store"
        )
    return body.view(dtype).reshape(shape).view(np.ndarray)
