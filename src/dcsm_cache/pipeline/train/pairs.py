"""Image-side hard negatives: each image with its opposite image, against both their captions.

    scores = paired_scores(scorer, data, images, opposites, captions, opposite_captions, device)  # [2B, 2B]
    loss = reference_loss(scores, generator)          # paper_compat: the DCSM reference's recipe
    loss = block_loss(block_scores(scorer, data, images, opposites, captions, opposite_captions, device))

A training item with an `opposite` image (the shapes world's training items, the paper's training
sets: `benchmarks/dcsm_train.py`) gives two images and two captions that differ only in what the
benchmark probes (attributes swapped, relation flipped, the negated object present). A batch of B
such items is a 2B × 2B score matrix: rows [images; opposite images], columns [captions; opposite
captions], the diagonal the true pairs. Each image must pick its caption over its opposite caption
and every other caption, and each caption its image over the opposite image (the column direction),
which caption-side negatives alone never ask. Training's default adds only each item's 2 x 2 block
(`block_loss`: 4 maps an item; the batch's other captions are already the caption-side loss's), a
fifth of the full map's cost at B = 16.

The reference (docs/benchmarks.md §4, "Batch construction and loss") standardises the matrix,
permutes both axes at random and sums the row and column cross-entropies with identity targets, per
source and caption version; `reference_step` sums those over the sources and versions and divides
by 3, as it does before one Adam step.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from ..dcsm import CachedDataset

__all__ = [
    "block_loss",
    "block_scores",
    "pair_term",
    "paired_scores",
    "reference_loss",
    "reference_step",
]

Tensor = torch.Tensor


def paired_scores(
    scorer,
    data: CachedDataset,
    images: tuple[Tensor, Tensor],
    opposites: tuple[Tensor, Tensor],
    captions: Tensor,
    opposite_captions: Tensor,
    device,
) -> Tensor:
    """[2B, 2B] scores of [images; opposites] (each a (tokens, pooled) pair) against [captions; opposite captions]."""
    tok = torch.cat([images[0], opposites[0]]).to(device)
    pooled = torch.cat([images[1], opposites[1]]).to(device)
    cols = torch.cat([captions, opposite_captions])
    rows = cols.unsqueeze(0).expand(len(cols), len(cols))
    return data.score(scorer, tok, pooled, rows, device)


def block_scores(scorer, data: CachedDataset, images, opposites, captions: Tensor, opposite_captions: Tensor, device):
    """[B, 2, 2] scores: per item, [image; opposite] against [caption, opposite caption] (4 maps an item)."""
    tok = torch.cat([images[0], opposites[0]]).to(device)
    pooled = torch.cat([images[1], opposites[1]]).to(device)
    both = torch.stack([captions, opposite_captions], dim=1)  # [B, 2]
    rows = torch.cat([both, both])  # [2B, 2]: image b and its opposite each against the item's two captions
    s = data.score(scorer, tok, pooled, rows, device)
    b = len(captions)
    return torch.stack([s[:b], s[b:]], dim=1)


def block_loss(blocks: Tensor) -> Tensor:
    """Each image picks its caption over its opposite caption, each caption its image over the opposite
    image: cross-entropy along both axes of every item's 2 x 2 block, diagonal targets."""
    target = torch.arange(2, device=blocks.device).repeat(len(blocks))
    rows = F.cross_entropy(blocks.reshape(-1, 2), target)
    cols = F.cross_entropy(blocks.transpose(1, 2).reshape(-1, 2), target)
    return (rows + cols) / 2


def reference_loss(scores: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The reference's loss on one 2B x 2B map: standardise, permute both axes, row CE + column CE."""
    z = (scores - scores.mean()) / scores.std()
    perm = torch.randperm(len(z), generator=generator).to(z.device)
    z = z[perm][:, perm]  # the same permutation on both axes: the true pairs stay on the diagonal
    target = torch.arange(len(z), device=z.device)
    return F.cross_entropy(z, target) + F.cross_entropy(z.T, target)


def reference_step(maps: Iterable[Tensor], generator: torch.Generator | None = None) -> Tensor:
    """What the reference back-propagates per step: its loss summed over sources x versions, divided by 3."""
    return sum(reference_loss(m, generator) for m in maps) / 3


def pair_term(scorer, data: CachedDataset, batch, device, reference: bool, gen) -> Tensor | None:
    """The image-side term of a training batch (`train_data.Batch`); None where it has no opposite images.

    Default: `block_loss`, each item's 2 x 2 block of image and opposite against its two captions (the
    in-batch negatives are already the caption-side loss's: 4 maps an item instead of 4B). Reference:
    the full 2B x 2B map per source and caption version (`batch.group`), `reference_step` over them."""
    if batch.opp_tok is None:
        return None
    caps, opp = batch.pos, batch.negs[:, 0]  # an item's first wrong candidate describes its opposite image
    if not reference:
        images, opposites = (batch.tok, batch.pooled), (batch.opp_tok, batch.opp_pooled)
        return block_loss(block_scores(scorer, data, images, opposites, caps, opp, device))
    maps = []
    for g in torch.unique(batch.group).tolist():
        at = torch.nonzero(batch.group == g).flatten().to(caps.device)
        if len(at) < 2:
            continue
        images, opposites = (batch.tok[at], batch.pooled[at]), (batch.opp_tok[at], batch.opp_pooled[at])
        maps.append(paired_scores(scorer, data, images, opposites, caps[at], opp[at], device))
    return reference_step(maps, gen) if maps else None
