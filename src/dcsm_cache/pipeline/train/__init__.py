"""Training the DCSM scorer from feature stores: the backbone never runs again.

    summary = train("stores/shapes-clip/shapes_train.zarr", "models/shapes-clip/dcsm.pt", TrainConfig(steps=2000))

loop.py (the loop), config.py (its settings), data.py (batches from the store at cache speed), loss.py (the
caption-side loss), pairs.py (the image-side term and the reference's recipe), validate.py, and
resume.py (a run's key, its resume checkpoint and the scorer file's record).
"""

from .config import TrainConfig
from .data import READERS, Batch, TrainBatches, draw_views, free_memory, on_device
from .loop import deterministic_setup, train
from .loss import batch_loss, batch_scores, contrastive_loss
from .pairs import block_loss, block_scores, pair_term, paired_scores, reference_loss, reference_step
from .resume import RESUME_FORMAT, checkpoint_meta, resume_path
from .validate import validate

__all__ = [
    "READERS",
    "RESUME_FORMAT",
    "Batch",
    "TrainBatches",
    "TrainConfig",
    "batch_loss",
    "batch_scores",
    "block_loss",
    "block_scores",
    "checkpoint_meta",
    "contrastive_loss",
    "deterministic_setup",
    "draw_views",
    "free_memory",
    "on_device",
    "pair_term",
    "paired_scores",
    "reference_loss",
    "reference_step",
    "resume_path",
    "train",
    "validate",
]
