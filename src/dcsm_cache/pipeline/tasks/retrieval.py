"""Image-text retrieval (R@1/5/10 both ways) scored from a feature store's pooled embeddings.

    result = retrieval("stores/ViT-B-16.openai/karpathy_coco.zarr", RetrievalConfig(ks=(1, 5, 10)))

The manifest is one item per image whose candidates are all its captions (`benchmarks/karpathy.py`).
Every (item, candidate) pair is one text, so a sentence that two images share, stored once, is
still two texts, each with its own image: the standard Karpathy 5k/1k protocol. Images whose file
could not be read are skipped with their texts. Scores are cosines of the pooled embeddings.

- image -> text: an image is correct at k when any of its texts is among the first k of all texts;
- text -> image: a text is correct at k when its image is among the first k of all images;
ranking by descending cosine, ties going to the earlier text or image (a stable sort). Reported:
recall at each k, median and mean rank (1-based), the chance recall of a random ranking, and
`subsets` with one entry per direction and k, so that `report` shows them as columns; the headline
`accuracy` is the mean of all recalls (RSUM / number of recalls). `code`, the fingerprint of the code
that computes it (the CLI passes the workflow stage's), is recorded as given.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ...config import at_least, config_hash, require
from ...errors import ConfigError
from ..reading import read_pooled

DIRECTIONS = ("image_to_text", "text_to_image")


@dataclass(frozen=True)
class RetrievalConfig:
    ks: tuple[int, ...] = (1, 5, 10)
    block_rows: int = 512  # queries scored at once

    def __post_init__(self):
        require(bool(self.ks) and all(k >= 1 for k in self.ks), "retrieval", f"ks={self.ks}: every k must be positive")
        at_least("retrieval", block_rows=(self.block_rows, 1))


def _first(mask: np.ndarray) -> np.ndarray:
    return mask.argmax(axis=1)


def image_to_text_ranks(
    img: np.ndarray, txt: np.ndarray, text_of: np.ndarray, owner: np.ndarray, block: int
) -> np.ndarray:
    """0-based rank of each image's best text; text j is row text_of[j] of `txt`, of image owner[j]."""
    out = np.empty(len(img), dtype=np.int64)
    cols = np.arange(len(text_of))
    for a in range(0, len(img), block):
        s = (img[a : a + block] @ txt.T)[:, text_of]  # a shared sentence gets bit-identical scores
        pos = owner[None, :] == np.arange(a, a + len(s))[:, None]
        best = np.where(pos, s, -np.inf).max(axis=1, keepdims=True)
        first = _first(pos & (s == best))[:, None]  # the earliest of the best-scoring own texts
        out[a : a + len(s)] = (s > best).sum(1) + ((s == best) & (cols[None, :] < first)).sum(1)
    return out


def text_to_image_ranks(
    img: np.ndarray, txt: np.ndarray, text_of: np.ndarray, owner: np.ndarray, block: int
) -> np.ndarray:
    """0-based rank of each text's own image among all images."""
    out = np.empty(len(text_of), dtype=np.int64)
    cols = np.arange(len(img))
    for a in range(0, len(text_of), block):
        s = txt[text_of[a : a + block]] @ img.T
        gt = owner[a : a + len(s)]
        own = s[np.arange(len(s)), gt][:, None]
        out[a : a + len(s)] = (s > own).sum(1) + ((s == own) & (cols[None, :] < gt[:, None])).sum(1)
    return out


def _chance_any(n: int, m: np.ndarray, k: int) -> float:
    """Mean over queries of P(any of m positives in the top k of n) under a random ranking."""
    miss = np.ones(len(m))
    for j in range(min(k, n)):
        miss *= np.clip((n - m - j) / (n - j), 0, None)
    return float(np.mean(1 - miss))


def _direction(rank: np.ndarray, ks, chance) -> dict:
    return {
        **{f"R@{k}": float((rank < k).mean()) for k in ks},
        "median_rank": float(np.median(rank) + 1),
        "mean_rank": float(rank.mean() + 1),
        "chance": {f"R@{k}": chance(k) for k in ks},
        "n_queries": int(len(rank)),
    }


def retrieval(
    store: str | os.PathLike,
    cfg: RetrievalConfig = RetrievalConfig(),
    items: str | None = None,
    code: str | None = None,
) -> dict:
    """Recall@k for image->text and text->image over the store's images and captions."""
    if not cfg.ks or min(cfg.ks) < 1 or cfg.block_rows < 1:
        raise ConfigError(f"retrieval: ks={cfg.ks} and block_rows={cfg.block_rows} must be positive")
    data = read_pooled(store, items)
    ds = data.dataset
    readable = data.readable_items()
    rows = np.array(sorted({it.image for it in readable}))
    gallery = {int(r): i for i, r in enumerate(rows)}
    text_rows = np.array([c for it in readable for c in it.candidates])
    owner = np.array([gallery[it.image] for it in readable for _ in it.candidates])
    img = data.images(int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]]
    unique, text_of = np.unique(text_rows, return_inverse=True)
    txt = data.text[unique]
    ks = sorted(set(cfg.ks))
    n_pos = np.bincount(owner, minlength=len(rows))
    result = {
        "image_to_text": _direction(
            image_to_text_ranks(img, txt, text_of, owner, cfg.block_rows),
            ks,
            lambda k: _chance_any(len(text_rows), n_pos, k),
        ),
        "text_to_image": _direction(
            text_to_image_ranks(img, txt, text_of, owner, cfg.block_rows), ks, lambda k: min(k, len(rows)) / len(rows)
        ),
    }
    subsets = {
        f"{d}_R@{k}": {
            "accuracy": result[d][f"R@{k}"],
            "chance": result[d]["chance"][f"R@{k}"],
            "n_items": result[d]["n_queries"],
        }
        for d in DIRECTIONS
        for k in ks
    }
    return {
        "dataset": ds.name,
        "backbone": data.store.attrs["backbone"],
        "scorer": "cosine",
        "task": "retrieval",
        "metric": "recall@k",
        "accuracy": float(np.mean([v["accuracy"] for v in subsets.values()])),
        "chance": float(np.mean([v["chance"] for v in subsets.values()])),
        "n_items": len(readable),
        "n_skipped": len(ds.items) - len(readable),
        "n_images": int(len(rows)),
        "n_texts": int(len(text_rows)),
        **result,
        "subsets": subsets,
        "store_fingerprint": data.store.attrs["fingerprint"],
        "config_hash": config_hash(asdict(cfg) | {"task": "retrieval"}),
        "code": code,
    }
