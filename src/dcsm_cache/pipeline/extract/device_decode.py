"""Decoding JPEGs on the model's device: the workers only read the files, the device decodes a batch at once.

    decode = DeviceDecode(bb.preprocess, torch.device("cuda"))     # extract --set decode=device
    pixels, valid, failed = decode(rows, (3, 224, 224))   # per row: JPEG bytes, the workers' pixels, or None

Beside a GPU, decoding and resizing images on the CPU cores is what limits extraction. With
`decode="device"` the DataLoader workers read each JPEG's bytes and nothing more (an image in another
format, or one whose bytes do not start as a JPEG's, is decoded by the worker as usual), and the
main thread decodes the batch's JPEGs in one call (`torchvision.io.decode_jpeg`: nvJPEG on CUDA,
libjpeg-turbo on the CPU) and runs the model's preprocessing on them as tensor operations on the
device (`tensor_steps`: resize and centre crop on the 8-bit image, scaling to [0, 1], normalising).

The pixels are not the workers' to the bit. torch's antialiased bicubic resize of an 8-bit image
rounds differently from PIL's: on the same decoded JPEGs (smooth colour fields, 256 and 500 px,
ViT-B-16's preprocessing) they differ by one 8-bit level at most, 0.0026 on average in the model's
normalised units (0.015 at most; `tests/test_device_decode.py` checks the bound). nvJPEG's inverse
DCT is not libjpeg-turbo's either, which adds its own difference: `bench_extract.py --decode device`
records the whole path's against the workers' on the GPU it runs on. Needs CUDA (on the CPU the
workers decode in parallel already). A JPEG the device cannot decode is decoded again alone, so one
bad file marks only its own row invalid.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..._openclip import open_clip  # noqa: F401  (first: torchvision behind its one guard)
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import CenterCrop, Normalize, Resize, ToTensor
from torchvision.transforms import functional as TF

from ...errors import ConfigError

__all__ = ["DeviceDecode", "is_jpeg", "tensor_steps"]

_RGB_STEPS = ("MaybeConvertMode", "_convert_to_rgb")  # the decoder gives RGB already
_TO_TENSOR = ("MaybeToTensor",)


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def tensor_steps(preprocess) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The steps of a torchvision `Compose` as functions of a [C, H, W] uint8 tensor; a step that has no
    tensor form is a ConfigError naming it."""
    steps = []
    for t in getattr(preprocess, "transforms", [preprocess]):
        name = getattr(t, "__name__", type(t).__name__)
        if isinstance(t, Resize):
            steps.append(lambda x, t=t: TF.resize(x, t.size, t.interpolation, t.max_size, antialias=True))
        elif isinstance(t, CenterCrop):
            steps.append(lambda x, t=t: TF.center_crop(x, t.size))
        elif isinstance(t, ToTensor) or name in _TO_TENSOR:
            steps.append(lambda x: x.float().div_(255))
        elif isinstance(t, Normalize):
            steps.append(lambda x, t=t: TF.normalize(x, t.mean, t.std))
        elif name not in _RGB_STEPS:
            raise ConfigError(
                f"extract: decode=device cannot run the preprocessing step {name} on the device; "
                f"use decode=workers for this backbone"
            )
    return steps


class DeviceDecode:
    """A batch's rows (JPEG bytes as a uint8 tensor, or pixels, or None for an unreadable image) -> pixels
    [B, C, H, W] on `device`, valid [B], and (row in the batch, why) for each JPEG the device could not decode."""

    def __init__(self, preprocess, device: torch.device, decoder: Callable = decode_jpeg):
        self.steps, self.device, self.decoder = tensor_steps(preprocess), device, decoder

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            image = step(image)
        return image

    def __call__(self, rows: list, shape: tuple[int, ...]) -> tuple[torch.Tensor, list[bool], list[tuple[int, str]]]:
        jpegs = [i for i, r in enumerate(rows) if isinstance(r, torch.Tensor) and r.ndim == 1]
        decoded: dict[int, torch.Tensor | None] = {}
        failed: list[tuple[int, str]] = []
        if jpegs:
            try:
                images = self.decoder([rows[i] for i in jpegs], mode=ImageReadMode.RGB, device=self.device)
                decoded = dict(zip(jpegs, images))
            except RuntimeError:  # one bad file fails the batch's call: each alone, to find it
                for i in jpegs:
                    try:
                        decoded[i] = self.decoder(rows[i], mode=ImageReadMode.RGB, device=self.device)
                    except RuntimeError as err:
                        decoded[i] = None
                        failed.append((i, f"not a JPEG the {self.device.type} decodes: {str(err).splitlines()[0]}"))
        out = torch.zeros((len(rows), *shape), device=self.device)
        valid = []
        for i, r in enumerate(rows):
            image = decoded.get(i, r)
            if image is None:
                valid.append(False)
                continue
            out[i] = self._one(image) if i in decoded else image.to(self.device, non_blocking=True)
            valid.append(True)
        return out, valid, failed
