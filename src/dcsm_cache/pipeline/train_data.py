"""Training batches from a feature store at cache speed: the image tokens in memory when they fit, else whole
chunks streamed a buffer at a time; each batch assembled by array indexing, on the training device.

    batches = TrainBatches(data, train_items, batch=16, buffer_chunks=64, reader="auto", device=device)
    for img_tok, img_pooled, pos, negs in batches.epoch(rng):   # [B, P, D], [B, D], [B], [B, K-1]
        scores = batch_scores(scorer, data, img_tok, img_pooled, pos, negs, device)

`reader="load"` reads the store's image tokens once (and moves them to the device); `"stream"` reads
random groups of `buffer_chunks` whole chunks per epoch, as `CachedDataset.chunk_buffers` does;
`"auto"` loads when the tokens take at most a quarter of the free memory (host, and the GPU's when
training there). Either way an epoch draws the same random numbers in the same order (the chunk
order, then one permutation of each buffer's items), so the batches are the same, seed for seed,
as the loop in train.py always took them. The text side (`CachedDataset`'s tokens, pooled
embeddings, lengths, functional columns) is moved to the device once. Per item, Python runs only
when the batches are set up: a step is a few tensor gathers.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np
import torch

from ..config import one_of
from .cache import CachedDataset

READERS = ("auto", "load", "stream")


def free_memory(device: torch.device) -> int:
    """Bytes free for holding the tokens: the host's available memory, and the GPU's when training there."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not on this OS: assume there is no room
        free = 0
    if device.type == "cuda":
        free = min(free, torch.cuda.mem_get_info(device)[0])
    return free


def on_device(data: CachedDataset, device: torch.device) -> CachedDataset:
    """`data` with its text-side tensors on `device` (the store and manifest unchanged)."""
    if device.type == "cpu":
        return data
    return dataclasses.replace(
        data,
        text_tokens=data.text_tokens.to(device),
        text_pooled=data.text_pooled.to(device),
        lengths=data.lengths.to(device),
        fr_columns=data.fr_columns.to(device),
    )


class TrainBatches:
    """The batches of every epoch of training on `by_image` (image row -> item indices)."""

    def __init__(
        self,
        data: CachedDataset,
        by_image: dict[int, list[int]],
        batch: int,
        buffer_chunks: int,
        reader: str = "auto",
        device: torch.device | str = "cpu",
    ):
        one_of("train", "reader", reader, READERS)
        self.data, self.batch, self.buffer_chunks = data, batch, buffer_chunks
        self.device = torch.device(device)
        # Items by (image row, item index): the order in which the loop always pooled a buffer's items.
        ids = np.array([i for r in sorted(by_image) for i in sorted(by_image[r])], dtype=np.int64)
        items = data.dataset.items
        self.image = np.array([items[i].image for i in ids], dtype=np.int64)
        self.ids = ids
        pos = [it.candidates[it.correct] for it in (items[i] for i in ids)]
        negs = [[c for j, c in enumerate(it.candidates) if j != it.correct] for it in (items[i] for i in ids)]
        self.pos = torch.tensor(pos, dtype=torch.long, device=self.device)
        self.negs = torch.tensor(negs, dtype=torch.long, device=self.device).reshape(len(ids), -1)
        arr = data.store.image_tokens
        self.chunk, self.n = arr.chunks[0], arr.shape[0]
        need = arr.nbytes + data.store.image_pooled.nbytes
        self.loaded = reader == "load" or (reader == "auto" and need <= free_memory(self.device) // 4)
        if self.loaded:
            self.tokens = torch.from_numpy(arr[:]).to(self.device)
            self.pooled = torch.from_numpy(data.store.image_pooled[:]).to(self.device)

    def epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """(image tokens [B, P, D], pooled [B, D], positive caption rows [B], hard negatives [B, K-1])."""
        chunk, n = self.chunk, self.n
        order = rng.permutation(-(-n // chunk))
        for i in range(0, len(order), self.buffer_chunks):
            spans = [(c * chunk, min(n, (c + 1) * chunk)) for c in sorted(order[i : i + self.buffer_chunks])]
            rows = np.concatenate([np.arange(a, b) for a, b in spans])
            pool = rng.permutation(np.flatnonzero(np.isin(self.image, rows)))
            if self.loaded:
                tok, pooled, local = self.tokens, self.pooled, self.image
            else:
                arr, pooled_arr = self.data.store.image_tokens, self.data.store.image_pooled
                tok = torch.from_numpy(np.concatenate([arr[a:b] for a, b in spans])).to(self.device)
                pooled = torch.from_numpy(np.concatenate([pooled_arr[a:b] for a, b in spans])).to(self.device)
                local = np.searchsorted(rows, self.image)  # rows ascend: an item's image's place in the buffer
            for s in range(0, len(pool) - self.batch + 1, self.batch):
                chosen = pool[s : s + self.batch]
                at = torch.from_numpy(local[chosen]).to(self.device)
                sel = torch.from_numpy(chosen).to(self.device)
                yield tok[at], pooled[at], self.pos[sel], self.negs[sel]
