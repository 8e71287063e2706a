"""Extraction: run a backbone once over a dataset and fill its Zarr feature store.

    extract("manifests/shapes_spatial.json", "shapes-clip@models/shapes-clip.pt",
            "stores/shapes-clip/shapes_spatial.zarr", ExtractConfig(batch_size=128))

run.py (the stage: text, then images, part by part), feeding.py (decoding ahead of the model in
DataLoader workers, writing behind it in a thread), views.py (cached augmented views).
"""

from .feeding import StoreWriter, auto_workers, image_batches
from .run import BAD_IMAGE, TEXT_PADDINGS, ExtractConfig, extract, on_grid, tokenizer_record
from .views import AUGMENTATION, SaltAndPepper, ViewAugment, view_seed

__all__ = [
    "AUGMENTATION",
    "BAD_IMAGE",
    "TEXT_PADDINGS",
    "ExtractConfig",
    "SaltAndPepper",
    "StoreWriter",
    "ViewAugment",
    "auto_workers",
    "extract",
    "image_batches",
    "on_grid",
    "tokenizer_record",
    "view_seed",
]
