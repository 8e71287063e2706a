"""late_interaction: MaxSim and FILIP over a batch, values and gradients against direct computations."""

from __future__ import annotations

import pytest
import torch

from dcsm_cache.pipeline.world.late_interaction import _BestPatch, late_interaction


@pytest.mark.parametrize("both_ways", [False, True])
def test_late_interaction_matches_a_direct_computation(both_ways):
    gen = torch.Generator().manual_seed(0)
    patches, tokens = torch.randn(3, 5, 4, generator=gen), torch.randn(2, 6, 4, generator=gen)
    valid = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float32)
    got = late_interaction(patches, tokens, valid, both_ways)
    for i in range(3):
        for t in range(2):
            words = tokens[t, : int(valid[t].sum())]
            cos = torch.nn.functional.cosine_similarity(patches[i][:, None], words[None], dim=-1)  # [P, L]
            want = cos.max(0).values.mean()  # each word's best patch
            if both_ways:
                want = (want + cos.max(1).values.mean()) / 2  # and each patch's best word
            assert torch.allclose(got[i, t], want, atol=1e-6), (i, t)


@pytest.mark.parametrize("chunk", [1 << 21, 7])  # one block, and blocks of one word with a ragged last one
def test_late_interaction_gradients_equal_autograd_through_max(monkeypatch, chunk):
    monkeypatch.setattr(_BestPatch, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(1)
    patches = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    tokens = torch.randn(2, 6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float64)
    weights = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad((late_interaction(patches, tokens, valid) * weights).sum(), (patches, tokens))
    p, t = torch.nn.functional.normalize(patches, dim=-1), torch.nn.functional.normalize(tokens, dim=-1)
    best = torch.einsum("ipd,tld->itlp", p, t).max(-1).values  # [I, T, L]; the best patch gets it all
    want = torch.autograd.grad((((best * valid).sum(-1) / valid.sum(-1)) * weights).sum(), (patches, tokens))
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: late_interaction(a, b, valid), (patches, tokens))
