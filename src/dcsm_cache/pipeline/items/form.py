"""The item form: every dataset becomes images, deduplicated captions and items.

    b = DatasetBuilder("whatsup_a", root="data/whatsup")
    b.add("controlled_images/mug_above_table.jpeg", ["A mug above a table", "A mug below a table"])
    ds = b.build()

A benchmark loader, the shapes world and a user's own folder all produce a `Dataset`; extraction,
training and evaluation only ever see this form. An image may be a member of a tar shard
(`ImageRef.member`, read by `formats/shards.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import BadInputError

METRICS = ("argmax", "strict")  # argmax: ties go to the first candidate; strict: correct must beat all


@dataclass(frozen=True)
class ImageRef:
    """An image file (relative to the dataset root, or absolute) and an optional (x, y, w, h) crop.

    With `member`, the image is that file inside the tar shard at `path` (webdataset; plain or gzip'd).
    With `canvas`, the crop is pasted, unscaled and centred, on a square of that side filled with the
    crop's background (the median of its border pixels), so a cut-out object keeps its native scale.
    """

    path: str
    box: tuple[float, float, float, float] | None = None
    member: str | None = None
    canvas: int | None = None


@dataclass(frozen=True)
class Item:
    """One image, its candidate caption rows, which candidate is right, and where it is reported.

    `opposite` is the image row of the item's opposite image (training sets with image-side hard
    negatives: the same objects with the attributes swapped, the relation flipped, the negated object
    present), which its second candidate describes; None where there is none.
    """

    image: int
    candidates: tuple[int, ...]
    correct: int = 0
    subset: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    opposite: int | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    root: str
    images: tuple[ImageRef, ...]
    captions: tuple[str, ...]
    items: tuple[Item, ...]
    metric: str = "argmax"

    def image_path(self, row: int) -> Path:
        return Path(self.root, self.images[row].path)

    @property
    def subsets(self) -> list[str]:
        return sorted({it.subset for it in self.items})


class DatasetBuilder:
    """Collects items, storing each distinct image and each distinct caption once."""

    def __init__(self, name: str, root: str | os.PathLike, metric: str = "argmax"):
        if metric not in METRICS:
            raise BadInputError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
        self.name, self.root, self.metric = name, str(root), metric
        self._images: dict[ImageRef, int] = {}
        self._captions: dict[str, int] = {}
        self._items: list[Item] = []

    def add(
        self,
        image: str | ImageRef,
        captions: Sequence[str],
        correct: int = 0,
        subset: str = "",
        opposite: str | ImageRef | None = None,
        **tags: str,
    ) -> None:
        if not 0 <= correct < len(captions):
            raise BadInputError(f"{self.name}: correct index {correct} outside {len(captions)} candidates")
        img = self._image(image)
        opp = None if opposite is None else self._image(opposite)
        rows = tuple(self._captions.setdefault(c, len(self._captions)) for c in captions)
        self._items.append(Item(img, rows, correct, subset, dict(tags), opp))

    def _image(self, image: str | ImageRef) -> int:
        ref = image if isinstance(image, ImageRef) else ImageRef(str(image))
        return self._images.setdefault(ref, len(self._images))

    def build(self) -> Dataset:
        if not self._items:
            raise BadInputError(f"{self.name}: no items found under {self.root}")
        return Dataset(
            self.name, self.root, tuple(self._images), tuple(self._captions), tuple(self._items), self.metric
        )
