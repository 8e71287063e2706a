"""Pretraining's images through open_clip's train transform, decoded in parallel with the same random crops.

    images = train_images(ds, rows, preprocess, workers=2)   # [N, C, H, W] float16

What `torch.stack([preprocess(open_image(ds, r)) for r in rows]).half()` gives, bit for bit, with
torch's global generator left where that loop leaves it. The transform's `RandomResizedCrop` draws
its crop from the global generator, one image after another, so the loop could not simply be
spread over processes: here the crops are drawn first, in order, from each image's size (read from
its header), and the decoding, cropping and the rest of the transform run in DataLoader workers.
A transform of another shape (another random step, or none) runs in the loop as before.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..._openclip import open_clip  # noqa: F401  (first: torchvision behind its one guard)
from torchvision.transforms import Compose, Normalize, RandomResizedCrop, ToTensor
from torchvision.transforms import functional as TF

from ...errors import DcsmCacheError
from ...progress import tqdm
from ..items import Dataset, image_size, open_image

# what may follow the crop: steps that draw nothing at random (open_clip's and torchvision's)
_DETERMINISTIC = (ToTensor, Normalize)
_DETERMINISTIC_NAMES = ("MaybeConvertMode", "MaybeToTensor", "_convert_to_rgb")


def train_images(
    ds: Dataset, rows: list[int], preprocess, workers: int, progress: bool = False, batch: int = 256
) -> torch.Tensor:
    """[len(rows), C, H, W] float16: each row's image through `preprocess` (module doc); `batch` images per
    worker task (fewer than two batches: the loop)."""
    split = _split(preprocess)
    if split is None or workers < 1 or len(rows) < 2 * batch:
        loop = tqdm(rows, desc="load", disable=not progress)
        return torch.stack([preprocess(open_image(ds, r)) for r in loop]).half()
    crop, rest = split
    boxes = []
    for r in tqdm(rows, desc="crops", disable=not progress):  # in order: the loop's draws from the global generator
        width, height = image_size(ds, r)
        boxes.append(crop.get_params(torch.empty(()).expand(1, height, width), crop.scale, crop.ratio))
    loader = DataLoader(
        _Cropped(ds, rows, boxes, crop, rest),
        batch_size=batch,
        num_workers=workers,
        collate_fn=_collate,
        generator=torch.Generator(),  # (its workers' seeds: the global generator stays where the loop leaves it)
    )
    out = []
    for pixels, error in tqdm(loader, desc="load", total=len(loader), disable=not progress):
        if error is not None:
            raise error
        out.append(pixels)
    return torch.cat(out)


def _split(preprocess) -> tuple[RandomResizedCrop, Compose] | None:
    """(the crop, the steps after it) for a Compose that starts with the only random step; else None."""
    steps = getattr(preprocess, "transforms", None)
    if not isinstance(preprocess, Compose) or not steps or type(steps[0]) is not RandomResizedCrop:
        return None
    rest = steps[1:]
    if not all(isinstance(t, _DETERMINISTIC) or _name(t) in _DETERMINISTIC_NAMES for t in rest):
        return None
    return steps[0], Compose(rest)


def _name(step) -> str:
    return getattr(step, "__name__", type(step).__name__)


class _Cropped(TorchDataset):
    """Row k decoded, cropped at its drawn box and through the rest of the transform; or its error."""

    def __init__(self, ds: Dataset, rows: list[int], boxes: list, crop: RandomResizedCrop, rest: Compose):
        self.ds, self.rows, self.boxes, self.crop, self.rest = ds, rows, boxes, crop, rest

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        try:
            image = open_image(self.ds, self.rows[k])
        except DcsmCacheError as err:  # a missing or unreadable image: raised in the main process, as the loop would
            return None, err
        c = self.crop
        cropped = TF.resized_crop(image, *self.boxes[k], c.size, c.interpolation, antialias=c.antialias)
        return self.rest(cropped).half(), None


def _collate(items):
    errors = [e for _, e in items if e is not None]
    return (None, errors[0]) if errors else (torch.stack([x for x, _ in items]), None)
