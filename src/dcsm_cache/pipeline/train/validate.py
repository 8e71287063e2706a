"""Validation during training: the share of held-out items whose positive outscores its own candidates.

    accuracy = validate(scorer, data, val_items, device)   # val_items: image row -> item indices

The loop scores the val items of every store together every `eval_every` steps and at the end
(`validate_all`), in batches of 256 items, without dropout.
"""

from __future__ import annotations

import torch

from ..dcsm import CachedDataset, DCSMScorer


@torch.no_grad()
def _correct(scorer: DCSMScorer, data: CachedDataset, val_items: dict[int, list[int]], device) -> tuple[int, int]:
    """(val items whose positive outscores all of its own candidates, val items)."""
    scorer.eval()
    items = [data.dataset.items[i] for v in val_items.values() for i in v]
    correct = 0
    for pos, tok, pooled, rows in data.item_batches(items, 256):
        scores = data.score(scorer, tok, pooled, rows, device)
        correct += sum(int(scores[j].argmax()) == items[i].correct for j, i in enumerate(pos))
    return correct, len(items)


def validate(scorer: DCSMScorer, data: CachedDataset, val_items: dict[int, list[int]], device) -> float:
    """Fraction of val items whose positive outscores all of its own candidates."""
    correct, n = _correct(scorer, data, val_items, device)
    return correct / max(1, n)


def validate_all(scorer: DCSMScorer, val_sets: list[tuple], device) -> float:
    """`validate` over the val items of every store together."""
    counts = [_correct(scorer, d, v, device) for d, v in val_sets]
    return sum(c for c, _ in counts) / max(1, sum(n for _, n in counts))
