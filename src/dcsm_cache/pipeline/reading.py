"""The one way the science reads a feature store: the store and the manifest it was extracted from, opened together.

    opened = open_store("stores/shapes-clip/shapes_spatial.zarr")        # OpenedStore(path, store, dataset)
    tokens = opened.store.read_rows("image/tokens", np.array([3, 1, 2]))  # [3, P, D], the store's raw reader
    pooled = read_pooled("stores/ViT-B-16.openai/karpathy_coco.zarr")     # what the cosine-only tasks read
    unit = normalise(pooled.image_pooled[0:64])                           # float32 rows of unit norm

This module sits in pipeline/, beside stores/ rather than in it: stores/ knows the layout on disk and
nothing of datasets, while a store is only ever scored against the manifest it was extracted from
(pipeline/items/), checked by its fingerprint, so that a changed dataset is never scored against a
stale cache. Everything that scores or analyses a store opens it here: evaluation, training, the
figures and the probes through `dcsm/cache.py`'s `CachedDataset`, zero-shot and retrieval through
`read_pooled`, linear probes and the analyses (`analysis/arrays.py`) through `open_store`, and a dask
task, which gets only a path, through `read_rows`. Rows are read by the store's own reader
(`FeatureStore.read_rows`: the chunk files mapped), so nothing outside stores/ knows how they lie on
disk. Only numpy is imported here, not torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInputError, InputNotFoundError
from ..stores.feature_store import FeatureStore
from .items import Dataset, manifest_fingerprint, read_manifest

if TYPE_CHECKING:
    import zarr

__all__ = ["OpenedStore", "Pooled", "normalise", "open_store", "read_pooled", "read_rows"]


@dataclass(frozen=True)
class OpenedStore:
    """A complete store and the dataset of the manifest it was extracted from (that version of it)."""

    path: Path
    store: FeatureStore
    dataset: Dataset


def open_store(
    path: str | os.PathLike, items: str | os.PathLike | None = None, backbone_id: str | None = None
) -> OpenedStore:
    """The complete store at `path` (of backbone `backbone_id`, if given) and its manifest: `items`, or the one
    the store records. A missing manifest, or one whose fingerprint is not the store's, is an error that says
    what to do."""
    store = FeatureStore.open(path, backbone_id=backbone_id)
    manifest = Path(items or store.attrs["manifest"])
    if not manifest.is_file():
        raise InputNotFoundError(
            f"manifest {manifest} of store {path} is missing: run from the folder the store was extracted in "
            f"(the store records the manifest's path as given then), or pass the manifest (--items)"
        )
    store.check_fingerprint(manifest_fingerprint(manifest))
    return OpenedStore(Path(path), store, read_manifest(manifest))


def normalise(x: np.ndarray) -> np.ndarray:
    """`x` as float32 with each row (the last axis) of unit L2 norm; a zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class Pooled:
    """A store's pooled embeddings and its manifest: all a cosine-only task reads."""

    store: FeatureStore
    dataset: Dataset
    image_pooled: zarr.Array  # [N, D] float16, read in blocks
    valid: np.ndarray  # [N] bool
    text: np.ndarray  # [M, D] float32, L2-normalised

    def images(self, a: int, b: int) -> np.ndarray:
        """Rows [a, b) of the image embeddings, float32, L2-normalised."""
        return normalise(self.image_pooled[a:b])

    def readable_items(self) -> list:
        """The dataset's items whose image was read at extraction; none at all is a BadInputError naming the store."""
        readable = [it for it in self.dataset.items if self.valid[it.image]]
        if not readable:
            raise BadInputError(
                f"{self.store.path}: none of the {len(self.dataset.items)} images could be read at extraction"
            )
        return readable


def read_pooled(store: str | os.PathLike, items: str | os.PathLike | None = None) -> Pooled:
    """The pooled embeddings of `store` (opened with `open_store`): images in blocks, captions normalised whole."""
    opened = open_store(store, items)
    fs = opened.store
    return Pooled(fs, opened.dataset, fs.image_pooled, fs.image_valid[:], normalise(fs.text_pooled[:]))


def read_rows(path: str | os.PathLike, name: str, rows) -> np.ndarray:
    """Rows `rows` (any order) of array `name` of the complete store at `path`: what a task that gets only the
    store's path (a dask task on another worker) reads, through the store's own reader."""
    return FeatureStore.open(path).read_rows(name, np.asarray(rows, dtype=np.int64))
