"""open_clip's VisionTransformer with CLS or mean pooling (ViT-B/16, ViT-L/14, NegCLIP, CoN-CLIP, CLIPS).

    tokens, pooled = vit_image(model.visual, pixels)     # [B, 197, D] for ViT-B/16 at 224 (CLS kept), [B, D]

ln_post and proj go on every token, so tokens and the pooled vector share the joint space; the CLS
token is kept (index 0) where it is the pooled token.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._openclip import open_clip
from .adapters import ImageAdapter, project

Tensor = torch.Tensor

__all__ = ["VIT_ADAPTER"]


def vit_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """ln_post and proj applied to every token; CLS kept (index 0) where it is the pooled token."""
    x = visual.transformer(visual._embeds(pixels))
    if visual.final_ln_after_pool:
        pooled, _ = visual._global_pool(x)
        pooled = visual.ln_post(pooled)
        x = visual.ln_post(x)
    else:
        x = visual.ln_post(x)
        pooled, _ = visual._global_pool(x)
    tokens = x if visual.pool_type == "tok" else x[:, 1:]
    return project(tokens, visual.proj), project(pooled, visual.proj)


def _vit_describe(visual: nn.Module) -> dict:
    return {
        "family": "vit",
        "layer": "transformer output after ln_post",
        "projection": "visual.proj",
        "projected": True,
        "token_path": "direct",
        "cls_token": visual.pool_type == "tok",
        "grid": list(visual.grid_size),
        "pool": visual.pool_type,
    }


def _plain_vit(visual: nn.Module) -> bool:
    return visual.attn_pool is None and visual.pool_type in ("tok", "avg")


VIT_ADAPTER = ImageAdapter("vit", open_clip.transformer.VisionTransformer, vit_image, _vit_describe, _plain_vit)
