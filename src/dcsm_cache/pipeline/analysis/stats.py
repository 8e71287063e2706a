"""A store's health and value statistics, computed chunk by chunk on dask (never the whole store in memory).

    stats = store_stats("stores/shapes-clip/shapes_binding.zarr", AnalysisConfig(chunk_bytes=8 << 20))

Reported: per float array, NaN and ±inf counts; norms of image patch tokens, of text tokens at
the caption's own positions (below its length) and of the pooled embeddings (min, max, mean, std,
zero-norm count); and the DCSM values — the cosine of every image patch token with every word token
of a candidate caption, separately for the items' correct captions and for the other candidates
(count, mean, std, min, max and a histogram over [-1, 1], of the finite values; the others
counted). The DCSM values are computed per chunk of image rows: each task reads its image tokens
and only the caption rows its items name.
"""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np

from ...config import config_hash
from ..reading import normalise, read_rows
from .arrays import AnalysisConfig, StoreView, compute

__all__ = ["store_stats"]

_FLOAT = ("image/tokens", "image/pooled", "text/tokens", "text/pooled")


def _norm_stats(norms: da.Array, n) -> dict:
    return {
        "min": norms.min(),
        "max": norms.max(),
        "mean": norms.mean(),
        "std": norms.std(),
        "n": n,
        "n_zero": (norms == 0).sum(),
    }


def _accumulate(values: np.ndarray, bins: int) -> dict:
    v = values.astype(np.float64).ravel()
    finite = np.isfinite(v)
    v = v[finite]
    return {
        "n": int(v.size),
        "nonfinite": int((~finite).sum()),
        "sum": float(v.sum()),
        "sumsq": float((v * v).sum()),
        "min": float(v.min()) if v.size else np.inf,
        "max": float(v.max()) if v.size else -np.inf,
        "hist": np.histogram(np.clip(v, -1, 1), bins=bins, range=(-1, 1))[0],
    }


def _dcsm_block(tokens: np.ndarray, lo: int, items: list, path: str, bins: int) -> dict:
    """DCSM value sums for `items` (image row, caption row, correct?) whose image lies in this block of rows."""
    out = {k: _accumulate(np.empty(0), bins) for k in ("correct", "other")}
    if not items:
        return out
    caps = sorted({c for _, c, _ in items})
    text, length = read_rows(path, "text/tokens", caps), read_rows(path, "text/length", caps)
    where = {c: i for i, c in enumerate(caps)}
    text, img = normalise(text), normalise(tokens)
    vals = {"correct": [], "other": []}
    for row, cap, ok in items:
        i = where[cap]
        vals["correct" if ok else "other"].append(img[row - lo] @ text[i, : max(1, int(length[i]))].T)
    return {k: _accumulate(np.concatenate([x.ravel() for x in v]) if v else np.empty(0), bins) for k, v in vals.items()}


def _merge(parts: list[dict]) -> dict:
    n = sum(p["n"] for p in parts)
    mean = sum(p["sum"] for p in parts) / n if n else None
    var = sum(p["sumsq"] for p in parts) / n - mean**2 if n else None
    return {
        "n": n,
        "nonfinite": sum(p["nonfinite"] for p in parts),
        "mean": mean,
        "std": float(np.sqrt(max(var, 0.0))) if n else None,
        "min": min(p["min"] for p in parts) if n else None,
        "max": max(p["max"] for p in parts) if n else None,
        "hist": [int(x) for x in np.sum([p["hist"] for p in parts], axis=0)],
    }


def store_stats(path: str | os.PathLike, cfg: AnalysisConfig = AnalysisConfig(), scheduler: str | None = None) -> dict:
    view = StoreView.open(path, cfg)
    arrays = {name: view.array(name) for name in _FLOAT}
    health = {name: {"nan": da.isnan(a).sum(), "inf": da.isinf(a).sum()} for name, a in arrays.items()}
    valid = da.from_array(view.valid, chunks=arrays["image/tokens"].chunks[0])
    tok = arrays["image/tokens"].astype(np.float32)
    img_norms = da.sqrt((tok * tok).sum(-1))  # [N, P]
    text = arrays["text/tokens"].astype(np.float32)
    text_norms = da.sqrt((text * text).sum(-1))  # [M, L]
    length = view.array("text/length")
    positions = da.arange(text.shape[1], chunks=text.shape[1])[None, :] < length[:, None]
    pooled = arrays["image/pooled"].astype(np.float32)
    n_valid, mask = int(view.valid.sum()), positions.rechunk(text_norms.chunks)
    norms = {
        "image_tokens": _norm_stats(img_norms[valid], n_valid * view.n_tokens),
        "text_tokens": _norm_stats(text_norms[mask], mask.sum()),
        "image_pooled": _norm_stats(da.sqrt((pooled * pooled).sum(-1))[valid], n_valid),
    }
    by_row: dict[int, list] = {}
    for it in view.dataset.items:
        if view.valid[it.image]:
            by_row.setdefault(it.image, []).extend((it.image, c, k == it.correct) for k, c in enumerate(it.candidates))
    blocks, lo = [], 0
    for block, size in zip(arrays["image/tokens"].to_delayed().ravel(), arrays["image/tokens"].chunks[0]):
        items = [t for r in range(lo, lo + size) for t in by_row.get(r, [])]
        blocks.append(dask.delayed(_dcsm_block)(block, lo, items, str(view.path), cfg.bins))
        lo += size
    done = compute([health, norms, blocks], cfg, scheduler)
    health, norms, blocks = done
    dcsm = {k: _merge([b[k] for b in blocks]) for k in ("correct", "other")}

    def plain(d):
        return {k: plain(v) if isinstance(v, dict) else (v.item() if hasattr(v, "item") else v) for k, v in d.items()}

    a = view.store.attrs
    return {
        "store": str(path),
        "dataset": a.get("dataset"),
        "backbone": a.get("backbone"),
        "n_images": int(len(view.valid)),
        "n_valid_images": int(view.valid.sum()),
        "n_captions": int(view.store.text_pooled.shape[0]),
        "nonfinite": plain(health),
        "norms": plain(norms),
        "dcsm": dcsm | {"bins": np.linspace(-1, 1, cfg.bins + 1).round(4).tolist()},
        "config_hash": config_hash({"bins": cfg.bins, "task": "stats"}),
    }
