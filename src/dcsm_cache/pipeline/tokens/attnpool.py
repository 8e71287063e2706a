"""Image towers whose pooled embedding comes from an attention pool: CoCa, ModifiedResNet, SigLIP.

    tokens, pooled = _rn_image(model.visual, pixels)     # via token_encoder(model).image(pixels)

An attention pool mixes all tokens with learned query weights, so no per-patch output of the model
lies in the joint space. The tokens here take the pool's *value path*: each token goes through the
pool's value projection, output projection and everything after it (norms, MLP residual, final
projection) exactly as the pooled vector does, with the attention mixing replaced by the identity —
what the pooled vector would be if the query attended to that token alone (the MaskCLIP construction,
Zhou et al. 2022). Before any final non-linearity, the pooled vector of a single-head pool is then a
convex combination of the tokens; with several heads each head mixes with its own weights. This is an
approximation of "the patch in the joint space", recorded as `projected: false`,
`token_path: "value-path"` in describe(). The pooled output is the model's own, computed exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._openclip import open_clip
from .adapters import ImageAdapter, linear, project

Tensor = torch.Tensor

_VALUE_PATH = "value-path"


# -- CoCa: open_clip VisionTransformer with an attentional pooler (original open_clip CoCa layout) ---


def _mha_value(mha: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """The value projection of an nn.MultiheadAttention, then its output projection, per token."""
    E = mha.embed_dim
    weight = mha.in_proj_weight[2 * E :] if mha._qkv_same_embed_dim else mha.v_proj_weight
    bias = None if mha.in_proj_bias is None else mha.in_proj_bias[2 * E :]
    return project(linear(x, weight, bias), mha.out_proj)


def _coca_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """CLS + patch tokens of the ViT (not the pooler's queries), through the pooler's value path,
    ln_post and proj. Pooled: ln_post(attn_pool(x)) at query 0, @ proj, as CoCa.encode_image."""
    x = visual.transformer(visual._embeds(pixels))
    pooled, _ = visual._global_pool(visual.ln_post(visual.attn_pool(x)))
    values = _mha_value(visual.attn_pool.attn, visual.attn_pool.ln_k(x))
    tokens = visual.ln_post(values)
    return project(tokens, visual.proj), project(pooled, visual.proj)


def _coca_describe(visual: nn.Module) -> dict:
    return {
        "family": "vit-attnpool",
        "layer": "transformer output (CLS + patches), through attn_pool's "
        "ln_k, value and output projections, then ln_post",
        "projection": "visual.proj",
        "projected": False,
        "token_path": _VALUE_PATH,
        "cls_token": True,
        "grid": list(visual.grid_size),
        "pool": "attn_pool query 0",
    }


def _coca_like(visual: nn.Module) -> bool:
    return visual.attn_pool is not None and not visual.attn_pool_type and visual.pool_type == "tok"


# -- ModifiedResNet (RN50, RN101, RN50x4, ...) -------------------------------------------------------


def _rn_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Every location of layer4, plus its positional embedding, through v_proj then c_proj."""
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels)))))
    pool = visual.attnpool
    pooled = pool(x)
    t = x.flatten(2).transpose(1, 2)  # [B, HW, C]
    t = t + pool.positional_embedding[1:].to(t.dtype)
    return project(t, pool.v_proj, pool.c_proj), pooled.float()


def _rn_describe(visual: nn.Module) -> dict:
    side = visual.image_size // 32
    return {
        "family": "modified-resnet",
        "layer": "layer4 output + attnpool positional embedding",
        "projection": "attnpool.v_proj then attnpool.c_proj (MaskCLIP)",
        "projected": False,
        "token_path": _VALUE_PATH,
        "cls_token": False,
        "grid": [side, side],
        "pool": "attnpool",
    }


# -- timm trunk with a MAP head (SigLIP: AttentionPoolLatent) ----------------------------------------


def _map_image(visual: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Trunk tokens (after its final norm) through the MAP head's kv value half, proj, and the
    residual MLP; then fc_norm, head and the adapter's head per token, as for the pooled vector."""
    trunk = visual.trunk
    pool = trunk.attn_pool
    fmap = trunk.forward_features(pixels)
    pooled = project(trunk.forward_head(fmap), visual.head)
    x = fmap if getattr(trunk, "pool_include_prefix", False) else fmap[:, trunk.num_prefix_tokens :]
    if pool.pos_embed is not None:
        x = x + pool.pos_embed.unsqueeze(0).to(x.dtype)
    C = pool.kv.out_features // 2
    v = linear(x, pool.kv.weight[C:], None if pool.kv.bias is None else pool.kv.bias[C:])
    t = pool.proj_drop(project(v, pool.proj))
    if pool.mlp is not None:
        t = t + pool.mlp(pool.norm(t))
    tokens = trunk.head(trunk.head_drop(trunk.fc_norm(t)))
    return project(tokens, visual.head), pooled


def _map_describe(visual: nn.Module) -> dict:
    trunk = visual.trunk
    grid = getattr(getattr(trunk, "patch_embed", None), "grid_size", None)
    return {
        "family": "timm-map",
        "layer": "trunk.forward_features (after the trunk's final norm), through "
        "attn_pool's kv value half, proj and residual MLP",
        "projection": "attn_pool.proj (+ mlp), head",
        "projected": False,
        "token_path": _VALUE_PATH,
        "cls_token": False,
        "grid": list(grid) if grid is not None else None,
        "pool": "map",
    }


def _map_pool(visual: nn.Module) -> bool:
    pool = getattr(visual.trunk, "attn_pool", None)
    return pool is not None and hasattr(pool, "kv") and hasattr(pool, "latent") and "pool" not in visual.head._modules


ATTNPOOL_IMAGE_ADAPTERS: list[ImageAdapter] = [
    ImageAdapter("vit-attnpool", open_clip.transformer.VisionTransformer, _coca_image, _coca_describe, _coca_like),
    ImageAdapter("modified-resnet", open_clip.modified_resnet.ModifiedResNet, _rn_image, _rn_describe),
    ImageAdapter("timm-map", open_clip.timm_model.TimmModel, _map_image, _map_describe, _map_pool),
]
