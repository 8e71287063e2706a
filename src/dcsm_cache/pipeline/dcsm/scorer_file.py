"""The scorer checkpoint: the one place that writes and reads what `dcsm-cache train` produces.

    save_scorer(scorer, meta, "models/shapes-clip/dcsm.pt")
    scorer, meta = load_scorer("models/shapes-clip/dcsm.pt", device="cpu")

The file is a `torch.save` dict of tensors and plain values (read back with `weights_only=True`)
tagged with FORMAT. An old, foreign or truncated file is one line naming it and what to do.
`meta` holds what the scorer was trained on: the store's backbone (its display name and
`backbone_id`), functional words, token counts, configs, and the training summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...atomic import save_torch
from ...errors import BadInputError, InputNotFoundError
from .scorer import DCSMScorer, ScorerConfig

__all__ = ["FORMAT", "load_scorer", "save_scorer"]

FORMAT = "dcsm-cache/scorer-v2"  # v2: names the backbone by backbone_id (what was loaded), not by its spelling
_NEEDS = ("state_dict", "scorer_config", "n_tokens", "text_len", "fr_words", "backbone", "backbone_id")


def save_scorer(scorer: DCSMScorer, meta: dict, out: str | os.PathLike) -> Path:
    """Write the scorer's weights and `meta` atomically (a crash never leaves half a checkpoint)."""
    missing = [k for k in _NEEDS if k != "state_dict" and k not in meta]
    if missing:
        raise ValueError(f"scorer checkpoint meta lacks {missing}")
    ckpt = {"format": FORMAT, **meta, "state_dict": {k: v.detach().cpu() for k, v in scorer.state_dict().items()}}
    return save_torch(ckpt, out)


def read_meta(path: str | os.PathLike) -> dict:
    """The checkpoint's contents, checked to be a scorer checkpoint of this format."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"scorer checkpoint {path} does not exist: run `dcsm-cache train` first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, a pickle with code, not a torch file at all
        raise BadInputError(
            f"scorer checkpoint {path} cannot be read ({type(err).__name__}; truncated or not a "
            f"checkpoint): retrain it with `dcsm-cache train`"
        ) from err
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != FORMAT:
        what = (
            f"was written by another dcsm-cache version ({fmt})"
            if isinstance(fmt, str) and fmt.startswith("dcsm-cache/")
            else "is not a dcsm-cache scorer checkpoint"
        )
        raise BadInputError(
            f"scorer checkpoint {path} {what}, this one reads {FORMAT}: retrain it with "
            f"`dcsm-cache train` (the reference's .pt goes with --scorer dcsm-paper)"
        )
    missing = [k for k in _NEEDS if k not in ckpt]
    if missing:
        raise BadInputError(f"scorer checkpoint {path} lacks {', '.join(missing)}: retrain it with `dcsm-cache train`")
    return ckpt


def load_scorer(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[DCSMScorer, dict]:
    """The scorer in eval mode on `device`, and the checkpoint's meta."""
    ckpt = read_meta(path)
    try:
        scorer = DCSMScorer(
            ScorerConfig(**ckpt["scorer_config"]), ckpt["n_tokens"], ckpt["text_len"], len(ckpt["fr_words"])
        )
        scorer.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as err:
        raise BadInputError(
            f"scorer checkpoint {path} does not fit this dcsm-cache's scorer "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160]}): retrain it"
        ) from err
    return scorer.to(device).eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}
