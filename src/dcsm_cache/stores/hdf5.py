"""HDF5 twins of feature stores (h5py), for tools that read HDF5: the same arrays, chunks, attributes and checksums.

    export_hdf5("stores/shapes-clip/shapes_spatial.zarr", "shapes_spatial.h5")
    import_hdf5("shapes_spatial.h5", "stores/shapes-clip/shapes_spatial.zarr")   # bit-identical round trip

Every array of the store (cached views too) keeps its path (`image/tokens`, `text/ids`, ...), dtype,
chunk shape and dimension names (attribute `dimension_names`). The store's attributes travel as one
JSON string (`dcsm_cache_attrs`), so chunk rows, the unreadable images and nested values come back
unchanged; each scalar is also a plain HDF5 attribute, for readers that browse them.

An export is as safe as the store: every chunk carries HDF5's Fletcher-32 checksum, which the HDF5
library (h5py, h5dump, ...) checks on every read, and each dataset records the sha256 of its bytes
(`sha256`), the attributes the sha256 of their JSON (`dcsm_cache_attrs_sha256`). Import checks all
of them and refuses a file that fails one, in one line naming it. It builds the store in
`.NAME.importing` beside the destination and renames it into place only when whole, so a bad file
leaves no store behind, and a store already there is replaced only with `overwrite`. Copies go chunk
by chunk, so neither side is ever held in memory whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from ..atomic import atomic_path
from ..errors import BadInputError, DcsmCacheError, InputNotFoundError, StoreMismatchError
from .feature_store import DIMENSIONS, SCHEMA_VERSION, FeatureStore, StoreShape, build_arrays, install

__all__ = ["ATTRS_KEY", "export_hdf5", "import_hdf5"]

ATTRS_KEY = "dcsm_cache_attrs"
ATTRS_SHA = "dcsm_cache_attrs_sha256"
_AGAIN = "export it again with `dcsm-cache export`"


def _arrays(group) -> list[str]:
    return [f"{g}/{name}" for g in ("image", "text") for name in sorted(group[g].array_keys())]


def _le_bytes(block: np.ndarray) -> bytes:
    """The rows' bytes as the store holds them (little-endian, C order): what `sha256` hashes."""
    return np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")).tobytes()


def export_hdf5(store_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the complete store at `store_path` as one HDF5 file at `out` (atomically)."""
    import h5py

    store = FeatureStore.open(store_path)
    attrs = store.attrs
    text = json.dumps(attrs, sort_keys=True)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs[ATTRS_KEY] = text
            f.attrs[ATTRS_SHA] = hashlib.sha256(text.encode()).hexdigest()
            for key, value in attrs.items():
                if isinstance(value, (str, int, float, bool)):
                    f.attrs[key] = value
            for name in _arrays(store.group):
                arr = store[name]
                chunks = arr.chunks if arr.shape[0] else None  # (HDF5 chunks hold at least one row)
                dst = f.create_dataset(
                    name, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fletcher32=chunks is not None
                )
                digest = hashlib.sha256()
                for a in range(0, arr.shape[0], arr.chunks[0]):
                    block = arr[a : a + arr.chunks[0]]
                    dst[a : a + len(block)] = block
                    digest.update(_le_bytes(block))
                dst.attrs["sha256"] = digest.hexdigest()
                dst.attrs["dimension_names"] = list(DIMENSIONS[name])
    return Path(out)


def import_hdf5(h5: str | os.PathLike, store_path: str | os.PathLike, overwrite: bool = False) -> FeatureStore:
    """Rebuild the store an `export_hdf5` file holds at `store_path`, every checksum checked (module doc)."""
    h5, store_path = Path(h5), Path(store_path)
    if not h5.is_file():
        raise InputNotFoundError(f"HDF5 file {h5} does not exist")
    if store_path.exists() and not overwrite:
        raise StoreMismatchError(f"{store_path} already exists: pass --overwrite to replace it, or use another path")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = store_path.parent / f".{store_path.name}.importing"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an import that was killed
    try:
        with _opened(h5) as f:
            _copy_into(f, h5, tmp)
        install(tmp, store_path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FeatureStore.open(store_path)


@contextlib.contextmanager
def _opened(h5: Path) -> Iterator:
    """The HDF5 file open for reading; whatever h5py raises on a damaged file is one BadInputError naming it."""
    import h5py

    try:
        f = h5py.File(h5, "r")
    except OSError as err:
        raise BadInputError(f"{h5} is not an HDF5 file ({err}): {_AGAIN}") from err
    try:
        with f:
            yield f
    except DcsmCacheError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as err:  # a damaged file's structure
        first = (str(err).strip().splitlines() or [""])[0][:200] or type(err).__name__
        raise BadInputError(f"{h5} is damaged ({first}): {_AGAIN}") from err


def _attrs(f, h5: Path) -> dict:
    if ATTRS_KEY not in f.attrs:
        raise BadInputError(f"{h5} has no {ATTRS_KEY} attribute: it was not written by `dcsm-cache export`")
    text = f.attrs[ATTRS_KEY]
    text = text.decode() if isinstance(text, bytes) else str(text)
    found = f.attrs.get(ATTRS_SHA)
    if found is None:
        raise BadInputError(f"{h5} records no checksum of its attributes ({ATTRS_SHA}): {_AGAIN}")
    if hashlib.sha256(text.encode()).hexdigest() != (found.decode() if isinstance(found, bytes) else str(found)):
        raise BadInputError(f"{h5}: its attributes fail their sha256 (the file changed after export): {_AGAIN}")
    attrs = json.loads(text)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise StoreMismatchError(
            f"{h5} holds store schema {attrs.get('schema_version')}, this dcsm-cache "
            f"writes {SCHEMA_VERSION}: re-extract it"
        )
    if not attrs.get("complete"):
        raise BadInputError(f"{h5} holds an unfinished store: {_AGAIN} from the complete store")
    return attrs


def _datasets(f) -> set[str]:
    import h5py

    found: set[str] = set()
    f.visititems(lambda name, obj: found.add(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _copy_into(f, h5: Path, folder: Path) -> None:
    """Build the whole store `f` holds in `folder`: its layout, chunk rows and attributes; every array
    copied chunk by chunk, each chunk's Fletcher-32 and each array's sha256 checked."""
    attrs = _attrs(f, h5)
    shape = StoreShape(**attrs["shape"])
    rows = {}
    for g in ("image", "text"):
        if f"{g}/tokens" not in f:
            raise BadInputError(f"{h5} has no dataset {g}/tokens (every store has one): {_AGAIN}")
        rows[g] = (f[f"{g}/tokens"].chunks or (0,))[0]
    group = build_arrays(folder, shape, attrs, rows)
    wanted, found = set(_arrays(group)), _datasets(f)
    if wanted - found:
        missing = ", ".join(sorted(wanted - found))
        raise BadInputError(f"{h5} has no dataset {missing}, which a store of its shape holds: {_AGAIN}")
    if found - wanted:
        extra = ", ".join(sorted(found - wanted))
        raise BadInputError(f"{h5} holds dataset {extra}, which is not part of a store of its shape: {_AGAIN}")
    for name in sorted(wanted):
        src, dst = f[name], group[name]
        if src.shape != dst.shape or np.dtype(src.dtype) != dst.dtype:
            raise BadInputError(
                f"{h5}: {name} is {src.shape} {src.dtype}, the store's layout wants {dst.shape} {dst.dtype}: {_AGAIN}"
            )
        digest, step = hashlib.sha256(), dst.chunks[0]
        for a in range(0, dst.shape[0], step):
            try:
                block = src[a : a + step]
            except OSError as err:  # HDF5 checks each chunk's Fletcher-32 as it reads it
                raise BadInputError(
                    f"{h5}: {name} rows {a}-{min(a + step, dst.shape[0]) - 1} cannot be read or fail their "
                    f"Fletcher-32 checksum (the file changed after export): {_AGAIN}"
                ) from err
            dst[a : a + len(block)] = block
            digest.update(_le_bytes(block))
        recorded = src.attrs.get("sha256")
        recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
        if digest.hexdigest() != recorded:
            raise BadInputError(
                f"{h5}: {name} does not match the sha256 recorded at export (the file changed after): {_AGAIN}"
            )
