"""A store's files as bytes on disk (its arrays' chunk files, its group's metadata): the one module that knows how
zarr lays them out.

    group.create_array(name, shape=shape, dtype=dtype, chunks=rows, compressors=checksum_codecs())
    if raw_layout(arr):                                  # raw little-endian rows, then their crc32c
        path = chunk_path(store.path, "image/tokens", arr, 3)   # .../image/tokens/c/3/0/0

The store creates its arrays chunked along the first axis only, with zarr v3's `bytes` codec
(little-endian) and its `crc32c` checksum codec and no compressor (`checksum_codecs`, used by
`feature_store.py`). A chunk file is then the rows' raw bytes, edge chunks padded whole with the fill
value (`fill_value`), followed by the crc32c of those bytes as a little-endian uint32. The fast reader
(`raw_rows.py`) maps such files and the writer (`chunk_writer.py`) writes them whole, both through
the names here; an array stored any other way is read (`select_rows`) and written through
zarr-python. zarr-python writes a chunk, and the group's `zarr.json`, through a temporary
`NAME.<hex>.partial` file renamed over it, and so does the writer: `partial_files` and
`partial_metadata` find the ones a killed process left. The group's attributes are read straight from
its `zarr.json` (`group_attrs`), as another process last wrote them, and a folder is a store once that
file is there (`is_group`). A zarr-python release that named its codecs
otherwise would make `raw_layout` false and every read slow: `tests/test_feature_store.py` checks that
a store `extract` made is read the raw way.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

__all__ = [
    "PARTIAL",
    "checksum",
    "checksum_codecs",
    "chunk_path",
    "fill_value",
    "group_attrs",
    "is_group",
    "is_checksum_error",
    "partial_files",
    "partial_metadata",
    "raw_layout",
    "select_rows",
    "temporary",
]

PARTIAL = ".partial"  # zarr-python's suffix for a chunk file being written


def checksum_codecs() -> tuple:
    """The codecs after the bytes codec that the store's arrays are created with: crc32c alone (fp16 does not
    compress; the checksum is 4 bytes a chunk)."""
    return (Crc32cCodec(),)


def raw_layout(arr: zarr.Array) -> bool:
    """Whether `arr`'s chunk files are whole rows of raw little-endian bytes followed by their crc32c."""
    codecs = arr.metadata.codecs
    kinds = [type(c).__name__ for c in codecs]
    endian = getattr(getattr(codecs[0], "endian", None), "value", "little") if codecs else None
    whole_rows = arr.ndim > 0 and arr.chunks[1:] == arr.shape[1:]
    return whole_rows and kinds == ["BytesCodec", "Crc32cCodec"] and endian == "little"


def fill_value(arr: zarr.Array):
    """What a chunk never written holds, and what pads an edge chunk whole."""
    return arr.metadata.fill_value


def select_rows(arr: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` of an array not stored the raw way, through zarr-python (slow: it decodes each chunk per read)."""
    return arr.get_orthogonal_selection((rows, *(slice(None),) * (arr.ndim - 1)))


def chunk_path(root: Path, name: str, arr: zarr.Array, c: int) -> Path:
    """The file of chunk `c` (along the first axis) of array `name` in the store at `root`."""
    return root / name / arr.metadata.chunk_key_encoding.encode_chunk_key((c, *(0,) * (arr.ndim - 1)))


def temporary(path: Path) -> Path:
    """A temporary name beside chunk file `path`, as zarr-python names its own."""
    return path.with_suffix(f".{uuid.uuid4().hex}{PARTIAL}")


def partial_files(root: Path, name: str) -> Iterator[tuple[int, Path]]:
    """(chunk index along the first axis, file) of every temporary chunk file under array `name`."""
    base = root / name / "c"
    for tmp in base.rglob(f"*{PARTIAL}"):
        head = tmp.relative_to(base).parts[0].split(".")[0]
        if head.isdigit():
            yield int(head), tmp


def is_group(root: Path) -> bool:
    """Whether a zarr group's metadata is at `root` (a folder without it is not a store, or not one yet)."""
    return (root / "zarr.json").exists()


def group_attrs(root: Path) -> dict:
    """The attributes of the group at `root`, read from its metadata file now ({} where there is none or it is
    unreadable): what another process last wrote, whatever an open handle cached."""
    try:
        return json.loads((root / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return {}


def partial_metadata(root: Path) -> Iterator[Path]:
    """The group's `zarr.json` writes a kill cut short (zarr writes `zarr.<hex>.partial`, then renames)."""
    yield from root.glob(f"*{PARTIAL}")


def checksum(body: np.ndarray) -> bytes:
    """The 4 bytes the crc32c codec appends to a chunk's bytes `body` (an array; google_crc32c takes no memoryview)."""
    return np.uint32(google_crc32c.value(body)).astype("<u4").tobytes()


def is_checksum_error(err: BaseException | None) -> bool:
    """Whether `err` (or what caused it) is zarr-python finding a chunk that fails its crc32c on reading."""
    while err is not None:
        if isinstance(err, ValueError) and "checksum do not match" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False
