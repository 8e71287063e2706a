"""Linear CKA between representations of the same images, computed out of core on dask.

    labels, matrix = cka_stores(["stores/a.zarr", "stores/b.zarr"], AnalysisConfig(features="tokens"))
    labels, matrix = cka_domains("stores/domains-cg-high/domains_eval.zarr", AnalysisConfig())

Linear CKA (Kornblith et al. 2019) of X [n, p] and Y [n, q], columns centred:
||Xcᵀ Yc||²_F / (||Xcᵀ Xc||_F ||Ycᵀ Yc||_F). Its feature-space form needs only the p×q cross
products and the column sums, each a sum over row chunks, so a store of any size is read once, a
chunk at a time, and every pair of a matrix shares that one read (`cross_products`). Accumulated in
float64. It is 1 for a representation with itself and unchanged by an orthogonal transform or an
isotropic scaling of either side.

`cka_stores`: several stores of the same images (e.g. one per training mixture), a matrix over
stores, optionally restricted to one domain's images. `cka_domains`: one store, a matrix over its
domains, pairing each image with the same scene drawn in the other domain (the key below the domain
folder; only scenes every domain has). Features are pooled embeddings or patch tokens (each token of
each image a sample, so stores must have the same token grid): what only a token cache gives for free.
"""

from __future__ import annotations

import os
from typing import Sequence

import dask.array as da
import numpy as np

from ...errors import BadInputError
from .arrays import AnalysisConfig, StoreView, compute

__all__ = ["cka_domains", "cka_from_products", "cka_numpy", "cka_stores", "cross_products"]


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two in-memory representations [n, p], [n, q]: the definition, for checking."""
    x = np.asarray(x, np.float64) - np.mean(x, 0, dtype=np.float64)
    y = np.asarray(y, np.float64) - np.mean(y, 0, dtype=np.float64)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def cross_products(views: Sequence[da.Array]) -> tuple[list, dict]:
    """Dask graphs of each view's column sums and the cross product of every pair i ≤ j (float64)."""
    n = {v.shape[0] for v in views}
    if len(n) != 1:
        raise BadInputError(f"CKA needs the same images on every side; got {sorted(n)} rows")
    v64 = [v.astype(np.float64) for v in views]
    sums = [v.sum(axis=0) for v in v64]
    pairs = {(i, j): da.dot(v64[i].T, v64[j]) for i in range(len(v64)) for j in range(i, len(v64))}
    return sums, pairs


def cka_from_products(n: int, sums: list, pairs: dict) -> np.ndarray:
    """The CKA matrix from computed column sums and cross products of n rows."""
    k = len(sums)
    centred = {(i, j): pairs[i, j] - np.outer(sums[i], sums[j]) / n for (i, j) in pairs}
    self_norm = [np.linalg.norm(centred[i, i]) for i in range(k)]
    out = np.eye(k)
    for (i, j), c in centred.items():
        if i != j:
            denom = self_norm[i] * self_norm[j]
            out[i, j] = out[j, i] = np.linalg.norm(c) ** 2 / denom if denom else np.nan
    return out


def _matrix(views: list[da.Array], cfg: AnalysisConfig, scheduler: str | None) -> np.ndarray:
    sums, pairs = cross_products(views)
    keys = list(pairs)
    done = compute([*sums, *pairs.values()], cfg, scheduler)
    return cka_from_products(views[0].shape[0], done[: len(sums)], dict(zip(keys, done[len(sums) :])))


def cka_stores(
    paths: Sequence[str | os.PathLike],
    cfg: AnalysisConfig = AnalysisConfig(),
    domain: str | None = None,
    scheduler: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """(store paths, CKA matrix over them) on the images every store read, of `domain` if given."""
    views = [StoreView.open(p, cfg) for p in paths]
    first = views[0]
    for v in views[1:]:
        if len(v.key) != len(first.key) or list(v.key) != list(first.key):
            raise BadInputError(f"{v.path} and {first.path} hold different images: CKA compares the same images")
        if cfg.features == "tokens" and v.n_tokens != first.n_tokens:
            raise BadInputError(
                f"{v.path} has {v.n_tokens} tokens per image, {first.path} {first.n_tokens}: "
                f"patch-token CKA needs the same grid (use --features pooled)"
            )
    valid = np.logical_and.reduce([v.valid for v in views])
    if domain is not None:
        if domain not in first.domains:
            raise BadInputError(
                f"{first.path} has no domain {domain!r} (domains: {', '.join(first.domains) or 'none'})"
            )
        valid &= first.domain == domain
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        raise BadInputError(f"CKA needs at least 2 images; {len(rows)} selected")
    return [str(p) for p in paths], _matrix([v.features(cfg.features, rows) for v in views], cfg, scheduler)


def cka_domains(
    path: str | os.PathLike, cfg: AnalysisConfig = AnalysisConfig(), scheduler: str | None = None
) -> tuple[list[str], np.ndarray]:
    """(domains, CKA matrix over them) of one store, each image paired with its scene in the other domains."""
    view = StoreView.open(path, cfg)
    domains = view.domains
    if len(domains) < 2:
        raise BadInputError(f"{path} has {len(domains)} domain(s): cross-domain CKA needs a domain layout with 2+")
    by = {d: {view.key[r]: r for r in view.rows(d)} for d in domains}
    common = sorted(set.intersection(*(set(m) for m in by.values())))
    if len(common) < 2:
        raise BadInputError(
            f"{path}: the domains share {len(common)} scene(s) (same path below the domain folder); "
            f"cross-domain CKA pairs the same scenes"
        )
    views = [view.features(cfg.features, np.array([by[d][k] for k in common])) for d in domains]
    return domains, _matrix(views, cfg, scheduler)
