"""Token extractors: per-patch image tokens and per-token text tokens in the joint space.

    enc = token_encoder(model)
    img_tokens, img_pooled = enc.image(pixels)       # [B, P, D], [B, D] == model.encode_image
    txt_tokens, txt_pooled = enc.text(ids)           # [B, C, D], [B, D] == model.encode_text

One adapter per tower family, chosen by the tower's type. Each returns the pooled embedding exactly
as the model's own `encode_image`/`encode_text` computes it, and tokens put through the same final
norm and projection, so a token and the pooled vector live in one space. `describe()` says where the
tokens come from; it is recorded in the store's attributes. Tokens are not normalised here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .._compat import open_clip
from ..errors import BadInputError

Tensor = torch.Tensor


@dataclass(frozen=True)
class ImageAdapter:
    family: str
    fn: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
    describe: Callable[[nn.Module], dict]


@dataclass(frozen=True)
class TextAdapter:
    family: str
    fn: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
    describe: Callable[[nn.Module], dict]


# -- image towers ---------------------------------------------------------------------------------

def _vit_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """open_clip VisionTransformer (no attentional pool): ln_post and proj applied to every token."""
    x = visual.transformer(visual._embeds(pixels))
    if visual.final_ln_after_pool:
        pooled, _ = visual._global_pool(x)
        pooled = visual.ln_post(pooled)
        x = visual.ln_post(x)
    else:
        x = visual.ln_post(x)
        pooled, _ = visual._global_pool(x)
    tokens = x if visual.pool_type == "tok" else x[:, 1:]  # keep CLS (index 0) where it is the pooled token
    if visual.proj is not None:
        pooled, tokens = pooled @ visual.proj, tokens @ visual.proj
    return tokens, pooled


def _vit_describe(visual: nn.Module) -> dict:
    grid = list(visual.grid_size)
    return {"family": "vit", "layer": "transformer output after ln_post", "projection": "visual.proj",
            "projected": visual.proj is not None, "cls_token": visual.pool_type == "tok",
            "grid": grid, "pool": visual.pool_type}


def _timm_avg_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """timm trunk with average pooling and a linear head: the head applied at every location."""
    fmap = visual.trunk.forward_features(pixels)
    pooled = visual.head(visual.trunk.forward_head(fmap))
    if fmap.ndim == 4:  # convolutional trunk: [B, C, H, W] -> [B, HW, C]
        tokens = fmap.flatten(2).transpose(1, 2)
    else:  # transformer trunk: drop the prefix (CLS/register) tokens that average pooling skips
        tokens = fmap[:, getattr(visual.trunk, "num_prefix_tokens", 0):]
    return visual.head(tokens), pooled


def _timm_describe(visual: nn.Module) -> dict:
    return {"family": "timm-avg", "layer": "trunk.forward_features", "projection": "head (linear, per location)",
            "projected": True, "cls_token": False, "pool": "avg"}


IMAGE_ADAPTERS: dict[type, ImageAdapter] = {
    open_clip.transformer.VisionTransformer: ImageAdapter("vit", _vit_image, _vit_describe),
    open_clip.timm_model.TimmModel: ImageAdapter("timm-avg", _timm_avg_image, _timm_describe),
}


# -- text towers ----------------------------------------------------------------------------------

def _clip_text(model: nn.Module, ids: Tensor) -> tuple[Tensor, Tensor]:
    """The text transformer inlined in open_clip.CLIP: ln_final then text_projection on every position."""
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(ids).to(cast) + model.positional_embedding.to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    pooled = open_clip.transformer.text_global_pool(x, ids, model.text_pool_type,
                                                    eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is None:
        return x, pooled
    if isinstance(proj, nn.Linear):
        return proj(x), proj(pooled)
    return x @ proj, pooled @ proj


def _clip_text_describe(model: nn.Module) -> dict:
    return {"family": "clip-text", "layer": "transformer output after ln_final", "projection": "text_projection",
            "projected": model.text_projection is not None, "pool": model.text_pool_type}


# -- dispatch -------------------------------------------------------------------------------------

class TokenEncoder:
    """Binds a model to its image and text adapters."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.image_adapter = _image_adapter(model)
        self.text_adapter = _text_adapter(model)

    @torch.no_grad()
    def image(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        return self.image_adapter.fn(self.model.visual, pixels)

    @torch.no_grad()
    def text(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        return self.text_adapter.fn(self.model, ids)

    def describe(self) -> dict:
        return {"image": self.image_adapter.describe(self.model.visual),
                "text": self.text_adapter.describe(self.model)}


def _image_adapter(model: nn.Module) -> ImageAdapter:
    visual = getattr(model, "visual", None)
    for cls in type(visual).__mro__:
        if cls in IMAGE_ADAPTERS:
            return IMAGE_ADAPTERS[cls]
    raise BadInputError(f"no token extractor for image tower {type(visual).__name__}; "
                        f"supported: {', '.join(sorted(a.family for a in IMAGE_ADAPTERS.values()))}")


def _text_adapter(model: nn.Module) -> TextAdapter:
    if hasattr(model, "token_embedding") and hasattr(model, "ln_final"):
        return TextAdapter("clip-text", _clip_text, _clip_text_describe)
    raise BadInputError(f"no token extractor for the text tower of {type(model).__name__}")


def token_encoder(model: nn.Module) -> TokenEncoder:
    return TokenEncoder(model)
