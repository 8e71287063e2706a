"""Train only the token embedding's rows a dataset uses: the same weights as training all of them, faster.

    with used_rows(text_tower(model), ids) as rows:    # ids: every caption the training will see
        opt = AdamW([..., rows, ...])                  # in place of token_embedding.weight
        ...train...
    # token_embedding.weight now holds the trained rows

CLIP's token embedding has 49,408 rows; the shapes world's captions use a few dozen. AdamW steps
every row of a parameter each step, though a row no caption looks up has a zero gradient and, with
no weight decay on embeddings, is never changed (its moments stay zero, its update is exactly 0).
Here the looked-up rows are a parameter of their own, gathered from the embedding by a remapped
index, so each step reads and writes those rows only. Forward, backward and the optimizer's arithmetic
per row are the same operations on the same values, so the trained weights are the same bits
(tests/test_pretrain.py trains both ways and compares the checkpoints).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["used_rows"]


class _Rows(nn.Module):
    """An embedding lookup of `rows` ([used ids, D]) by the original ids, through `index` (id -> row)."""

    def __init__(self, full: nn.Embedding, used: torch.Tensor):
        super().__init__()
        self.rows = nn.Parameter(full.weight.detach()[used].clone())
        index = torch.full((full.num_embeddings,), -1, dtype=torch.long, device=full.weight.device)
        index[used] = torch.arange(len(used), device=full.weight.device)
        self.register_buffer("index", index, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.index[ids], self.rows)


@contextlib.contextmanager
def used_rows(tower: nn.Module, ids: torch.Tensor) -> Iterator[nn.Parameter]:
    """Swap `tower.token_embedding` for a lookup of the rows `ids` use, yielded as the parameter to train;
    the trained rows are written back into the embedding's weight, and the embedding put back, on exit."""
    full = tower.token_embedding
    if not isinstance(full, nn.Embedding) or full.padding_idx is not None or full.max_norm is not None:
        yield full.weight  # (not a plain embedding: trained whole)
        return
    used = torch.unique(ids).to(full.weight.device)
    rows = _Rows(full, used)
    full.weight.requires_grad_(False)
    tower.token_embedding = rows
    try:
        yield rows.rows
    finally:
        with torch.no_grad():
            full.weight[used] = rows.rows
        full.weight.requires_grad_(True)
        tower.token_embedding = full
