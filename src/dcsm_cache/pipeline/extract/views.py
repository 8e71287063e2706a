"""Cached augmented views: the DCSM reference's augmentation, seeded per (seed, image row, view).

    augment = ViewAugment(views=4, size=(224, 224), seed=0)
    extra = augment(pil_image, row=12)     # views 1..3 of image 12 as PIL images, the same bytes for the same seed

The reference trains on RandomResizedCrop(224, scale 0.96-1), RandomPerspective(0.05, p=0.2), a
rotation of up to ±4° and salt-and-pepper noise on 2% of the pixels, drawn afresh every step. A cache
stores K views per image instead (`extract --set views=K`): view 0 is the plain preprocessing that
evaluation reads, views 1..K-1 are augmented with torchvision's transforms (v2) in the DataLoader
workers, each view from its own generator seeded by (seed, row, view), so the bytes do not depend on
the batch size, the workers or the parts. Training draws one of the K views per image per step
(`train.data.draw_views`), from (training seed, step), so a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["AUGMENTATION", "SaltAndPepper", "ViewAugment", "view_seed"]

# The reference's augmentation (docs/benchmarks.md §4, "Batch construction and loss"); the crop takes the
# backbone's input size.
AUGMENTATION = {"crop_scale": (0.96, 1.0), "perspective": 0.05, "perspective_p": 0.2, "degrees": 4.0, "noise": 0.02}


class SaltAndPepper(nn.Module):
    """Sets a fraction `amount` of the pixels of a uint8 image [C, H, W] to black or white (half each),
    drawn from the global torch generator as torchvision's random transforms are."""

    def __init__(self, amount: float):
        super().__init__()
        self.amount = amount

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        r = torch.rand(image.shape[-2:])
        out = image.clone()
        out[..., r < self.amount / 2] = 0
        out[..., (r >= self.amount / 2) & (r < self.amount)] = 255
        return out

    def extra_repr(self) -> str:
        return f"amount={self.amount}"


def view_seed(seed: int, row: int, view: int) -> int:
    """The torch seed of one view of one image (independent streams for every (seed, row, view))."""
    return int(np.random.SeedSequence([seed, row, view]).generate_state(1, np.uint64)[0] >> 1)


class ViewAugment:
    """Views 1..views-1 of an image, each a PIL image of `size` (the backbone's input), for its preprocessing."""

    def __init__(self, views: int, size: tuple[int, int], seed: int = 0):
        # torchvision here, not at import: training (draw_views) never loads open_clip or torchvision
        from torchvision.transforms import v2

        from ..._openclip import open_clip  # noqa: F401  (the torchvision guard, before torchvision)

        a = AUGMENTATION
        self.views, self.seed = views, seed
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=a["crop_scale"], antialias=True),
                v2.RandomPerspective(distortion_scale=a["perspective"], p=a["perspective_p"]),
                v2.RandomRotation(a["degrees"]),
                v2.PILToTensor(),
                SaltAndPepper(a["noise"]),
                v2.ToPILImage(),
            ]
        )

    def __call__(self, image, row: int) -> list:
        out = []
        for view in range(1, self.views):
            with torch.random.fork_rng(devices=[]):  # the caller's generator is left as it was
                torch.manual_seed(view_seed(self.seed, row, view))
                out.append(self.transform(image))
        return out

    def record(self) -> dict:
        """What the store's attrs say about its views (a change of any of it is another store)."""
        return {"views": self.views, "seed": self.seed, "transform": repr(self.transform)}
