"""timm trunks whose pooling a per-location head commutes with (ConvNeXt, EVA, ViTamin, MobileCLIP, shapes-clip).

    tokens, pooled = timm_image(model.visual, pixels)     # [B, H*W or N, D], [B, D]

The trunk's own head (norm, pre-logits, classifier) and the adapter's projection run at every location.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._openclip import open_clip
from .adapters import ImageAdapter, project

Tensor = torch.Tensor

__all__ = ["TIMM_ADAPTER"]


_TIMM_NLC_POOLS = ("avg", "token", "max", "avgmax")


def timm_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """The trunk's own head (norm, pre-logits, classifier) and the adapter's projection at every location.

    Convolutional trunks ([B, C, H, W] or NHWC): each location goes through `trunk.forward_head` as a
    1×1 map, so every per-location piece of the head (e.g. ConvNeXt's LayerNorm2d) is applied exactly
    as for the pooled vector. Transformer trunks ([B, N, C]): fc_norm and head on every token, prefix
    tokens (CLS, registers) dropped unless the CLS token is the pooled one.
    """
    trunk = visual.trunk
    fmap = trunk.forward_features(pixels)
    pooled = project(trunk.forward_head(fmap), visual.head)
    if fmap.ndim == 4:
        if getattr(trunk, "output_fmt", "NCHW") == "NHWC":
            B, H, W, C = fmap.shape
            cells = fmap.reshape(B * H * W, 1, 1, C)
        else:
            B, C, H, W = fmap.shape
            cells = fmap.permute(0, 2, 3, 1).reshape(B * H * W, C, 1, 1)
        tokens = trunk.forward_head(cells).reshape(B, H * W, -1)
    else:
        prefix = getattr(trunk, "num_prefix_tokens", 0)
        x = torch.cat([fmap[:, :1], fmap[:, prefix:]], 1) if trunk.global_pool == "token" else fmap[:, prefix:]
        tokens = trunk.head(trunk.head_drop(trunk.fc_norm(x)))
    return project(tokens, visual.head), pooled


def _timm_describe(visual: nn.Module) -> dict:
    pool = getattr(visual.trunk, "global_pool", "avg")
    pool = getattr(pool, "pool_type", pool)  # SelectAdaptivePool2d on convolutional trunks
    return {
        "family": "timm",
        "layer": "trunk.forward_features, then the trunk head per location",
        "projection": "head (per location)",
        "projected": True,
        "token_path": "direct",
        "cls_token": pool == "token",
        "pool": str(pool),
    }


def _timm_pooling(visual: nn.Module) -> bool:
    if "pool" in visual.head._modules:  # TimmModel's own attention pool (abs_attn / rot_attn): no adapter
        return False
    trunk = visual.trunk
    if getattr(trunk, "attn_pool", None) is not None:
        return False
    pool = getattr(trunk, "global_pool", "avg")
    if isinstance(pool, str) and getattr(trunk, "num_prefix_tokens", None) is not None:
        return pool in _TIMM_NLC_POOLS  # transformer trunk
    return True  # convolutional trunk: its pooling is global over H×W


TIMM_ADAPTER = ImageAdapter("timm", open_clip.timm_model.TimmModel, timm_image, _timm_describe, _timm_pooling)
