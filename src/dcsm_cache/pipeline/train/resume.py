"""What identifies a training run: its resume checkpoint, and the record its scorer file keeps.

    save_resume("models/s/dcsm.pt", run_key(cfg, datas), state)   # every `checkpoint_every` steps
    state = load_resume("models/s/dcsm.pt", run_key(cfg, datas))  # None when there is none

The key hashes the config (less the settings that change how a run goes, not what it computes) and
the stores' fingerprints, so a checkpoint from another store, config or version is refused with one
line saying what to do. `checkpoint_meta` is what `save_scorer` stores beside the weights.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from ... import faults
from ...atomic import atomic_path
from ...config import config_hash
from ...errors import BadInputError
from ..dcsm import CachedDataset
from .config import TrainConfig


RESUME_FORMAT = "dcsm-cache/train-resume-v1"
# settings that change how a run goes but not what it computes: a run may resume under other values
_RUN_ONLY = ("device", "progress", "checkpoint_every", "resume")
_RESUMING = ("checkpoint_every", "resume")  # a resumed run's scorer file is the uninterrupted run's


def resume_path(out: str | os.PathLike) -> Path:
    return Path(f"{out}.resume")


def store_fingerprints(datas: list[CachedDataset]) -> str | list[str]:
    """The training stores' fingerprints (one store: its own, as a string)."""
    return one_or_list([d.store.attrs["fingerprint"] for d in datas])


def one_or_list(values: list):
    return values[0] if len(values) == 1 else values


def run_key(cfg: TrainConfig, datas: list[CachedDataset]) -> str:
    return config_hash(
        {
            **dataclasses.asdict(cfg),
            **{k: None for k in _RUN_ONLY},
            "store": store_fingerprints(datas),
            "store_views": one_or_list([d.store.views for d in datas]),
        }
    )


def save_resume(out, key: str, state: dict) -> None:
    with atomic_path(resume_path(out)) as tmp, open(tmp, "wb") as f:
        torch.save({"format": RESUME_FORMAT, "key": key, **state}, f)
        f.flush()
        faults.point("train.checkpoint")


def load_resume(out, key: str) -> dict | None:
    path = resume_path(out)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise BadInputError(
            f"resume checkpoint {path} cannot be read ({type(err).__name__}): delete it to start over"
        ) from err
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT or state.get("key") != key:
        raise BadInputError(
            f"resume checkpoint {path} is from another store, config or dcsm-cache version: "
            f"delete it to start over, or resume with the settings it was made with"
        )
    return state


def checkpoint_meta(datas: CachedDataset | list[CachedDataset], cfg: TrainConfig, summary: dict) -> dict:
    """What the scorer was trained on and with, for `scorer_file.save_scorer` (several stores: each one's
    fingerprint, in order)."""
    datas = datas if isinstance(datas, list) else [datas]
    data = datas[0]
    a = data.store.attrs
    return {
        "scorer_config": dataclasses.asdict(cfg.scorer),
        "train_config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "scorer" and k not in _RESUMING},
        "config_hash": config_hash({k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RESUMING}),
        "n_tokens": data.n_tokens,
        "text_len": cfg.text_len,
        "fr_words": list(data.fr_words),
        "backbone": a["backbone"],
        "backbone_id": a["backbone_id"],
        "identity": a["identity"],
        "store_fingerprint": store_fingerprints(datas),
        "summary": summary,
    }
