"""The scorers evaluation knows: one registry, from which the CLI's choices, the config schema and the rules come.

    SCORERS["dcsm"].checkpoint            # "trained": the scorer `dcsm-cache train` writes
    get_scorer("maxsim").help             # an unknown name lists the valid ones

Only the standard library is imported here, so the Snakefile reads it at no cost; the code that
scores (`tasks/choice.py`, `paper/scorer.py`) is imported by evaluation when it is used. A new
scorer is one entry here and one implementation there (`tasks/choice.py`: IMPLEMENTATIONS).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownNameError

__all__ = ["CHECKPOINT_SOURCES", "SCORERS", "Scorer", "get_scorer"]

#: where a scorer's checkpoint comes from in the workflow: None (it needs none), "trained" (the scorer
#: this workflow trains per backbone), "dcsm_paper" (the file the backbone's config entry names)
CHECKPOINT_SOURCES = (None, "trained", "dcsm_paper")


@dataclass(frozen=True)
class Scorer:
    name: str
    help: str
    checkpoint: str | None = None

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
        Scorer("cosine", "CLIP's own score: the cosine of the pooled embeddings"),
        Scorer("maxsim", "training-free token matching: each caption word's best image-token cosine, averaged"),
        Scorer("dcsm", "the DCSM scorer `dcsm-cache train` wrote (--checkpoint)", "trained"),
        Scorer(
            "dcsm-paper", "the DCSM reference's scorer and checkpoint, its quirks included (--checkpoint)", "dcsm_paper"
        ),
        Scorer("blip-itm", "BLIP's image-text matching head, re-run on the images (BLIP backbones only)"),
    )
}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise UnknownNameError(f"unknown scorer {name!r}; valid: {', '.join(SCORERS)}")
    return SCORERS[name]
