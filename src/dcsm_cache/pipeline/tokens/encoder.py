"""Token extractors: per-patch image tokens and per-token text tokens in the joint space.

    enc = token_encoder(model)                       # or token_encoder(model, precision="bf16")
    img_tokens, img_pooled = enc.image(pixels)       # [B, P, D], [B, D] == model.encode_image
    txt_tokens, txt_pooled = enc.text(ids)           # [B, C, D], [B, D] == model.encode_text

One adapter per tower family, chosen by the tower's type (and, where one type covers several heads,
by its pooling). Each returns the pooled embedding exactly as the model's own `encode_image`/
`encode_text` computes it, and tokens put through the same final norm and projection, so a token and
the pooled vector live in one space. `describe()` says where the tokens come from; it is recorded in
the store's attributes. Tokens are not normalised here.

Families, one module each: `vit` (open_clip ViT with CLS or average pooling), `timm_trunk` (timm
trunks with average/token pooling and a per-location head), `attnpool` (the attention-pooled ones:
CoCa, ModifiedResNet, SigLIP's MAP head, whose tokens come from the pool's value path) and `text`
(the text towers); `blip` wraps Hugging Face BLIP in open_clip's shape, both towers. Add a family
with a module of its own and its adapter in IMAGE_ADAPTERS or TEXT_ADAPTERS (first match wins).

`describe()` keys: family, layer, projection, projected, token_path, cls_token, pool, and for images
the grid. `projected: true` means each token is an output of the model's own final maps into the joint
space (where the model has no projection, the final norm's output is the joint space) and the pooled
vector is one of the tokens, their mean, or made from the same per-token states by the same maps.
`projected: false` with `token_path: "value-path"` marks attention-pooled towers (see `attnpool`).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import BadInputError
from ..device import autocast
from .adapters import ImageAdapter, TextAdapter
from .attnpool import ATTNPOOL_IMAGE_ADAPTERS
from .blip import BLIP_IMAGE_ADAPTER, BLIP_TEXT_ADAPTER
from .text import TEXT_ADAPTERS as OPEN_CLIP_TEXT_ADAPTERS
from .timm_trunk import TIMM_ADAPTER
from .vit import VIT_ADAPTER

Tensor = torch.Tensor

__all__ = [
    "IMAGE_ADAPTERS",
    "TEXT_ADAPTERS",
    "ImageAdapter",
    "TextAdapter",
    "TokenEncoder",
    "text_tower",
    "token_encoder",
]

IMAGE_ADAPTERS: list[ImageAdapter] = [VIT_ADAPTER, TIMM_ADAPTER, *ATTNPOOL_IMAGE_ADAPTERS, BLIP_IMAGE_ADAPTER]
TEXT_ADAPTERS: list[TextAdapter] = [*OPEN_CLIP_TEXT_ADAPTERS, BLIP_TEXT_ADAPTER]


# -- dispatch -------------------------------------------------------------------------------------


class TokenEncoder:
    """Binds a model to its image and text adapters; `precision` bf16/fp16 autocasts on the model's device."""

    def __init__(self, model: nn.Module, precision: str = "fp32"):
        self.model = model
        self.precision = precision
        self.image_adapter = _match(IMAGE_ADAPTERS, getattr(model, "visual", None), "image")
        self.text_adapter = _match(TEXT_ADAPTERS, text_tower(model), "text")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def image(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        pixels = pixels.to(self.device)
        with autocast(self.device, self.precision):
            return self.image_adapter.fn(self.model.visual, pixels)

    @torch.no_grad()
    def text(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        ids = ids.to(self.device)
        with autocast(self.device, self.precision):
            return self.text_adapter.fn(text_tower(self.model), ids)

    def describe(self) -> dict:
        return {
            "image": self.image_adapter.describe(self.model.visual),
            "text": self.text_adapter.describe(text_tower(self.model)),
            "precision": self.precision,
        }


def text_tower(model: nn.Module) -> nn.Module:
    """`model.text` for CustomTextCLIP and CoCa; the model itself for CLIP (text transformer inlined)."""
    text = getattr(model, "text", None)
    return text if isinstance(text, nn.Module) else model


def _match(adapters, tower: nn.Module | None, side: str):
    for adapter in adapters:
        if isinstance(tower, adapter.tower) and adapter.when(tower):
            return adapter
    known = ", ".join(dict.fromkeys(a.family for a in adapters))
    raise BadInputError(
        f"no token extractor for the {side} tower {type(tower).__name__}{_why(tower)}; supported families: {known}"
    )


def _why(tower) -> str:
    pool = getattr(tower, "pool_type", None) or getattr(getattr(tower, "trunk", None), "global_pool", None)
    return f" with pooling {pool!r}" if isinstance(pool, str) else ""


def token_encoder(model: nn.Module, precision: str = "fp32") -> TokenEncoder:
    return TokenEncoder(model, precision)
