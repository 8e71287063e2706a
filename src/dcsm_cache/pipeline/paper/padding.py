"""Text tokens padded as the DCSM reference pads them: 30 columns, EOS-id pads masked as attention keys.

    tokens, pooled = reference_text_tokens(model, tokenizer(texts, context_length=TEXT_SEQ), lengths)

A small leaf of the paper package: extraction imports it for `extract --set text_padding=reference`.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError

__all__ = ["REFERENCE_PAD_ID", "TEXT_SEQ", "reference_text_tokens"]

TEXT_SEQ = 30  # `text_seq` of the released checkpoints
REFERENCE_PAD_ID = 49407  # HF CLIPTokenizer pads with "<|endoftext|>"


def reference_text_tokens(
    model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor, pad_id: int = REFERENCE_PAD_ID
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text tokens as the reference computes them, from an open_clip CLIP text tower.

    The reference runs HF `tokenizer(padding="max_length", max_length=30, truncation=True)` and
    `text_projection(text_model(**tok).last_hidden_state)`: pads carry the EOS id and are masked as
    attention keys, and every position is projected. `ids` [B, L] are open_clip's
    `tokenizer(texts, context_length=L)` (EOT kept on truncation, as HF does), `lengths` [B] the real
    token counts. Returns unnormalised tokens [B, L, D] and the pooled vector (the EOS token) [B, D],
    computed in fp32 whatever autocast is active (the reference runs fp32).
    """
    if getattr(model, "text_pool_type", "argmax") not in ("argmax", "eos"):
        raise ConfigError("reference text tokens need a CLIP text tower pooled at its EOS token")
    b, n = ids.shape
    pad = torch.arange(n, device=ids.device).unsqueeze(0) >= lengths.unsqueeze(1)  # [B, L]
    with torch.autocast(ids.device.type, enabled=False):  # fp32, as the reference
        x = model.token_embedding(ids.masked_fill(pad, pad_id)) + model.positional_embedding[:n]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu(1).expand(b, n, n).clone()  # causal
        mask.masked_fill_(pad.unsqueeze(1), float("-inf"))  # pads: no key
        heads = model.transformer.resblocks[0].attn.num_heads
        x = model.ln_final(model.transformer(x, attn_mask=mask.repeat_interleave(heads, dim=0)))
        proj = model.text_projection
        tokens = proj(x) if isinstance(proj, torch.nn.Module) else x @ proj
    return tokens, tokens[torch.arange(b, device=ids.device), lengths.long() - 1]
