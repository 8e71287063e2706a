"""The scorers evaluation knows, declared once: the CLI's choices, the config schema, the rules and evaluation's
dispatch all come from this registry.

    SCORERS["dcsm"].checkpoint            # "trained": the scorer `dcsm-cache train` writes
    get_scorer("maxsim").help             # an unknown name lists the valid ones
    model, meta = get_scorer("dcsm").load("models/shapes-clip/dcsm.pt", device)   # what evaluation calls

Each entry holds what the workflow reads (its name, help and where its checkpoint comes from) and the
two functions evaluation calls (`tasks/choice.py`): `load(checkpoint, device)` -> (model, meta) and
`score(data, items, model, device, batch_size)` -> one array of K scores per item. Only the standard
library is imported here, so the Snakefile reads the registry at no cost: each function imports the
code that scores (`tasks/scoring.py`, `paper/scorer.py`, `tasks/itm.py`) when it is called. A new
scorer is one entry here, its two functions beside it, and its implementation in the room it belongs
to; `config/config.schema.yaml` lists the names, and a test holds the lists to this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import UnknownNameError

__all__ = ["CHECKPOINT_SOURCES", "SCORERS", "Scorer", "get_scorer"]

#: where a scorer's checkpoint comes from in the workflow: None (it needs none), "trained" (the scorer
#: this workflow trains per backbone), "dcsm_paper" (the file the backbone's config entry names)
CHECKPOINT_SOURCES = (None, "trained", "dcsm_paper")


def _no_model(checkpoint, device) -> tuple[None, dict]:
    return None, {}


def _score_cosine(data, items, model, device, batch_size):
    from .tasks.scoring import cosine_scores, score_items

    return score_items(data, items, cosine_scores(data), batch_size)


def _score_maxsim(data, items, model, device, batch_size):
    from .tasks.scoring import maxsim_scores, score_items

    return score_items(data, items, maxsim_scores(data), batch_size)


def _load_dcsm(checkpoint, device):
    from .tasks.scoring import load_dcsm

    return load_dcsm(checkpoint, device)


def _score_dcsm(data, items, model, device, batch_size):
    from .tasks.scoring import dcsm_scores, score_items

    return score_items(data, items, dcsm_scores(data, model, device), batch_size)


def _load_paper(checkpoint, device):
    from .paper.scorer import load_reference_checkpoint

    model = load_reference_checkpoint(checkpoint, device)
    return model, {"text_len": model.text_seq}


def _score_paper(data, items, model, device, batch_size):
    from .paper.scorer import score_items  # scores from the caption texts

    return score_items(data, items, model, device, batch_size)


def _score_itm(data, items, model, device, batch_size):
    from .tasks.itm import itm_item_scores  # re-runs BLIP on the images: ITM is not in the cache

    return itm_item_scores(data, items, device, batch_size)


@dataclass(frozen=True)
class Scorer:
    name: str
    help: str
    score: Callable = field(repr=False)  # (data, items, model, device, batch_size) -> one array of K scores per item
    checkpoint: str | None = None
    load: Callable = field(default=_no_model, repr=False)  # (checkpoint, device) -> (model, meta)
    backbone_own: bool = False  # a scorer only some backbones have, named under a backbone's `scorers`

    def __post_init__(self):
        if self.checkpoint not in CHECKPOINT_SOURCES:
            raise ValueError(
                f"scorer {self.name}: checkpoint source {self.checkpoint!r} is not one of {CHECKPOINT_SOURCES}"
            )

    @property
    def needs_checkpoint(self) -> bool:
        return self.checkpoint is not None


SCORERS: dict[str, Scorer] = {
    s.name: s
    for s in (
        Scorer("cosine", "CLIP's own score: the cosine of the pooled embeddings", _score_cosine),
        Scorer(
            "maxsim",
            "training-free token matching: each caption word's best image-token cosine, averaged",
            _score_maxsim,
        ),
        Scorer(
            "dcsm",
            "the DCSM scorer `dcsm-cache train` wrote (--checkpoint)",
            _score_dcsm,
            checkpoint="trained",
            load=_load_dcsm,
        ),
        Scorer(
            "dcsm-paper",
            "the DCSM reference's scorer and checkpoint, its quirks included (--checkpoint)",
            _score_paper,
            checkpoint="dcsm_paper",
            load=_load_paper,
        ),
        Scorer(
            "blip-itm",
            "BLIP's image-text matching head, re-run on the images (BLIP backbones only)",
            _score_itm,
            backbone_own=True,
        ),
    )
}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise UnknownNameError(f"unknown scorer {name!r}; valid: {', '.join(SCORERS)}")
    return SCORERS[name]
