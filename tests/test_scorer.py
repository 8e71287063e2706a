"""The DCSM scorer's readouts: computed on the channels-last layout, bit for bit what autograd gives."""

import pytest
import torch
import torch.nn.functional as F

from dcsm_cache.pipeline.dcsm import scorer as scorer_module
from dcsm_cache.pipeline.dcsm.scorer import DCSMScorer, ScorerConfig, _ChannelsLastGrad, _ColumnMax


@pytest.fixture
def deterministic():
    """`train`'s CPU mode: deterministic kernels (fr_vectors' index_put accumulates in a fixed order)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


def conv_features(rows: int, seed: int = 0) -> torch.Tensor:
    """ReLU'd channels-last features [N, C, rows, L] with the ties training meets: zeros, and a constant
    block (a caption's pad columns, where the map is 0 and the convolutions give their bias)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(6, 8, rows, 16, generator=g)
    h[:, :, :, 11:] = torch.randn(1, 8, 1, 1, generator=g)
    return F.relu(h).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("rows", [65, 198])
def test_column_max_is_amax_values_and_gradient(rows):
    h = conv_features(rows)
    assert (h[:, :, :, 12] == h[:, :, :1, 12]).all()  # whole columns tie
    grad = torch.randn(6, 8, 16, generator=torch.Generator().manual_seed(1))
    a = h.clone().requires_grad_()
    b = h.clone().requires_grad_()
    ours, theirs = _ColumnMax.apply(a), b.amax(dim=2)
    assert torch.equal(ours, theirs)
    ours.backward(grad)
    theirs.backward(grad)
    assert torch.equal(a.grad, b.grad)
    assert a.grad.is_contiguous(memory_format=torch.channels_last)
    tied = b.grad[:, :, :, 12]
    assert torch.equal(tied, (grad[:, :, 12] / rows)[:, :, None].expand_as(tied))  # ties share it


def test_channels_last_grad_is_identity_with_a_channels_last_gradient():
    h = conv_features(65)
    a = h.clone().requires_grad_()
    b = h.clone().requires_grad_()
    ours, theirs = _ChannelsLastGrad.apply(F.max_pool2d(a, 2)).flatten(1), F.max_pool2d(b, 2).flatten(1)
    assert torch.equal(ours, theirs)
    grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2))
    ours.backward(grad)
    theirs.backward(grad)
    assert torch.equal(a.grad, b.grad)
    assert a.grad.is_contiguous(memory_format=torch.channels_last)


def train_steps(cfg: ScorerConfig, n_tokens: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Four AdamW steps of a scorer on fixed maps with pad columns and a functional word: scores, weights."""
    torch.manual_seed(0)
    scorer = DCSMScorer(cfg, n_tokens, 16, 12)
    torch.nn.init.normal_(scorer.fc[-1].weight, std=0.1)  # (a zero last layer would send no gradient back)
    g = torch.Generator().manual_seed(1)
    b, k, d = 4, 5, 32
    image = F.normalize(torch.randn(b, n_tokens, d, generator=g), dim=-1).half()
    text = F.normalize(torch.randn(b, k, 16, d, generator=g), dim=-1).half()
    lengths = torch.randint(5, 12, (b, k), generator=g)
    fr = torch.full((b, k, 16), -1)
    fr[:, :, 3] = 2
    inputs = (image, torch.randn(b, d, generator=g).half(), text, torch.randn(b, k, d, generator=g).half(), lengths, fr)
    opt = torch.optim.AdamW(scorer.parameters(), lr=1e-2)
    scores = []
    for _ in range(4):
        s = scorer(*inputs)
        opt.zero_grad()
        (s.logsumexp(1) - s[:, 0]).mean().backward()
        opt.step()
        scores.append(s.detach())
    return scores, [p.detach().clone() for p in scorer.parameters()]


@pytest.mark.parametrize("n_tokens", [64, 49])
@pytest.mark.parametrize("cfg", [ScorerConfig(), ScorerConfig(pool=False), ScorerConfig(maxsim=False)])
def test_scorer_trains_as_with_autograds_own_readouts(deterministic, monkeypatch, cfg, n_tokens):
    ours = train_steps(cfg, n_tokens)
    monkeypatch.setattr(scorer_module._ColumnMax, "apply", staticmethod(lambda h: h.amax(dim=2)))
    monkeypatch.setattr(scorer_module._ChannelsLastGrad, "apply", staticmethod(lambda x: x))
    theirs = train_steps(cfg, n_tokens)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        assert torch.equal(a, b)
