"""The shapes-world CLIP: a small convolutional image trunk, registered with timm and open_clip.

    model = open_clip.create_model("shapes-clip")      # after `import dcsm_cache.pipeline.tokens.shapes_clip`

Why a convolutional trunk: the DCSM needs patch tokens that stay tied to where they are in the
image. With a ViT and CLS or plain average pooling, global attention lets every patch carry
whole-image content, so the patch most similar to "a red circle" lies on the circle only about half
the time. A trunk of local operators (a 4×4 patchify stem, then 3×3 depthwise ConvNeXt-style
blocks on the 8×8 grid) with average pooling and a linear projection keeps tokens local, and the
pooled embedding is exactly the mean of the projected patch tokens. It plugs into open_clip through
its own extension points: timm's model registry for the trunk, `add_model_config` for the CLIP
(the JSON configs in `dcsm_cache/model_configs`). It lives with the backbones, not the world, so that
naming a backbone (`names.py`) registers it without importing the shapes world; `world/tinyclip.py`
re-exports it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..._openclip import open_clip  # first: the guard must run before timm imports torchvision
from timm.models import register_model  # noqa: E402

__all__ = ["ShapesConvNet", "dcsm_shapes_convnet", "dcsm_shapes_convnet_tiny"]

Tensor = torch.Tensor


def _patchify(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """`conv` (kernel = stride, no padding) as one matrix product: [B, H, W, C] -> [B, H/k, W/k, out]."""
    B, H, W, C = x.shape
    k = conv.kernel_size[0]
    x = x.reshape(B, H // k, k, W // k, k, C).permute(0, 1, 3, 5, 2, 4).reshape(B, H // k, W // k, C * k * k)
    return _pointwise(x, conv)


def _pointwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """`conv` applied at each location of [B, H, W, C·kh·kw] (a 1×1 conv, or a patch unrolled as its weights are)."""
    return F.linear(x, conv.weight.reshape(conv.out_channels, -1), conv.bias)


def _depthwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A depthwise k×k `conv` ("same" padding) on [B, H, W, C]: k² shifted products, summed in a fixed order."""
    k = conv.kernel_size[0]
    H, W = x.shape[1:3]
    padded = F.pad(x, (0, 0, k // 2, k // 2, k // 2, k // 2))
    w = conv.weight.reshape(-1, k * k)
    out = conv.bias
    for i in range(k):
        for j in range(k):
            out = out + padded[:, i : i + H, j : j + W] * w[:, i * k + j]
    return out


def _group_norm(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """GroupNorm with one group on [B, H, W, C]: each image's mean and variance over all of it, per-channel affine."""
    return F.layer_norm(x, x.shape[1:], eps=norm.eps) * norm.weight + norm.bias


class _Block(nn.Module):
    """ConvNeXt-style block: depthwise k×k, channel LayerNorm, pointwise MLP, residual."""

    def __init__(self, dim: int, kernel: int = 3):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, C] -> [B, H, W, C]"""
        h = _group_norm(_depthwise(x, self.dw), self.norm)
        return x + _pointwise(self.mlp[1](_pointwise(h, self.mlp[0])), self.mlp[2])


class ShapesConvNet(nn.Module):
    """Patchify stem (stride `patch`), then one local block per depthwise kernel size; timm's trunk interface."""

    def __init__(
        self,
        width: int = 128,
        kernels: tuple[int, ...] = (3, 3, 3, 3),
        patch: int = 8,
        num_classes: int = 0,
        global_pool: str = "avg",
        **_timm_kwargs,
    ):
        super().__init__()
        self.num_features = width
        self.default_cfg = self.pretrained_cfg = {"architecture": "dcsm_shapes_convnet", "pool_size": None}
        self.stem = nn.Sequential(
            nn.Conv2d(3, width // 2, patch // 2, stride=patch // 2),
            nn.GroupNorm(1, width // 2),
            nn.GELU(),
            nn.Conv2d(width // 2, width, 2, stride=2),
            nn.GroupNorm(1, width),
        )
        self.blocks = nn.Sequential(*[_Block(width, k) for k in kernels])
        self.norm = nn.GroupNorm(1, width)
        self.global_pool = global_pool
        self.head = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int = 0, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, C, H/patch, W/patch]

        The layers are the modules above (their weights, their state dict), computed channels-last with
        matrix products and elementwise operations only: torch's convolutions run in oneDNN, whose
        kernels and sums depend on the processor beyond its instruction set (isa.py)."""
        stem = self.stem
        x = _patchify(x.permute(0, 2, 3, 1), stem[0])
        x = _patchify(stem[2](_group_norm(x, stem[1])), stem[3])
        x = _group_norm(x, stem[4])
        for block in self.blocks:
            x = block(x)
        return _group_norm(x, self.norm).permute(0, 3, 1, 2)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def dcsm_shapes_convnet(pretrained: bool = False, **kwargs) -> ShapesConvNet:
    return ShapesConvNet(width=128, kernels=(3, 3, 3, 3), patch=8, **_trunk_kwargs(kwargs))


@register_model
def dcsm_shapes_convnet_tiny(pretrained: bool = False, **kwargs) -> ShapesConvNet:
    return ShapesConvNet(width=32, kernels=(3,), patch=8, **_trunk_kwargs(kwargs))


def _trunk_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k in ("num_classes", "global_pool")}


open_clip.add_model_config(Path(__file__).resolve().parents[2] / "model_configs")  # dcsm_cache/model_configs
