"""Token extractors: per-patch image tokens and per-token text tokens in the joint space.

    enc = token_encoder(model)                       # or token_encoder(model, precision="bf16")
    img_tokens, img_pooled = enc.image(pixels)       # [B, P, D], [B, D] == model.encode_image
    txt_tokens, txt_pooled = enc.text(ids)           # [B, C, D], [B, D] == model.encode_text

One adapter per tower family, chosen by the tower's type (and, where one type covers several heads,
by its pooling). Each returns the pooled embedding exactly as the model's own `encode_image`/
`encode_text` computes it, and tokens put through the same final norm and projection, so a token and
the pooled vector live in one space. `describe()` says where the tokens come from; it is recorded in
the store's attributes. Tokens are not normalised here.

Families: this module has the towers whose pooling is a selection or a mean of tokens (open_clip
ViT with CLS or average pooling; timm trunks with average/token pooling and a per-location head);
`attnpool_towers` has the attention-pooled ones (CoCa, ModifiedResNet, SigLIP's MAP head), whose
tokens come from the pool's value path; `text_towers` has the text towers. Add a family by
appending an adapter to IMAGE_ADAPTERS or TEXT_ADAPTERS (first match wins).

`describe()` keys: family, layer, projection, projected, token_path, cls_token, pool, and for images
the grid. `projected: true` means each token is an output of the model's own final maps into the joint
space (where the model has no projection, the final norm's output is the joint space) and the pooled
vector is one of the tokens, their mean, or made from the same per-token states by the same maps.
`projected: false` with `token_path: "value-path"` marks attention-pooled towers (see attnpool_towers).
"""
from __future__ import annotations

import torch
from torch import nn

from .._compat import open_clip
from ..errors import BadInputError
from ._adapters import ImageAdapter, TextAdapter, project
from .attnpool_towers import ATTNPOOL_IMAGE_ADAPTERS
from .backbones import autocast
from .text_towers import TEXT_ADAPTERS

Tensor = torch.Tensor

__all__ = ["IMAGE_ADAPTERS", "TEXT_ADAPTERS", "ImageAdapter", "TextAdapter", "TokenEncoder", "token_encoder"]


# -- open_clip VisionTransformer: CLS or mean pooling ------------------------------------------------

def _vit_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
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
    return {"family": "vit", "layer": "transformer output after ln_post", "projection": "visual.proj",
            "projected": True, "token_path": "direct",
            "cls_token": visual.pool_type == "tok", "grid": list(visual.grid_size), "pool": visual.pool_type}


def _plain_vit(visual: nn.Module) -> bool:
    return visual.attn_pool is None and visual.pool_type in ("tok", "avg")


# -- timm trunk with a pooling that a per-location head commutes with ------------------------------

_TIMM_NLC_POOLS = ("avg", "token", "max", "avgmax")


def _timm_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
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
    return {"family": "timm", "layer": "trunk.forward_features, then the trunk head per location",
            "projection": "head (per location)", "projected": True, "token_path": "direct",
            "cls_token": pool == "token", "pool": str(pool)}


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


IMAGE_ADAPTERS: list[ImageAdapter] = [
    ImageAdapter("vit", open_clip.transformer.VisionTransformer, _vit_image, _vit_describe, _plain_vit),
    ImageAdapter("timm", open_clip.timm_model.TimmModel, _timm_image, _timm_describe, _timm_pooling),
    *ATTNPOOL_IMAGE_ADAPTERS,
]


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
        return {"image": self.image_adapter.describe(self.model.visual),
                "text": self.text_adapter.describe(text_tower(self.model)),
                "precision": self.precision}


def text_tower(model: nn.Module) -> nn.Module:
    """`model.text` for CustomTextCLIP and CoCa; the model itself for CLIP (text transformer inlined)."""
    text = getattr(model, "text", None)
    return text if isinstance(text, nn.Module) else model


def _match(adapters, tower: nn.Module | None, side: str):
    for adapter in adapters:
        if isinstance(tower, adapter.tower) and adapter.when(tower):
            return adapter
    known = ", ".join(dict.fromkeys(a.family for a in adapters))
    raise BadInputError(f"no token extractor for the {side} tower {type(tower).__name__}"
                        f"{_why(tower)}; supported families: {known}")


def _why(tower) -> str:
    pool = getattr(tower, "pool_type", None) or getattr(getattr(tower, "trunk", None), "global_pool", None)
    return f" with pooling {pool!r}" if isinstance(pool, str) else ""


def token_encoder(model: nn.Module, precision: str = "fp32") -> TokenEncoder:
    return TokenEncoder(model, precision)
