"""Zero-shot classification scored from a feature store's pooled embeddings, never the backbone.

    result = zeroshot("stores/ViT-B-16.openai/domainnet.zarr", ZeroShotConfig(top_k=(1, 5)))

The store must come from a prompt-table manifest (`benchmarks/imagefolder.py`): caption row
`t * n_classes + c` is template t filled with class c, and each item's candidates are the first
template's rows with `correct` = its class. Class embeddings are CLIP's prompt ensemble: the mean
over templates of the L2-normalised pooled text embeddings, renormalised. Logits are the normalised
image embedding dotted with them. An item is top-k correct when its class is among the first k of
the logits sorted in descending order, ties going to the lower class index (as argmax gives them).
Reported: top-k accuracy overall, per domain (tag `domain`, under `subsets`, so `report` shows one
column per domain, with the domain's top-1 per class index) and mean per-class top-1; unreadable
images are skipped and counted. `code`, the fingerprint of the code that computes it (the CLI passes the
workflow stage's), is recorded as given.
Stores are read with `reading.read_pooled`, as retrieval reads them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ...config import at_least, config_hash, require
from ...errors import BadInputError, ConfigError
from ..reading import normalise, read_pooled
from ..items import Dataset


@dataclass(frozen=True)
class ZeroShotConfig:
    top_k: tuple[int, ...] = (1, 5)
    block_rows: int = 4096  # image rows scored at once

    def __post_init__(self):
        require(
            bool(self.top_k) and all(k >= 1 for k in self.top_k),
            "zeroshot",
            f"top_k={self.top_k}: every k must be positive",
        )
        at_least("zeroshot", block_rows=(self.block_rows, 1))


def prompt_table(ds: Dataset) -> tuple[int, int]:
    """(n_classes, n_templates) of a prompt-table manifest; anything else is a BadInputError."""
    n_classes = len(ds.items[0].candidates) if ds.items else 0
    first = tuple(range(n_classes))
    if not n_classes or len(ds.captions) % n_classes or any(it.candidates != first for it in ds.items):
        raise BadInputError(
            f"dataset {ds.name} is not a zero-shot prompt table (items must list caption rows "
            f"0..n_classes-1): write its manifest with `dcsm-cache items imagefolder`"
        )
    return n_classes, len(ds.captions) // n_classes


def class_embeddings(text: np.ndarray, n_classes: int, n_templates: int) -> np.ndarray:
    """[C, D]: per class, the renormalised mean over templates of the normalised prompt embeddings."""
    return normalise(normalise(text).reshape(n_templates, n_classes, -1).mean(axis=0))


def ranks(logits: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """0-based position of each row's correct column in a stable descending sort of the row."""
    own = logits[np.arange(len(correct)), correct][:, None]
    before = np.arange(logits.shape[1])[None, :] < correct[:, None]
    return (logits > own).sum(1) + ((logits == own) & before).sum(1)


def _summary(hits: dict[int, np.ndarray], n_classes: int) -> dict:
    ks = sorted(hits)
    out = {f"top{k}": float(hits[k].mean()) for k in ks}
    return {
        "accuracy": out[f"top{ks[0]}"],
        **out,
        "n_items": int(len(hits[ks[0]])),
        "chance": min(ks[0], n_classes) / n_classes,
    }


def _per_class(hits: dict[int, np.ndarray], correct: np.ndarray, n_classes: int, rows: np.ndarray) -> list | None:
    """Top-1 accuracy per class index among `rows` (None for a class with no image there); None without top-1."""
    if 1 not in hits:
        return None
    return [
        float(hits[1][rows & (correct == c)].mean()) if (rows & (correct == c)).any() else None
        for c in range(n_classes)
    ]


def zeroshot(
    store: str | os.PathLike,
    cfg: ZeroShotConfig = ZeroShotConfig(),
    items: str | None = None,
    code: str | None = None,
) -> dict:
    """Zero-shot top-k accuracy of the store's images against its prompt-ensembled classes."""
    if not cfg.top_k or min(cfg.top_k) < 1 or cfg.block_rows < 1:
        raise ConfigError(f"zeroshot: top_k={cfg.top_k} and block_rows={cfg.block_rows} must be positive")
    data = read_pooled(store, items)
    ds = data.dataset
    n_classes, n_templates = prompt_table(ds)
    classes = class_embeddings(data.text, n_classes, n_templates)
    readable = data.readable_items()
    image = np.array([it.image for it in readable])
    correct = np.array([it.correct for it in readable])
    rank = np.empty(len(readable), dtype=np.int64)
    order = np.argsort(image, kind="stable")
    bounds = np.searchsorted(image[order], np.arange(0, len(data.valid) + cfg.block_rows, cfg.block_rows))
    for lo, hi in zip(bounds, bounds[1:]):
        if lo == hi:
            continue
        idx = order[lo:hi]
        a, b = int(image[idx].min()), int(image[idx].max()) + 1
        logits = data.images(a, b)[image[idx] - a] @ classes.T
        rank[idx] = ranks(logits, correct[idx])
    ks = sorted(set(cfg.top_k))
    hits = {k: rank < k for k in ks}
    domains = np.array([it.tags.get("domain", "") for it in readable])
    subsets = {d: _summary({k: h[domains == d] for k, h in hits.items()}, n_classes) for d in sorted(set(domains)) if d}
    for d, sub in subsets.items():  # per class within the domain (the domain study's held-out classes read it)
        sub["per_class_top1"] = _per_class(hits, correct, n_classes, domains == d)
    per_class = [hits[1][correct == c].mean() for c in range(n_classes) if (correct == c).any()] if 1 in hits else []
    return {
        "dataset": ds.name,
        "backbone": data.store.attrs["backbone"],
        "scorer": "cosine",
        "task": "zeroshot",
        "metric": f"top{ks[0]}",
        **_summary(hits, n_classes),
        "n_skipped": len(ds.items) - len(readable),
        "mean_per_class_top1": float(np.mean(per_class)) if per_class else None,
        "n_classes": n_classes,
        "n_templates": n_templates,
        "subsets": subsets,
        "store_fingerprint": data.store.attrs["fingerprint"],
        "config_hash": config_hash(asdict(cfg) | {"task": "zeroshot"}),
        "code": code,
    }
