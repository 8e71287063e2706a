"""Cached tensors for training and evaluation: a store plus its manifest, read without the backbone.

    data = CachedDataset.open("stores/shapes-clip/shapes_train.zarr", text_len=24)
    for rows in data.shuffled_image_rows(rng, buffer_chunks=64): ...

The text side (tokens, lengths, functional columns) is read whole; image tokens are read a chunk
at a time, in random chunk order, and shuffled within a buffer of chunks, so training never loads
a large store at once and never reads a chunk twice per epoch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import InputNotFoundError
from ..stores.feature_store import FeatureStore
from .dcsm import FUNCTIONAL_WORDS, FunctionalWords
from .items import Dataset, manifest_fingerprint, read_manifest


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
    text_tokens: torch.Tensor   # [M, text_len, D] float16
    text_pooled: torch.Tensor   # [M, D] float16
    lengths: torch.Tensor       # [M] long, clipped to text_len
    fr_columns: torch.Tensor    # [M, text_len] long, -1 = ordinary token
    fr_words: tuple[str, ...]

    @classmethod
    def open(cls, store_path: str | os.PathLike, text_len: int | None = None, items: str | None = None,
             backbone_id: str | None = None, fr_words: tuple[str, ...] = FUNCTIONAL_WORDS) -> "CachedDataset":
        store = FeatureStore.open(store_path, backbone_id=backbone_id)
        manifest = Path(items or store.attrs["manifest"])
        if not manifest.is_file():
            raise InputNotFoundError(f"manifest {manifest} of store {store_path} is missing: pass --items")
        store.check_fingerprint(manifest_fingerprint(manifest))
        ds = read_manifest(manifest)
        width = text_len or store.text_tokens.shape[1]
        ids = fit_width(store.text_ids[:], width)
        fw = FunctionalWords.for_tokenizer(store_tokenizer(store), fr_words)
        return cls(store, ds,
                   text_tokens=torch.from_numpy(fit_width(store.text_tokens[:], width)),
                   text_pooled=torch.from_numpy(store.text_pooled[:]),
                   lengths=torch.from_numpy(np.minimum(store.text_length[:], width).astype(np.int64)),
                   fr_columns=torch.from_numpy(fw.columns(ids)),
                   fr_words=fw.words)

    @property
    def n_tokens(self) -> int:
        return self.store.image_tokens.shape[1]

    @property
    def valid(self) -> np.ndarray:
        return self.store.image_valid[:]

    def image_rows(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Image tokens and pooled embeddings of `rows` (sorted reads, returned in the given order)."""
        order = np.argsort(rows)
        sorted_rows = rows[order]
        tok = self.store.image_tokens.get_orthogonal_selection((sorted_rows, slice(None), slice(None)))
        pooled = self.store.image_pooled.get_orthogonal_selection((sorted_rows, slice(None)))
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return torch.from_numpy(tok[back]), torch.from_numpy(pooled[back])

    def item_batches(self, items: list, batch_size: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
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
                pos = idx[s:s + batch_size]
                tok, pooled = self.image_rows(np.array([items[i].image for i in pos]))
                yield pos, tok, pooled, torch.tensor([list(items[i].candidates) for i in pos])

    def chunk_buffers(self, rng: np.random.Generator, buffer_chunks: int) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """One epoch: (image rows, tokens, pooled) for random groups of whole chunks."""
        arr = self.store.image_tokens
        chunk, n = arr.chunks[0], arr.shape[0]
        order = rng.permutation(-(-n // chunk))
        for i in range(0, len(order), buffer_chunks):
            spans = [(c * chunk, min(n, (c + 1) * chunk)) for c in sorted(order[i:i + buffer_chunks])]
            rows = np.concatenate([np.arange(a, b) for a, b in spans])
            tok = np.concatenate([arr[a:b] for a, b in spans])
            pooled = np.concatenate([self.store.image_pooled[a:b] for a, b in spans])
            yield rows, torch.from_numpy(tok), torch.from_numpy(pooled)


def store_tokenizer(store: FeatureStore):
    from .._compat import open_clip
    from .backbones import parse_backbone
    spec = parse_backbone(store.attrs["backbone"])
    return open_clip.get_tokenizer(spec.hub or spec.arch)
