"""The training loss: each image against every positive of the batch and its own hard negatives.

    loss = batch_loss(scorer, data, batch, TrainConfig(), "cpu", generator, "stores/s/shapes_train.zarr")

Caption side (`contrastive_loss`): image→caption cross-entropy over the B positives and the image's
hard negatives, caption→image over the positives, identical positives of two images masked, plus
`hard_negative_weight` × each positive against its own hard negatives alone. Items with an opposite
image add the image-side term (`pairs.py`); `loss="reference"` is the DCSM reference's recipe alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import BadInputError
from ..dcsm import CachedDataset, DCSMScorer
from .config import TrainConfig
from .pairs import pair_term


def batch_scores(scorer: DCSMScorer, data: CachedDataset, img_tok, img_pooled, pos, negs, device) -> torch.Tensor:
    """[B, B + K-1] scores: image b against every positive, then against its own hard negatives."""
    b = len(pos)
    rows = torch.cat([pos.unsqueeze(0).expand(b, b), negs], dim=1)  # [B, B+K-1] caption rows
    return data.score(scorer, img_tok, img_pooled, rows, device)


def contrastive_loss(scores: torch.Tensor, pos: torch.Tensor, hard_weight: float = 0.0) -> torch.Tensor:
    """Image→caption CE over all positives and the image's hard negatives, caption→image CE over the
    positives, plus `hard_weight` × CE of each positive against its own hard negatives alone (the
    choice every benchmark item asks for)."""
    b = len(pos)
    same = (pos.unsqueeze(0) == pos.unsqueeze(1)) & ~torch.eye(b, dtype=torch.bool, device=pos.device)
    scores = scores.clone()
    scores[:, :b] = scores[:, :b].masked_fill(same.to(scores.device), float("-inf"))
    target = torch.arange(b, device=scores.device)
    loss = (F.cross_entropy(scores, target) + F.cross_entropy(scores[:, :b].T, target)) / 2
    if hard_weight:
        own = torch.cat([scores.diagonal()[:, None], scores[:, b:]], dim=1)  # [B, K]: positive first
        loss = loss + hard_weight * F.cross_entropy(own, torch.zeros(b, dtype=torch.long, device=scores.device))
    return loss


def batch_loss(scorer: DCSMScorer, data: CachedDataset, b, cfg: TrainConfig, device, gen, store) -> torch.Tensor:
    """One store's batch loss: caption-side contrastive plus the image-side term, or the reference's alone."""
    reference = cfg.loss == "reference"
    pairs = pair_term(scorer, data, b, device, reference, gen) if cfg.pair_weight or reference else None
    if reference:
        if pairs is None:
            raise BadInputError(f"{store}: loss=reference needs training items with opposite images")
        return pairs
    scores = batch_scores(scorer, data, b.tok, b.pooled, b.pos, b.negs, device)
    loss = contrastive_loss(scores, b.pos, cfg.hard_negative_weight)
    return loss if pairs is None else loss + cfg.pair_weight * pairs
