"""Hard negatives for pretraining: captions one word apart, paired in a batch, drawn reproducibly."""

from __future__ import annotations

import torch

from dcsm_cache.pipeline.world.hard_negatives import one_word_apart, with_partners


def test_partners_differ_in_exactly_one_word():
    captions = ["a red circle", "a red square", "a blue circle", "A red circle", "a red circle and a cross", "x"]
    assert one_word_apart(captions) == [[1, 2], [0, 3], [0, 3], [1, 2], [], []]  # case-blind; identical is no partner


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
