"""Training batches from a feature store at cache speed: the image tokens in memory when they fit, else whole
chunks streamed a buffer at a time; each batch assembled by array indexing, on the training device.

    batches = TrainBatches(data, train_items, batch=16, buffer_chunks=64, reader="auto", device=device)
    for b in batches.epoch(rng):   # b.tok [B, P, D], b.pooled [B, D], b.pos [B], b.negs [B, K-1]
        scores = batch_scores(scorer, data, b.tok, b.pooled, b.pos, b.negs, device)

`reader="load"` reads the store's image tokens once (and moves them to the device); `"stream"` reads
random groups of `buffer_chunks` whole chunks per epoch;
`"auto"` loads when the tokens take at most a quarter of the free memory (host, and the GPU's when
training there). Either way an epoch draws the same random numbers in the same order (the chunk
order, then one permutation of each buffer's items), so the batches are the same, seed for seed,
as the training loop always took them. The text side (`CachedDataset`'s tokens, pooled
embeddings, lengths, functional columns) is moved to the device once. Per item, Python runs only
when the batches are set up: a step is a few tensor gathers. Where every training item has an
opposite image (`Item.opposite`), a batch also holds the opposites' tokens (`opp_tok`, `opp_pooled`;
streamed, an opposite outside the buffer is read with `FeatureStore.read_rows`) and each item's
group (source or family, and caption version) for the reference recipe (`pairs.py`). A store with K
cached views (`extract --set views=K`) gives each image, and each opposite, one of its K views per
step, drawn from (seed, step) by `draw_views` (below) (the epoch's random numbers are untouched, so the
data order is the one-view order, and a resumed run draws what the uninterrupted one drew).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ...config import one_of
from ..dcsm import CachedDataset

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


@dataclass
class Batch:
    tok: torch.Tensor  # [B, P, D] image tokens
    pooled: torch.Tensor  # [B, D]
    pos: torch.Tensor  # [B] positive caption rows
    negs: torch.Tensor  # [B, K-1] hard negative rows; the first describes the opposite image, if any
    opp_tok: torch.Tensor | None = None  # [B, P, D] the opposite images'
    opp_pooled: torch.Tensor | None = None
    group: torch.Tensor | None = None  # [B] source/family and caption version, as an integer
    items: np.ndarray | None = None  # [B] the items' indices in the manifest


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
        views: bool = True,
        seed: int = 0,
    ):
        one_of("train", "reader", reader, READERS)
        self.data, self.batch, self.buffer_chunks, self.seed = data, batch, buffer_chunks, seed
        self.views = data.store.views if views else 1  # K: views drawn from per image (1: image/tokens only)
        self.device = torch.device(device)
        # Items by (image row, item index): the order in which the loop always pooled a buffer's items.
        ids = np.array([i for r in sorted(by_image) for i in sorted(by_image[r])], dtype=np.int64)
        items = data.dataset.items
        self.image = np.array([items[i].image for i in ids], dtype=np.int64)
        self.ids = ids
        pos = [it.candidates[it.correct] for it in (items[i] for i in ids)]
        negs = [[c for j, c in enumerate(it.candidates) if j != it.correct] for it in (items[i] for i in ids)]
        opp = [items[i].opposite for i in ids]
        self.opp = np.array([-1 if o is None else o for o in opp], dtype=np.int64)
        self.pairs = len(ids) > 0 and bool((self.opp >= 0).all())
        tags = [items[i].tags for i in ids]
        kinds = [(t.get("source", t.get("family", "")), t.get("version", "")) for t in tags]
        codes = {k: n for n, k in enumerate(sorted(set(kinds)))}
        self.group = torch.tensor([codes[k] for k in kinds], dtype=torch.long)
        self.pos = torch.tensor(pos, dtype=torch.long, device=self.device)
        self.negs = torch.tensor(negs, dtype=torch.long, device=self.device).reshape(len(ids), -1)
        arr = data.store.image_tokens
        self.chunk, self.n = arr.chunks[0], arr.shape[0]
        self.names = ("image/tokens", "image/pooled")  # then the cached views, where they are drawn
        self.names += ("image/views", "image/views_pooled") if self.views > 1 else ()
        need = sum(data.store[name].nbytes for name in self.names)
        self.loaded = reader == "load" or (reader == "auto" and need <= free_memory(self.device) // 4)
        if self.loaded:
            self.arrays = [torch.from_numpy(data.store[name][:]).to(self.device) for name in self.names]

    def epoch(self, rng: np.random.Generator, step: int = 0) -> Iterator[Batch]:
        """Every batch of one epoch (see `Batch`), the first at training step `step` (which views it draws)."""
        chunk, n = self.chunk, self.n
        order = rng.permutation(-(-n // chunk))
        for i in range(0, len(order), self.buffer_chunks):
            spans = [(c * chunk, min(n, (c + 1) * chunk)) for c in sorted(order[i : i + self.buffer_chunks])]
            rows = np.concatenate([np.arange(a, b) for a, b in spans])
            pool = rng.permutation(np.flatnonzero(np.isin(self.image, rows)))
            if self.loaded:
                buffer, local = self.arrays, self.image
            else:
                buffer = [
                    torch.from_numpy(np.concatenate([self.data.store[name][a:b] for a, b in spans])).to(self.device)
                    for name in self.names
                ]
                local = np.searchsorted(rows, self.image)  # rows ascend: an item's image's place in the buffer
            for s in range(0, len(pool) - self.batch + 1, self.batch):
                chosen = pool[s : s + self.batch]
                view = draw_views(self.seed, step, 2 * len(chosen), self.views) if self.views > 1 else None
                tok, pooled = self._gather(buffer, local[chosen], None if view is None else view[: len(chosen)])
                sel = torch.from_numpy(chosen).to(self.device)
                b = Batch(tok, pooled, self.pos[sel], self.negs[sel], items=self.ids[chosen])
                if self.pairs:
                    b.opp_tok, b.opp_pooled = self._opposites(
                        self.opp[chosen], buffer, rows, None if view is None else view[len(chosen) :]
                    )
                    b.group = self.group[chosen]
                step += 1
                yield b

    def _gather(self, arrays, at: np.ndarray, view: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and pooled embeddings of rows `at` of `arrays` (this reader's `names`), view `view[i]` of row i."""
        idx = torch.from_numpy(at).to(self.device)
        tok, pooled = arrays[0][idx], arrays[1][idx]
        if view is not None and (view > 0).any():
            aug = np.flatnonzero(view > 0)
            i = torch.from_numpy(at[aug]).to(self.device)
            v = torch.from_numpy(view[aug] - 1).to(self.device)
            j = torch.from_numpy(aug).to(self.device)
            tok[j], pooled[j] = arrays[2][i, v], arrays[3][i, v]
        return tok, pooled

    def _opposites(self, opp: np.ndarray, buffer, rows, view) -> tuple[torch.Tensor, torch.Tensor]:
        """The opposite images' tokens: from memory, the buffer, or (outside the buffer) the store."""
        if self.loaded:
            return self._gather(buffer, opp, view)
        where = np.minimum(np.searchsorted(rows, opp), len(rows) - 1)
        if (rows[where] == opp).all():
            return self._gather(buffer, where, view)
        read = [torch.from_numpy(self.data.store.read_rows(name, opp)).to(self.device) for name in self.names]
        return self._gather(read, np.arange(len(opp)), view)


def draw_views(seed: int, step: int, n: int, views: int) -> np.ndarray:
    """[n] views in 0..views-1, one per image of the batch at `step` of a run with training seed `seed`."""
    return np.random.default_rng([seed, step, 0x5EED]).integers(0, views, size=n)
