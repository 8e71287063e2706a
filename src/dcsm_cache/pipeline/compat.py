"""`paper_compat`: the DCSM reference evaluation reproduced from the cache, quirks included.

    ds = apply_reference_captions(load_benchmark("whatsUp_A", "data"), "whatsUp_A", dcsm=True)
    write_manifest(ds, "manifests/whatsUp_A+paper.json")   # then extract, then:
    evaluate("stores/vit-b-16/whatsUp_A+paper.zarr", "dcsm-paper", EvalConfig(checkpoint="dcsm_obja_ckpt.pt"))

Two halves. The caption side changes the text, so it happens when the manifest is written
(`dcsm-cache items --paper-compat`): the reference's loader rewrites, the DCSM-path rewrites and the
per-benchmark prefix of `paper.reference_caption`; the dataset is renamed `<key>+paper`
(`<key>+paper-baseline` for the baselines' captions, which skip the DCSM rewrites). The scoring side
is the scorer `dcsm-paper` (`score_items` here, with `compat_scorer.py`): whitespace-index functional
rows, one standardisation per item over all candidates, the reference's CNN and checkpoint.

What still differs from the reference (docs/benchmarks.md sections 0-1):
- pad columns: the reference pads every caption to 30 tokens with the EOS id and runs HF CLIP with
  those keys masked, projecting every position; a default store holds tokens only up to its longest
  caption (zeros beyond, via `fit_width`) and open_clip's pads (id 0, unmasked). A store extracted
  with `reference_text_tokens` below (store attr `text_padding: "reference"`) has the reference's pad
  columns, and its EOS in column 29 for captions longer than 28 BPE tokens (truncation); real-token
  columns before that agree either way (causal attention);
- the store keeps tokens in float16 (cosines off by ~1e-3), the reference is fp32 (TF32 convs on GPU);
- images go through open_clip's preprocessing, not `CLIPImageProcessor` (same resize/crop/normalise).
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from ..errors import BadInputError, ConfigError, StoreMismatchError, UnknownNameError
from .benchmarks import BENCHMARKS, paper
from .cache import CachedDataset
from .compat_scorer import (IMG_SEQ, REFERENCE_WORDS, TEXT_SEQ, VARIANTS, CrossModalConvNetwork, ReferenceScorer,
                            column_sources, load_reference_checkpoint, reference_maps, standardise_items)
from .items import Dataset

__all__ = ["IMG_SEQ", "REFERENCE_WORDS", "TEXT_SEQ", "VARIANTS", "CrossModalConvNetwork", "ReferenceScorer",
           "apply_reference_captions", "column_sources", "load_reference_checkpoint", "reference_maps",
           "reference_text_tokens", "score_items", "standardise_items"]

log = logging.getLogger(__name__)

SUFFIX = {True: "+paper", False: "+paper-baseline"}
REFERENCE_PAD_ID = 49407  # HF CLIPTokenizer pads with "<|endoftext|>"


def apply_reference_captions(ds: Dataset, benchmark_key: str, dcsm: bool = True) -> Dataset:
    """`ds` with every caption as the reference feeds it to DCSM (`dcsm=True`) or to its baselines.

    Captions that become equal are stored once (items keep pointing at the right text); the name
    gets `+paper` (or `+paper-baseline`) so the manifest, the store and the results say so.
    """
    if benchmark_key not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {benchmark_key!r}; valid: {', '.join(sorted(BENCHMARKS))}")
    if any(s in ds.name for s in SUFFIX.values()):
        raise BadInputError(f"dataset {ds.name!r} already has the reference's captions")
    rows: dict[str, int] = {}
    remap = [rows.setdefault(paper.reference_caption(benchmark_key, c, dcsm), len(rows)) for c in ds.captions]
    items = tuple(dataclasses.replace(it, candidates=tuple(remap[c] for c in it.candidates)) for it in ds.items)
    return dataclasses.replace(ds, name=ds.name + SUFFIX[bool(dcsm)], captions=tuple(rows), items=items)


def reference_text_tokens(model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor,
                          pad_id: int = REFERENCE_PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
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
    pad = torch.arange(n, device=ids.device).unsqueeze(0) >= lengths.unsqueeze(1)          # [B, L]
    with torch.autocast(ids.device.type, enabled=False):                                    # fp32, as the reference
        x = model.token_embedding(ids.masked_fill(pad, pad_id)) + model.positional_embedding[:n]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu(1).expand(b, n, n).clone()  # causal
        mask.masked_fill_(pad.unsqueeze(1), float("-inf"))                                            # pads: no key
        heads = model.transformer.resblocks[0].attn.num_heads
        x = model.ln_final(model.transformer(x, attn_mask=mask.repeat_interleave(heads, dim=0)))
        proj = model.text_projection
        tokens = proj(x) if isinstance(proj, torch.nn.Module) else x @ proj
    return tokens, tokens[torch.arange(b, device=ids.device), lengths.long() - 1]


def _check(data: CachedDataset, scorer: ReferenceScorer) -> None:
    if data.n_tokens != scorer.img_seq:
        raise StoreMismatchError(f"{data.store.path} has {data.n_tokens} image tokens, the reference scorer reads "
                                 f"{scorer.img_seq} (ViT-B/16 at 224 with CLS): extract with ViT-B-16-quickgelu.openai")
    if data.text_tokens.shape[1] != scorer.text_seq:
        raise StoreMismatchError(f"open {data.store.path} with text_len={scorer.text_seq} for the reference scorer")
    attrs = data.store.attrs
    if not any(s in data.dataset.name for s in SUFFIX.values()):
        log.warning("%s: captions are not the reference's (no prefix or rewrites); write the manifest with "
                    "`dcsm-cache items --paper-compat`", data.dataset.name)
    if not str(attrs.get("backbone", "")).startswith("ViT-B-16"):
        log.warning("%s: backbone %s is not the reference's CLIP ViT-B/16", data.dataset.name, attrs.get("backbone"))
    if attrs.get("text_padding") != "reference":
        log.warning("%s: pad columns are not the reference's (store width %d, open_clip pads): scores differ "
                    "from the reference's wherever a caption is shorter than %d tokens", data.dataset.name,
                    data.store.text_tokens.shape[1], scorer.text_seq)


@torch.no_grad()
def score_items(data: CachedDataset, items: list, scorer: ReferenceScorer, device, batch_size: int) -> list[np.ndarray]:
    """Reference scores per item (one array of K values each), the scorer `dcsm-paper` of `evaluate`.

    Functional rows come from the caption TEXTS (`data.dataset.captions`), as the reference finds them.
    """
    _check(data, scorer)
    sources = scorer.sources(data.dataset.captions)
    out: list[np.ndarray | None] = [None] * len(items)
    for pos, tok, _, rows in data.item_batches(items, batch_size):
        scores = scorer(tok.to(device), data.text_tokens[rows].to(device), sources[rows].to(device))
        for j, i in enumerate(pos):
            out[i] = scores[j].float().cpu().numpy()
    return out  # type: ignore[return-value]
