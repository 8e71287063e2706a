"""HDF5 twins of feature stores (h5py), for tools that read HDF5: the same arrays, chunks and attributes.

    export_hdf5("stores/shapes-clip/shapes_spatial.zarr", "shapes_spatial.h5")
    import_hdf5("shapes_spatial.h5", "stores/shapes-clip/shapes_spatial.zarr")   # bit-identical round trip

Arrays keep their paths (`image/tokens`, `text/ids`, ...), dtypes and chunk shapes; the store's
attributes travel as one JSON string (`dcsm_cache_attrs`), so nested values survive unchanged, and
each is also written as a plain HDF5 attribute where it is a scalar, for readers that browse them.
Copies go chunk by chunk, so neither side is ever held in memory whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import BadInputError, InputNotFoundError, StoreMismatchError
from .feature_store import SCHEMA_VERSION, FeatureStore, StoreShape

__all__ = ["ATTRS_KEY", "export_hdf5", "import_hdf5"]

ATTRS_KEY = "dcsm_cache_attrs"


def _arrays(store: FeatureStore) -> list[str]:
    return [f"{g}/{name}" for g in ("image", "text") for name in sorted(store.group[g].array_keys())]


def _copy(src, dst, rows: int) -> None:
    for a in range(0, src.shape[0], rows):
        dst[a : a + rows] = src[a : a + rows]


def export_hdf5(store_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the complete store at `store_path` as one HDF5 file at `out` (atomically)."""
    import h5py

    store = FeatureStore.open(store_path)
    attrs = store.attrs
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs[ATTRS_KEY] = json.dumps(attrs, sort_keys=True)
            for key, value in attrs.items():
                if isinstance(value, (str, int, float, bool)):
                    f.attrs[key] = value
            for name in _arrays(store):
                arr = store[name]
                chunks = arr.chunks if arr.shape[0] else None
                _copy(arr, f.create_dataset(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks), arr.chunks[0])
    return Path(out)


def import_hdf5(h5: str | os.PathLike, store_path: str | os.PathLike, overwrite: bool = False) -> FeatureStore:
    """Rebuild the store an `export_hdf5` file holds, at `store_path`, with its parts marked done."""
    import h5py

    h5 = Path(h5)
    if not h5.is_file():
        raise InputNotFoundError(f"HDF5 file {h5} does not exist")
    try:
        f = h5py.File(h5, "r")
    except OSError as err:
        raise BadInputError(f"{h5} is not an HDF5 file ({err}): export it again with `dcsm-cache export`") from err
    with f:
        if ATTRS_KEY not in f.attrs:
            raise BadInputError(f"{h5} has no {ATTRS_KEY} attribute: it was not written by `dcsm-cache export`")
        attrs = json.loads(f.attrs[ATTRS_KEY])
        if attrs.get("schema_version") != SCHEMA_VERSION:
            raise StoreMismatchError(
                f"{h5} holds store schema {attrs.get('schema_version')}, this dcsm-cache "
                f"writes {SCHEMA_VERSION}: re-extract it"
            )
        nparts = attrs["nparts"]
        given = {k: v for k, v in attrs.items() if k not in ("complete",)}
        store = FeatureStore.create(store_path, StoreShape(**attrs["shape"]), given, nparts=nparts, overwrite=overwrite)
        for name in _arrays(store):
            src, dst = f[name], store.group[name]
            if src.shape != dst.shape or np.dtype(src.dtype) != dst.dtype:
                raise BadInputError(
                    f"{h5}: {name} is {src.shape} {src.dtype}, the store's layout wants {dst.shape} {dst.dtype}"
                )
            _copy(src, dst, dst.chunks[0])
    for part in range(nparts):
        store.mark_done(part)
    return FeatureStore.open(store_path)
