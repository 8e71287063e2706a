"""Cached tensors for training and evaluation: a store plus its manifest, read without the backbone.

    data = CachedDataset.open("stores/shapes-clip/shapes_train.zarr", text_len=24)
    tokens, pooled = data.image_rows(np.array([3, 1, 2]))   # what evaluation reads; training: train/data.py
    pooled = read_pooled("stores/ViT-B-16.openai/karpathy_coco.zarr")   # what cosine-only tasks read

The text side (tokens, lengths, functional columns) is read whole; image tokens are read by rows
(training's reader, `train/data.py`, loads them whole when they fit, else streams whole chunks).
Nothing here imports open_clip:
functional words come from the token ids extraction recorded (store attr `tokenizer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import zarr

from ...errors import InputNotFoundError
from ...stores.feature_store import FeatureStore
from ..items import Dataset, manifest_fingerprint, read_manifest
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
        store, ds = open_with_manifest(store_path, items, backbone_id)
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


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def read_pooled(store: str | os.PathLike, items: str | os.PathLike | None = None) -> Pooled:
    """Open `store` (complete, and extracted from this version of its manifest) with its manifest."""
    fs, ds = open_with_manifest(store, items)
    return Pooled(fs, ds, fs.image_pooled, fs.image_valid[:], normalise(fs.text_pooled[:]))


def open_with_manifest(
    store_path: str | os.PathLike, items: str | os.PathLike | None = None, backbone_id: str | None = None
) -> tuple[FeatureStore, Dataset]:
    """A complete store and the manifest it was extracted from (`items`, or the one it records),
    checked to be that version of the dataset: a changed dataset is never scored against a stale cache."""
    store = FeatureStore.open(store_path, backbone_id=backbone_id)
    manifest = Path(items or store.attrs["manifest"])
    if not manifest.is_file():
        raise InputNotFoundError(f"manifest {manifest} of store {store_path} is missing: pass --items")
    store.check_fingerprint(manifest_fingerprint(manifest))
    return store, read_manifest(manifest)
