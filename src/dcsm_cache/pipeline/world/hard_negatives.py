"""Hard negatives for the shapes world's pretraining: scenes that differ in one object's shape, in one batch.

    partners = other_shape(["a red circle", "a red square", "an image of a red circle"])   # [[1], [0, 2], [1]]
    idx = with_partners(perm[pos : pos + 128], partners, share=0.5, generator=gen)

In a batch of random web captions two scenes rarely differ in one attribute of one object, so CLIP's
loss is met by the easy attribute (colour: the backbone reads it first) and shapes are told apart
late: at 400 steps the default backbone still confused circles with squares and crosses with diamonds.
Pairing some anchors with a scene whose objects are the same but for one object's shape, the colour
kept ("a red circle and a blue square" / "a red cross and a blue square"), makes the shape the only
thing the loss can use for that pair, on the image side and the caption side alike. Partners are
found from what the captions say (`scenes.parse_caption`), not their wording: "a photo of a red
circle" and "an image of a red circle" show the same thing and are never each other's negative.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from ...errors import BadInputError
from .scenes import parse_caption

__all__ = ["other_shape", "with_partners"]


def other_shape(captions: Sequence[str]) -> list[list[int]]:
    """For each caption, the indices of the captions whose objects are its own but for one object's shape
    (the same colour, another shape); a caption that is not a list of the world's objects has none."""
    objects: list[list[tuple[str, str]] | None] = []
    for c in captions:
        try:
            kind, combos = parse_caption(c)
            objects.append(sorted(combos) if kind == "list" else None)
        except BadInputError:
            objects.append(None)
    groups: dict[tuple, list[tuple[int, str]]] = defaultdict(list)
    for i, objs in enumerate(objects):
        for k, (colour, shape) in enumerate(objs or ()):
            groups[tuple(objs[:k] + objs[k + 1 :]), colour].append((i, shape))
    partners: list[set[int]] = [set() for _ in captions]
    for members in groups.values():
        for i, shape in members:
            partners[i].update(j for j, other in members if other != shape)
    return [sorted(p) for p in partners]


def with_partners(
    batch: torch.Tensor, partners: list[list[int]], share: float, generator: torch.Generator
) -> torch.Tensor:
    """`batch` (indices) with its last `share / 2` of places given to partners of its first ones: anchor k's
    partner, drawn with `generator`, takes place B - 1 - k. An anchor without a partner outside the batch
    keeps the place's own index."""
    b = len(batch)
    m = min(b // 2, round(share * b / 2))
    out = batch.clone()
    taken = set(batch.tolist())
    draws = torch.rand(m, generator=generator).tolist()  # one draw per anchor, used or not: a fixed stream
    for k in range(m):
        options = [j for j in partners[int(batch[k])] if j not in taken]
        if options:
            pick = options[min(len(options) - 1, int(draws[k] * len(options)))]
            taken.discard(int(out[b - 1 - k]))
            out[b - 1 - k] = pick
            taken.add(pick)
    return out
