"""UMAP of a store's embeddings, coloured by domain and by class, as a PNG (Kempf et al.'s Figure 5 from the cache).

    points = umap_points("stores/domains-cg-high/domains_eval.zarr", AnalysisConfig(features="tokens"))
    plot_umap(points, "results/domains/domains/umap-cg-high-tokens.png")

Pooled embeddings are one point per image; patch tokens one point per token (labelled by its
image). Where there are more than `max_points`, a seeded sample of rows is read (dask, chunk by
chunk); the points are L2-normalised and embedded with umap-learn on cosine distance, with each point's
exact nearest neighbours computed here (`cosine_neighbours`) and handed to it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ...atomic import atomic_path
from ...errors import BadInputError
from ..reading import normalise
from .arrays import AnalysisConfig, StoreView, compute

__all__ = ["Points", "cosine_neighbours", "plot_umap", "umap_points"]


@dataclass
class Points:
    xy: np.ndarray  # [n, 2]
    domain: np.ndarray  # [n] str
    label: np.ndarray  # [n] str
    title: str


def umap_points(
    path: str | os.PathLike, cfg: AnalysisConfig = AnalysisConfig(), scheduler: str | None = None
) -> Points:
    import umap

    view = StoreView.open(path, cfg)
    rows = view.rows()
    per = 1 if cfg.features == "pooled" else view.n_tokens
    n = len(rows) * per
    if n < 3:
        raise BadInputError(f"{path}: {n} points; UMAP needs at least 3")
    pick = np.arange(n)
    if n > cfg.max_points:
        pick = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.max_points, replace=False))
    (x,) = compute([view.features(cfg.features, rows)[pick]], cfg, scheduler)
    x = normalise(x)
    image = rows[pick // per]
    k = min(cfg.n_neighbors, len(x) - 1)
    reducer = umap.UMAP(
        n_neighbors=k,
        min_dist=cfg.min_dist,
        metric="cosine",
        random_state=cfg.seed,
        n_jobs=1,
        precomputed_knn=cosine_neighbours(x, k),
    )
    with warnings.catch_warnings():  # no search index: only `transform` of new points would need one
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        xy = reducer.fit_transform(x)
    what = "pooled embeddings" if cfg.features == "pooled" else f"patch tokens ({per} per image)"
    return Points(xy, view.domain[image], view.label[image], f"{path}: {len(x)} {what}")


def cosine_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's `k` nearest rows by cosine distance, itself first: indices [n, k] and distances.

    What umap-learn computes for fewer than 4,096 points (every pairwise distance, then a stable sort of
    each row), exact at any size up to `max_points` (a 5,000² matrix is 100 MB), and without the
    numba-compiled search it would build first (about 5 s of each process's start here)."""
    d = 1.0 - x @ x.T
    np.clip(d, 0.0, 2.0, out=d)
    np.fill_diagonal(d, 0.0)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx.astype(np.int32), np.take_along_axis(d, idx, axis=1).astype(np.float32)


def plot_umap(points: Points, out: str | os.PathLike) -> None:
    """Two panels, coloured by domain and by class, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (what, values) in zip(axes, (("domain", points.domain), ("class", points.label))):
        names = sorted(set(values))
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names):
            m = values == name
            ax.scatter(points.xy[m, 0], points.xy[m, 1], s=4, color=cmap(i % cmap.N), label=name or "(none)")
        ax.set_title(f"by {what}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=3, loc="best", frameon=False)
    fig.suptitle(points.title, fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
