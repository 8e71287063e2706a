"""A feature store's arrays as dask arrays: out of core, in the store's own chunks (or smaller, to a byte budget).

    view = StoreView.open("stores/domains-cg-high/domains_eval.zarr", AnalysisConfig(chunk_bytes=1 << 20))
    x = view.features("tokens", view.rows("sketch"))       # dask [rows × P, D]: patch tokens as samples
    (total,) = compute([x.sum()], view.cfg)                 # a progress bar; `scheduler=` a dask.distributed address

The store and its manifest are opened as everything that reads a store opens them
(`pipeline/reading.py`). Arrays are read with `dask.array.from_zarr` from the store's path (so
dask.distributed workers open the store themselves), one dask chunk per stored chunk of rows, or,
where a stored chunk is larger than `chunk_bytes`, a row slice of it that fits (zarr reads the part;
nothing is copied). A row of the manifest's items gives each image its domain (item tag `domain`,
"" if none), its class (the image's folder name) and a key that pairs it with the same scene drawn
in another domain (its path below the domain folder). Nothing here loads a whole array into memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from ...config import at_least, one_of
from ...errors import DcsmCacheError
from ...stores.feature_store import FeatureStore
from ..items import Dataset
from ..reading import open_store

__all__ = ["AnalysisConfig", "StoreView", "compute"]

FEATURES = ("pooled", "tokens")


@dataclass(frozen=True)
class AnalysisConfig:
    features: str = "pooled"  # pooled embeddings, or patch tokens (each token a sample)
    chunk_bytes: int = 64 << 20  # the most bytes of one dask chunk; stored chunks above it are read in parts
    max_points: int = 5000  # UMAP: points drawn (seeded) when there are more
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    bins: int = 40  # stats: histogram bins of DCSM values over [-1, 1]
    progress: bool = True

    def __post_init__(self):
        one_of("analyze", "features", self.features, FEATURES)
        at_least("analyze", chunk_bytes=(self.chunk_bytes, 1), max_points=(self.max_points, 2))
        at_least("analyze", n_neighbors=(self.n_neighbors, 2), bins=(self.bins, 1))


def compute(objs: list, cfg: AnalysisConfig, scheduler: str | None = None) -> list:
    """Compute dask collections together: on the dask.distributed scheduler at `scheduler`, or on threads here."""
    if scheduler:
        try:
            from distributed import Client, progress
        except ImportError:
            raise DcsmCacheError(
                "--scheduler needs dask.distributed: pip install distributed (or leave --scheduler out)"
            ) from None
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise DcsmCacheError(
                f"no dask scheduler at {scheduler} ({err}): start one, or leave --scheduler out"
            ) from None
        with client:
            futures = client.compute(objs)
            if cfg.progress:
                progress(futures)
            return client.gather(futures)
    if cfg.progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0):
            return list(dask.compute(*objs, scheduler="threads"))
    return list(dask.compute(*objs, scheduler="threads"))


@dataclass
class StoreView:
    path: Path
    store: FeatureStore
    dataset: Dataset
    cfg: AnalysisConfig
    domain: np.ndarray  # [N] str per image row
    label: np.ndarray  # [N] str per image row: the class (the image's folder name)
    key: np.ndarray  # [N] str per image row: its path below the domain folder
    valid: np.ndarray  # [N] bool

    @classmethod
    def open(cls, path: str | os.PathLike, cfg: AnalysisConfig = AnalysisConfig()) -> "StoreView":
        opened = open_store(path)
        path, store, ds = opened.path, opened.store, opened.dataset
        n = store.image_pooled.shape[0]
        domain, label, key = (np.full(n, "", dtype=object) for _ in range(3))
        for it in ds.items:
            parts = Path(ds.images[it.image].path).parts
            d = it.tags.get("domain", "")
            domain[it.image] = d
            label[it.image] = parts[-2] if len(parts) > 1 else it.subset
            key[it.image] = "/".join(parts[1:] if d and parts and parts[0] == d else parts)
        return cls(path, store, ds, cfg, domain, label, key, store.image_valid[:])

    @property
    def domains(self) -> list[str]:
        return sorted({d for d, v in zip(self.domain, self.valid) if v})

    def rows(self, domain: str | None = None) -> np.ndarray:
        """Sorted image rows that were read at extraction, of `domain` if given."""
        keep = self.valid & ((self.domain == domain) if domain is not None else True)
        return np.flatnonzero(keep)

    def array(self, name: str) -> da.Array:
        """The store's array `name` ('image/pooled', 'image/tokens', ...) as dask, chunks within the byte budget."""
        arr = self.store[name]
        row_bytes = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
        rows = max(1, min(arr.chunks[0], self.cfg.chunk_bytes // max(1, row_bytes)))
        return da.from_zarr(str(self.path), component=name, chunks=(rows, *arr.shape[1:]))

    def features(self, kind: str, rows: np.ndarray) -> da.Array:
        """[len(rows), D] pooled embeddings, or [len(rows) × P, D] patch tokens, float32, of image `rows`."""
        one_of("analyze", "features", kind, FEATURES)
        if kind == "pooled":
            return self.array("image/pooled")[rows].astype(np.float32)
        tok = self.array("image/tokens")[rows]
        return tok.reshape(tok.shape[0] * tok.shape[1], tok.shape[2]).astype(np.float32)

    @property
    def n_tokens(self) -> int:
        return self.store.image_tokens.shape[1]
