"""The settings of a training run: one frozen dataclass holding every default, checked on construction.

    cfg = TrainConfig(steps=2000, batch_size=32, scorer=ScorerConfig(residual=False))
    train("stores/shapes-clip/shapes_train.zarr", "models/shapes-clip/dcsm.pt", cfg)   # loop.py

Its own module so that the loop (`loop.py`), the loss (`loss.py`) and a run's key (`resume.py`) all
read it without importing one another; `loop.py` and the package re-export it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import at_least, one_of, require
from ..dcsm import ScorerConfig
from .data import READERS

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 1e-4
    text_len: int = 24
    buffer_chunks: int = 64
    views: bool = True  # draw one of a store's K cached views per image per step (data.draw_views); False: view 0 only
    reader: str = "auto"  # load: image tokens in memory; stream: buffer_chunks chunks at a time; auto (data.py)
    eval_every: int = 500
    hard_negative_weight: float = 1.0
    pair_weight: float = 1.0  # weight of the image-side term (items with an opposite image; pairs.py); 0: off
    loss: str = "default"  # "reference": the DCSM reference's recipe alone (pairs.reference_step, Adam, fixed lr)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    checkpoint_every: int = 200  # steps between resume checkpoints (OUT.resume); 0: none
    resume: bool = False  # continue from OUT.resume if it is there
    threads: int = 0  # CPU threads for training; 0: min(4, cores); fixed, so that results repeat
    deterministic: bool = False  # on CUDA: deterministic kernels (slower); the CPU always runs deterministically
    scorer: ScorerConfig = field(default_factory=ScorerConfig)

    def __post_init__(self):
        at_least(
            "train",
            steps=(self.steps, 1),
            batch_size=(self.batch_size, 2),
            text_len=(self.text_len, 1),
            buffer_chunks=(self.buffer_chunks, 1),
            eval_every=(self.eval_every, 1),
            hard_negative_weight=(self.hard_negative_weight, 0.0),
            pair_weight=(self.pair_weight, 0.0),
            checkpoint_every=(self.checkpoint_every, 0),
            threads=(self.threads, 0),
        )
        one_of("train", "loss", self.loss, ("default", "reference"))
        one_of("train", "reader", self.reader, READERS)
        require(self.lr > 0, "train", f"lr={self.lr} must be positive")
        require(0 <= self.weight_decay, "train", f"weight_decay={self.weight_decay} must not be negative")
