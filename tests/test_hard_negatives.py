"""Hard negatives for pretraining: scenes one shape apart, paired in a batch, drawn reproducibly."""

from __future__ import annotations

import torch

from dcsm_cache.pipeline.world.hard_negatives import other_shape, with_partners


def test_partners_are_the_same_objects_but_for_one_shape_whatever_the_wording():
    captions = [
        "a red circle and a blue square",  # 0
        "an image of a red cross, a blue square",  # 1: circle -> cross
        "a blue square and a red circle",  # 2: the same scene as 0: never its negative
        "a green circle and a blue square",  # 3: another colour, not another shape
        "red circle and blue star",  # 4: square -> star
        "a red circle above a blue square",  # 5: not a list of objects
        "a red circle",  # 6: fewer objects
        "a photo of a red star",  # 7: circle -> star, one object
    ]
    assert other_shape(captions) == [[1, 4], [0, 2], [1, 4], [], [0, 2], [], [7], [6]]


def test_partners_take_the_last_places_and_the_draws_repeat():
    partners = [[5], [6, 7], [], [], [], [0], [1], [1]]
    batch = torch.tensor([0, 1, 2, 3])
    out = with_partners(batch, partners, share=1.0, generator=torch.Generator().manual_seed(0))
    assert out.tolist()[:2] == [0, 1] and out[3] == 5 and int(out[2]) in (6, 7)
    again = with_partners(batch, partners, share=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(with_partners(batch, partners, 0.0, torch.Generator()), batch)


def test_a_partner_already_in_the_batch_is_not_taken_twice():
    partners = [[1], [0], [], []]
    out = with_partners(torch.tensor([0, 1, 2, 3]), partners, share=1.0, generator=torch.Generator().manual_seed(0))
    assert out.tolist() == [0, 1, 2, 3]  # 0's only partner is in the batch already; 1's too
