"""Hard negatives for contrastive pretraining: captions one word apart, put in the same batch.

    partners = one_word_apart(["a red circle", "a red square", "a blue circle"])   # [[1, 2], [0], [0]]
    idx = with_partners(perm[pos : pos + 128], partners, share=0.5, generator=gen)

In a batch of random web captions, two images rarely differ in one attribute of one object, so
CLIP's loss is met by the easy attribute (on the shapes world, colour) and the hard one (shape) is
learned late. Pairing each of some anchors with a caption that differs from it in exactly one word
("a red circle and a blue square" / "a red star and a blue square") makes that difference the only
one the loss can use for that pair, for the image and the caption side alike. Nothing here knows the
shapes world: the pairs come from the captions' words.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

__all__ = ["one_word_apart", "with_partners"]


def one_word_apart(captions: Sequence[str]) -> list[list[int]]:
    """For each caption, the indices of the other captions that differ from it in exactly one word
    (the same number of words, lower-cased; identical texts are not partners)."""
    words = [tuple(c.lower().split()) for c in captions]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, w in enumerate(words):
        for k in range(len(w)):
            groups[k, w[:k], w[k + 1 :]].append(i)
    partners: list[list[int]] = []
    for i, w in enumerate(words):
        found = {j for k in range(len(w)) for j in groups[k, w[:k], w[k + 1 :]] if words[j] != w}
        partners.append(sorted(found))
    return partners


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
