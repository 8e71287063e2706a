"""Text towers: per-token outputs through the same final norm and projection as the pooled vector.

    tokens, pooled = token_encoder(model).text(ids)    # tokens [B, C, D] line up with ids [B, C]

Three families: the text transformer inlined in open_clip.CLIP; open_clip's TextTransformer as
`model.text` (CustomTextCLIP, SigLIP, CoCa); a Hugging Face encoder (HFTextEncoder, `hf_model_name`
configs). Token i is always the output at id position i, so functional rows and word positions can be
found again from the stored ids; pad positions are kept (the store records the real length).
"""

from __future__ import annotations

import torch
from torch import nn

from ..._openclip import open_clip
from .adapters import TextAdapter, project

Tensor = torch.Tensor
_text_global_pool = open_clip.transformer.text_global_pool


def _proj_name(proj) -> str:
    if proj is None:
        return "none"
    return "text_projection (linear with bias)" if isinstance(proj, nn.Linear) else "text_projection"


# -- open_clip.CLIP: text transformer inlined in the model ----------------------------------------


def _first(mask: Tensor | None, n: int) -> Tensor | None:
    """The attention mask of the first n positions (ids shorter than the context length)."""
    return None if mask is None else mask[..., :n, :n]


def _clip_text(model: nn.Module, ids: Tensor) -> tuple[Tensor, Tensor]:
    cast, n = model.transformer.get_cast_dtype(), ids.shape[1]  # (n < context: a causal tower's first n outputs)
    x = model.token_embedding(ids).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=_first(model.attn_mask, n)))
    pooled = _text_global_pool(x, ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    return project(x, model.text_projection), project(pooled, model.text_projection)


def _clip_text_describe(model: nn.Module) -> dict:
    return {
        "family": "clip-text",
        "layer": "transformer output after ln_final",
        "projection": _proj_name(model.text_projection),
        "projected": True,
        "token_path": "direct",
        "cls_token": False,
        "pool": model.text_pool_type,
    }


# -- open_clip TextTransformer as model.text ------------------------------------------------------


def _tt_text(tower: nn.Module, ids: Tensor) -> tuple[Tensor, Tensor]:
    """As TextTransformer.forward. CoCa (cls_emb): the appended CLS is pooled after ln_final and is
    not a token; tokens are ln_final of the id positions, so the same norm and projection apply."""
    x, attn_mask = tower._embeds(ids)
    x = tower.transformer(x, attn_mask=_first(attn_mask, x.shape[1]))
    if tower.cls_emb is not None:
        pooled = tower.ln_final(x[:, -1])
        tokens = tower.ln_final(x[:, :-1])
    else:
        tokens = tower.ln_final(x)
        pooled = _text_global_pool(tokens, ids, tower.pool_type, eos_token_id=getattr(tower, "eos_id", None))
    return project(tokens, tower.text_projection), project(pooled, tower.text_projection)


def _tt_describe(tower: nn.Module) -> dict:
    coca = tower.cls_emb is not None
    return {
        "family": "text-transformer",
        "layer": "transformer output after ln_final",
        "projection": _proj_name(tower.text_projection),
        "projected": True,
        "token_path": "direct",
        "cls_token": False,
        "pool": "appended CLS (not stored as a token)" if coca else tower.pool_type,
        "causal": tower.attn_mask is not None,
    }


def _tt_pools(tower: nn.Module) -> bool:
    return tower.cls_emb is not None or tower.pool_type != "none"


def _clip_pools(model: nn.Module) -> bool:
    return hasattr(model, "token_embedding") and getattr(model, "text_pool_type", "none") != "none"


# -- Hugging Face encoder (HFTextEncoder) -----------------------------------------------------------


def _hf_text(tower: nn.Module, ids: Tensor) -> tuple[Tensor, Tensor]:
    """last_hidden_state at every position through `proj` (linear or MLP), as the pooled vector."""
    mask = (ids != tower.config.pad_token_id).long()
    out = tower.transformer(input_ids=ids, attention_mask=mask)
    pooled = project(tower.pooler(out, mask), tower.proj)
    return project(out.last_hidden_state, tower.proj), pooled


def _hf_describe(tower: nn.Module) -> dict:
    pooler = type(tower.pooler).__name__
    proj = tower.proj
    kind = "identity" if isinstance(proj, nn.Identity) else "linear" if isinstance(proj, nn.Linear) else "mlp"
    uses_pooler_output = (
        pooler == "ClsPooler"
        and getattr(tower.pooler, "use_pooler_output", False)
        and getattr(tower.transformer, "pooler", None) is not None
    )
    d = {
        "family": "hf-text",
        "layer": "last_hidden_state",
        "projection": f"proj ({kind}, per token)",
        "projected": not uses_pooler_output,
        "token_path": "direct",
        "cls_token": pooler.startswith("Cls"),
        "pool": pooler,
        "hf_model_type": getattr(tower.config, "model_type", None),
    }
    if kind == "mlp":
        d["note"] = "the MLP projection is non-linear: the pooled vector is the MLP of the pooled state"
    if uses_pooler_output:
        d["note"] = "pooled uses the HF pooler output (dense + tanh on CLS), which tokens do not pass through"
    return d


TEXT_ADAPTERS: list[TextAdapter] = [
    TextAdapter("clip-text", open_clip.model.CLIP, _clip_text, _clip_text_describe, _clip_pools),
    TextAdapter("text-transformer", open_clip.transformer.TextTransformer, _tt_text, _tt_describe, _tt_pools),
    TextAdapter("hf-text", open_clip.hf_model.HFTextEncoder, _hf_text, _hf_describe),
]
