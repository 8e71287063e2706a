"""Cached tensors for training and evaluation: a store plus its manifest, read without the backbone.

    data = CachedDataset.open("stores/shapes-clip/shapes_train.zarr", text_len=24)
    tokens, pooled = data.image_rows(np.array([3, 1, 2]))   # what evaluation reads; training: train/data.py

The store is opened with its manifest the one way there is (`pipeline/reading.py`: `open_store`). The
text side (tokens, lengths, functional columns) is read whole; image tokens are read by rows
(training's reader, `train/data.py`, loads them whole when they fit, else streams whole chunks).
Nothing here imports open_clip:
functional words come from the token ids extraction recorded (store attr `tokenizer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ...stores.feature_store import FeatureStore
from ..items import Dataset
from ..reading import open_store
from .maps import FUNCTIONAL_WORDS, FunctionalWords


def fit_width(x: np.ndarray, width: int, axis: int = 1) -> np.ndarray:
    """Pad with zeros or truncate `x` along `axis` to `width`."""
    n = x.shape[axis]
    if n >= width:
        return np.take(x, range(width), axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, width - n)
    return np.pad(x, pad)


@dataclass
class CachedDataset:
    store: FeatureStore
    dataset: Dataset
    text_tokens: torch.Tensor  # [M, text_len, D] float16
    text_pooled: torch.Tensor  # [M, D] float16
    lengths: torch.Tensor  # [M] long, clipped to text_len
    fr_columns: torch.Tensor  # [M, text_len] long, -1 = ordinary token
    fr_words: tuple[str, ...]

    @classmethod
    def open(
        cls,
        store_path: str | os.PathLike,
        text_len: int | None = None,
        items: str | None = None,
        backbone_id: str | None = None,
        fr_words: tuple[str, ...] = FUNCTIONAL_WORDS,
    ) -> "CachedDataset":
        opened = open_store(store_path, items, backbone_id)
        store, ds = opened.store, opened.dataset
        width = text_len or store.text_tokens.shape[1]
        ids = fit_width(store.text_ids[:], width)
        fw = FunctionalWords.from_table(store.attrs["tokenizer"]["words"], fr_words)
        return cls(
            store,
            ds,
            text_tokens=torch.from_numpy(fit_width(store.text_tokens[:], width)),
            text_pooled=torch.from_numpy(store.text_pooled[:]),
            lengths=torch.from_numpy(np.minimum(store.text_length[:], width).astype(np.int64)),
            fr_columns=torch.from_numpy(fw.columns(ids)),
            fr_words=fw.words,
        )

    @property
    def n_tokens(self) -> int:
        return self.store.image_tokens.shape[1]

    @property
    def valid(self) -> np.ndarray:
        return self.store.image_valid[:]

    def image_rows(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Image tokens and pooled embeddings of `rows`, in the given order (`FeatureStore.read_rows`)."""
        return (
            torch.from_numpy(self.store.read_rows("image/tokens", rows)),
            torch.from_numpy(self.store.read_rows("image/pooled", rows)),
        )

    def score(self, scorer, tok: torch.Tensor, pooled: torch.Tensor, rows: torch.Tensor, device) -> torch.Tensor:
        """`scorer` on images (tokens, pooled) against caption rows [N, K]: [N, K] scores."""
        return scorer(
            tok.to(device),
            pooled.to(device),
            self.text_tokens[rows].to(device),
            self.text_pooled[rows].to(device),
            self.lengths[rows].to(device),
            self.fr_columns[rows].to(device),
        )

    def item_batches(
        self, items: list, batch_size: int
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(positions in `items`, image tokens, image pooled, caption rows [b, K]) per batch.

        Items are grouped by their number of candidates and read in image-row order, so each batch
        touches few chunks.
        """
        by_k: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            by_k.setdefault(len(it.candidates), []).append(i)
        for idx in by_k.values():
            idx.sort(key=lambda i: items[i].image)
            for s in range(0, len(idx), batch_size):
                pos = idx[s : s + batch_size]
                tok, pooled = self.image_rows(np.array([items[i].image for i in pos]))
                yield pos, tok, pooled, torch.tensor([list(items[i].candidates) for i in pos])
