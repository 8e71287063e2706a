"""Tiny random-weight open_clip models, one per tower family, registered through open_clip's own
extension points (timm's model registry, `add_model_config`). Nothing is downloaded.

    names = register(tmp_dir)             # writes the JSON configs (and a tiny HF config) and registers them
    model = open_clip.create_model("dcsmtest-coca", pretrained_text=False)

FAMILIES lists each tiny model with what its token encoder must report; tests loop over it, so a new
entry is tested for free.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from dcsm_cache._openclip import open_clip  # first: the torchvision guard must run before timm is imported
from timm.models import register_model  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402

TEXT = {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}
VIT = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8}


def _timm_vit(**defaults):
    def build(pretrained: bool = False, **kwargs):
        kwargs = {**defaults, **{k: v for k, v in kwargs.items() if v is not None}}
        model = TimmViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, **kwargs)
        model.default_cfg = model.pretrained_cfg = {"pool_size": None}
        return model

    return build


@register_model
def dcsmtest_siglip_vit(pretrained: bool = False, **kwargs):
    """SigLIP layout: no class token, MAP (attention-pool latent) head."""
    return _timm_vit(class_token=False, global_pool="map")(**kwargs)


@register_model
def dcsmtest_reg_vit(pretrained: bool = False, **kwargs):
    """CLS token pooling with two register tokens (prefix tokens that are not patches)."""
    return _timm_vit(class_token=True, reg_tokens=2, global_pool="token")(**kwargs)


@register_model
def dcsmtest_gap_vit(pretrained: bool = False, **kwargs):
    """Average pooling with fc_norm after the pool (fc_norm applies per token)."""
    return _timm_vit(class_token=True, global_pool="avg", fc_norm=True)(**kwargs)


def _configs(hf_dir: Path) -> dict[str, dict]:
    hf_text = {"hf_model_name": str(hf_dir), "hf_tokenizer_name": str(hf_dir), "hf_model_pretrained": False}
    return {
        "dcsmtest-vit": {"embed_dim": 24, "vision_cfg": VIT, "text_cfg": TEXT},
        "dcsmtest-vit-quickgelu": {"embed_dim": 24, "quick_gelu": True, "vision_cfg": VIT, "text_cfg": TEXT},
        "dcsmtest-vit-avg": {
            "embed_dim": 24,
            "vision_cfg": {**VIT, "pool_type": "avg"},
            "text_cfg": {**TEXT, "proj_bias": True},
        },
        "dcsmtest-vit-lnafter": {
            "embed_dim": 24,
            "vision_cfg": {**VIT, "pool_type": "avg", "final_ln_after_pool": True},
            "text_cfg": TEXT,
        },
        "dcsmtest-rn": {
            "embed_dim": 24,
            "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32, "patch_size": None},
            "text_cfg": TEXT,
        },
        "dcsmtest-coca": {
            "embed_dim": 32,
            "custom_text": True,
            "vision_cfg": {
                **VIT,
                "width": 48,
                "attentional_pool": True,
                "attn_pooler_queries": 8,
                "attn_pooler_heads": 2,
                "output_tokens": True,
            },
            "text_cfg": {**TEXT, "embed_cls": True, "output_tokens": True},
            "multimodal_cfg": {**TEXT, "attn_pooler_heads": 2},
        },
        "dcsmtest-siglip": {
            "embed_dim": 32,
            "init_logit_bias": -10,
            "custom_text": True,
            "vision_cfg": {
                "image_size": 32,
                "timm_model_name": "dcsmtest_siglip_vit",
                "timm_model_pretrained": False,
                "timm_pool": "map",
                "timm_proj": "none",
            },
            "text_cfg": {
                **TEXT,
                "no_causal_mask": True,
                "proj_bias": True,
                "pool_type": "last",
                "norm_kwargs": {"eps": 1e-6},
            },
        },
        "dcsmtest-timm-reg": {
            "embed_dim": 24,
            "custom_text": True,
            "vision_cfg": {
                "image_size": 32,
                "timm_model_name": "dcsmtest_reg_vit",
                "timm_pool": "token",
                "timm_proj": "linear",
            },
            "text_cfg": {**TEXT, "pool_type": "argmax"},
        },
        "dcsmtest-timm-gap": {
            "embed_dim": 24,
            "vision_cfg": {
                "image_size": 32,
                "timm_model_name": "dcsmtest_gap_vit",
                "timm_pool": "avg",
                "timm_proj": "mlp",
            },
            "text_cfg": TEXT,
        },
        "dcsmtest-hf-mean": {
            "embed_dim": 24,
            "vision_cfg": VIT,
            "text_cfg": {**hf_text, "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler"},
        },
        "dcsmtest-hf-cls": {
            "embed_dim": 24,
            "vision_cfg": VIT,
            "text_cfg": {**hf_text, "hf_proj_type": "linear", "hf_pooler_type": "cls_last_hidden_state_pooler"},
        },
    }


def _write_tiny_roberta(folder: Path) -> bool:
    """A 1-layer RoBERTa config.json for HFTextEncoder; False where transformers is not installed."""
    try:
        from transformers import RobertaConfig
    except ImportError:
        return False
    RobertaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=1,
    ).save_pretrained(folder)
    return True


def register(folder: Path) -> bool:
    """Write and register the tiny configs; returns whether the HF families can be built."""
    folder = Path(folder)
    (folder / "hf").mkdir(parents=True, exist_ok=True)
    has_hf = _write_tiny_roberta(folder / "hf")
    for name, cfg in _configs(folder / "hf").items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return has_hf


# -- what each family must report -----------------------------------------------------------------


def _zero(*tensors):
    for t in tensors:
        if t is not None:
            t.data.zero_()


def uniform_rn(model):
    """Uniform attention (q, k zero) and no positional embedding: the pool is then the mean token."""
    pool = model.visual.attnpool
    _zero(pool.q_proj.weight, pool.q_proj.bias, pool.k_proj.weight, pool.k_proj.bias, pool.positional_embedding)


def uniform_coca(model):
    """Uniform attention over CLS + patches, and ln_post made the identity (it is not linear)."""
    attn = model.visual.attn_pool.attn
    E = attn.embed_dim
    if attn._qkv_same_embed_dim:
        _zero(attn.in_proj_weight[: 2 * E])
    else:
        _zero(attn.q_proj_weight, attn.k_proj_weight)
    _zero(attn.in_proj_bias[: 2 * E])
    model.visual.ln_post = torch.nn.Identity()


def uniform_map(model):
    """Uniform attention of the MAP latent, MLP residual switched off (its last layer zero)."""
    pool = model.visual.trunk.attn_pool
    C = pool.kv.out_features // 2
    _zero(pool.q.weight, pool.q.bias, pool.kv.weight[:C], pool.kv.bias[:C], pool.mlp.fc2.weight, pool.mlp.fc2.bias)


@dataclass(frozen=True)
class Family:
    name: str
    image: str  # adapter family of the image tower
    text: str  # adapter family of the text tower
    n_image: int  # image tokens per image
    image_pool: str | None  # "first" | "mean": how pooled follows from tokens (None: not simply)
    text_pool: str | None  # "argmax" | "last" | "first" | "masked-mean" | None
    uniform: Callable | None = None  # value-path towers: makes the pool a plain mean of the tokens
    hf: bool = False


FAMILIES = [
    Family("dcsmtest-vit", "vit", "clip-text", 17, "first", "argmax"),
    Family("dcsmtest-vit-avg", "vit", "clip-text", 16, "mean", "argmax"),
    Family("dcsmtest-vit-lnafter", "vit", "clip-text", 16, None, "argmax"),
    Family("dcsmtest-rn", "modified-resnet", "clip-text", 4, None, "argmax", uniform_rn),
    Family("dcsmtest-coca", "vit-attnpool", "text-transformer", 17, None, None, uniform_coca),
    Family("dcsmtest-siglip", "timm-map", "text-transformer", 16, None, "last", uniform_map),
    Family("shapes-clip-tiny", "timm", "clip-text", 16, "mean", "argmax"),
    Family("dcsmtest-timm-reg", "timm", "text-transformer", 17, "first", "argmax"),
    Family("dcsmtest-timm-gap", "timm", "clip-text", 16, None, "argmax"),
    Family("dcsmtest-hf-mean", "vit", "hf-text", 17, "first", None, hf=True),
    Family("dcsmtest-hf-cls", "vit", "hf-text", 17, "first", "first", hf=True),
]


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained_text=False)
    _randomise_zero_inits(model)
    return model.eval()


def _randomise_zero_inits(model):
    """open_clip/timm zero some weights at init (ResNet bn3, latent queries, ...); give every parameter
    that is all zeros or all ones small random values so no path is trivially dead in the tests."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.numel() > 1 and (p.eq(0).all() or p.eq(1).all()):
                p.add_(0.1 * torch.randn_like(p))


def copy_model(model):
    return copy.deepcopy(model)
