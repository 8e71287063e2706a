"""Score one image against any captions, by the backbone's cosine and by a DCSM scorer: `dcsm-cache score`.

    ranked = rank_captions("data/world/images/test/000000.png", ["a red circle", "a blue square"], "shapes-clip")
    ranked["cosine"]    # [(caption index, score), ...] best first; ranked["dcsm"] the same, by the scorer

`backbone` is a key of the workflow config's `backbones:` (config/config.yaml by default: `shapes-clip`
is the embedded default's), whose scorer is then models/<key>/dcsm.pt where the workflow writes it,
or any backbone name `extract` takes (`ViT-B-16.openai`, `arch@weights.pt`) with `checkpoint` given.
The image and captions go through the backbone exactly as extraction takes them (its preprocessing,
tokenizer and token adapters, tokens unit-norm in float16), so the scores are the ones `eval` gives
the same image and captions from a store. With `heatmaps`, each caption's map and per-word overlays
are drawn there (`heatmap.draw_maps`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ...errors import BadInputError, InputNotFoundError, StoreMismatchError
from ..dcsm import FunctionalWords, fit_width, patch_grid
from ..items import Dataset, ImageRef, open_image
from .heatmap import Candidate, draw_maps, normalise_tokens, token_labels

__all__ = ["DEFAULT_CONFIG", "rank_captions", "resolve_backbone"]

DEFAULT_CONFIG = "config/config.yaml"


def resolve_backbone(name: str, checkpoint: str | None, config: str | os.PathLike = DEFAULT_CONFIG):
    """(backbone spec, scorer checkpoint or None): a config key maps to its model and models/<key>/dcsm.pt."""
    path = Path(config)
    backbones = {}
    if path.is_file():
        backbones = (yaml.safe_load(path.read_text()) or {}).get("backbones") or {}
    if name in backbones:
        spec = backbones[name]["model"]
        trained = Path("models") / name / "dcsm.pt"
        return spec, checkpoint or (str(trained) if trained.is_file() else None)
    return name, checkpoint


def _image(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image {path} does not exist")
    ds = Dataset(name="score", root=str(path.parent), images=(ImageRef(path.name),), captions=(), items=())
    return open_image(ds, 0)


def rank_captions(
    image: str | os.PathLike,
    captions: list[str],
    backbone: str = "shapes-clip",
    checkpoint: str | None = None,
    device: str = "cpu",
    heatmaps: str | os.PathLike | None = None,
    config: str | os.PathLike = DEFAULT_CONFIG,
) -> dict:
    """Scores of `captions` for `image` by cosine and, with a scorer, by the DCSM; each ranking best first."""
    from ..extract.run import _lengths, _pad_id
    from ..tokens import load_backbone, token_encoder

    if not captions:
        raise BadInputError("score: give at least one caption")
    spec, checkpoint = resolve_backbone(backbone, checkpoint, config)
    pil = _image(image)
    bb = load_backbone(spec, device)
    enc = token_encoder(bb.model)
    tok, pooled = enc.image(bb.preprocess(pil).unsqueeze(0))
    tok, pooled = normalise_tokens(tok).cpu(), pooled.float().cpu().half().float()
    ids = bb.tokenizer(list(captions))
    lengths = _lengths(ids, _pad_id(bb.tokenizer)).long()
    width = int(lengths.max())
    ttok, tpooled = enc.text(ids)
    ttok, tpooled = normalise_tokens(ttok[:, :width]).cpu(), tpooled.float().cpu().half().float()
    cos = (F.normalize(pooled, dim=-1) @ F.normalize(tpooled, dim=-1).T)[0].numpy()
    out = {"image": str(image), "backbone": spec, "checkpoint": checkpoint, "captions": list(captions)}
    if bb.spec.weights == "random":  # a bare architecture: what `extract` gives it, but rarely what is meant here
        out["note"] = f"backbone {spec!r} names no weights: the architecture {bb.spec.arch}, seeded random weights"
        if spec == backbone:
            out["note"] += f" ({backbone!r} is not a key of {config}'s backbones: run in the workflow's folder)"
    out["scores"] = {"cosine": cos.tolist()}
    fr_cols = None
    if checkpoint:
        from ..dcsm import load_scorer

        model, meta = load_scorer(checkpoint, device)
        if meta["backbone_id"] != bb.identity_key:
            raise StoreMismatchError(
                f"scorer {checkpoint} was trained on {meta['backbone']!r} (id {meta['backbone_id']}), not on "
                f"{spec!r} (id {bb.identity_key}): pass that backbone, or the scorer trained on this one"
            )
        n = meta["text_len"]
        cut = torch.from_numpy(fit_width(ttok.numpy(), n))
        fr = FunctionalWords.for_tokenizer(bb.tokenizer, tuple(meta["fr_words"]))
        fr_cols = torch.from_numpy(fr.columns(fit_width(ids.numpy(), n)))
        with torch.no_grad():
            dcsm = model(
                tok.to(device),
                pooled.to(device),
                cut.unsqueeze(0).to(device),
                tpooled.unsqueeze(0).to(device),
                lengths.clamp(max=n).unsqueeze(0).to(device),
                fr_cols.unsqueeze(0).to(device),
            )[0]
        out["scores"]["dcsm"] = dcsm.float().cpu().numpy().tolist()
    out["ranked"] = {k: sorted(range(len(v)), key=lambda i: -v[i]) for k, v in out["scores"].items()}
    if heatmaps:
        out["heatmaps"] = _draw(pil, tok, ttok, ids, lengths, fr_cols, out, bb.tokenizer, Path(heatmaps))
    return out


def _draw(pil, tok, ttok, ids, lengths, fr_cols, out, tokenizer, folder: Path) -> list[str]:
    grid = patch_grid(tok.shape[1])
    if grid is None:
        raise BadInputError(f"{out['backbone']}: {tok.shape[1]} image tokens are not a square patch grid")
    maps = torch.einsum("pd,kld->kpl", tok[0], ttok).numpy()  # [K, P, L]
    words = FunctionalWords.for_tokenizer(tokenizer)
    made = []
    for k, caption in enumerate(out["captions"]):
        n = int(lengths[k])
        functional = (words.columns(ids[k : k + 1, :n].numpy())[0] >= 0).tolist() if fr_cols is None else None
        if functional is None:
            functional = [bool(c >= 0) for c in np.asarray(fr_cols[k]).tolist()][:n]
            functional += [False] * (n - len(functional))
        dcsm = out["scores"].get("dcsm")
        cand = Candidate(
            caption,
            token_labels(tokenizer, ids[k, :n].tolist()),
            functional,
            out["scores"]["cosine"][k],
            None if dcsm is None else dcsm[k],
        )
        path = folder / f"caption_{k}.png"
        draw_maps(pil, maps[k : k + 1], grid, cand, None, path, f"{Path(out['image']).name}: caption {k}")
        made.append(str(path))
    return made
