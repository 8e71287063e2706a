"""The shapes-world CLIP's trunk: computed without torch's convolutions, it is the network its modules define."""

from __future__ import annotations

import pytest
import torch

from dcsm_cache.pipeline.tokens.shapes_clip import ShapesConvNet


def _with_convolutions(net: ShapesConvNet, x: torch.Tensor) -> torch.Tensor:
    """The same layers run as modules (torch's Conv2d and GroupNorm, channels first)."""
    x = net.stem(x)
    for block in net.blocks:
        x = x + block.mlp(block.norm(block.dw(x)))
    return net.norm(x)


@pytest.mark.parametrize(("width", "kernels", "size"), [(128, (3, 3, 3, 3), 64), (32, (3,), 32), (16, (5, 3), 48)])
def test_trunk_computes_its_modules_network(width, kernels, size):
    torch.manual_seed(0)
    net = ShapesConvNet(width=width, kernels=kernels)
    with torch.no_grad():
        for p in net.parameters():  # not the initial values: GroupNorm's are 1 and 0
            p.normal_(0, 0.2)
    x = torch.randn(3, 3, size, size, requires_grad=True)
    got, want = net.forward_features(x), _with_convolutions(net, x)
    assert got.shape == want.shape == (3, width, size // 8, size // 8)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), [x, *net.parameters()]) for out in (got, want)]
    for g, w in zip(*grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_state_dict_is_the_modules():
    """Checkpoints name the Conv2d and GroupNorm modules' weights, whichever way they are computed."""
    keys = set(ShapesConvNet(width=16, kernels=(3,)).state_dict())
    assert {"stem.0.weight", "stem.3.bias", "blocks.0.dw.weight", "blocks.0.mlp.2.weight", "norm.bias"} <= keys
