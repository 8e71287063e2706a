"""The item form: every dataset becomes images, deduplicated captions and items.

    b = DatasetBuilder("whatsup_a", root="data/whatsup")
    b.add("controlled_images/mug_above_table.jpeg", ["A mug above a table", "A mug below a table"])
    ds = b.build(); write_manifest(ds, "manifests/whatsup_a.json")

A benchmark loader, the shapes world and a user's own folder all produce a `Dataset`; extraction,
training and evaluation only ever see this form. The manifest on disk is JSON with a fingerprint
(hash of its content and of each image file's size and modification time), which the feature store
records so that a changed dataset is never scored against a stale cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..atomic import write_json
from ..errors import BadInputError, InputNotFoundError

MANIFEST_SCHEMA = 1
METRICS = ("argmax", "strict")  # argmax: ties go to the first candidate; strict: correct must beat all


@dataclass(frozen=True)
class ImageRef:
    """An image file (relative to the dataset root, or absolute), an optional (x, y, w, h) crop, and an
    optional canvas: the crop pasted, unscaled and centred, on a square of that side filled with the
    crop's background (the median of its border pixels), so a cut-out object keeps its native scale."""

    path: str
    box: tuple[float, float, float, float] | None = None
    canvas: int | None = None


@dataclass(frozen=True)
class Item:
    """One image, its candidate caption rows, which candidate is right, and where it is reported."""

    image: int
    candidates: tuple[int, ...]
    correct: int = 0
    subset: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


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

    def add(self, image: str | ImageRef, captions: Sequence[str], correct: int = 0,
            subset: str = "", **tags: str) -> None:
        ref = image if isinstance(image, ImageRef) else ImageRef(str(image))
        if not 0 <= correct < len(captions):
            raise BadInputError(f"{self.name}: correct index {correct} outside {len(captions)} candidates")
        img = self._images.setdefault(ref, len(self._images))
        rows = tuple(self._captions.setdefault(c, len(self._captions)) for c in captions)
        self._items.append(Item(img, rows, correct, subset, dict(tags)))

    def build(self) -> Dataset:
        if not self._items:
            raise BadInputError(f"{self.name}: no items found under {self.root}")
        return Dataset(self.name, self.root, tuple(self._images), tuple(self._captions),
                       tuple(self._items), self.metric)


def _content(ds: Dataset) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "name": ds.name,
        "root": ds.root,
        "metric": ds.metric,
        "images": [{"path": r.path, **({"box": list(r.box)} if r.box else {}),
                    **({"canvas": r.canvas} if r.canvas else {})} for r in ds.images],
        "captions": list(ds.captions),
        "items": [{"image": it.image, "candidates": list(it.candidates), "correct": it.correct,
                   "subset": it.subset, **({"tags": dict(it.tags)} if it.tags else {})}
                  for it in ds.items],
    }


def fingerprint(ds: Dataset) -> str:
    """sha256 of the manifest content and of every image file's size and modification time."""
    h = hashlib.sha256(json.dumps(_content(ds), sort_keys=True).encode())
    for row in range(len(ds.images)):
        try:
            st = ds.image_path(row).stat()
            h.update(f"{row}:{st.st_size}:{st.st_mtime_ns};".encode())
        except FileNotFoundError:
            h.update(f"{row}:missing;".encode())
    return h.hexdigest()[:16]


def write_manifest(ds: Dataset, path: str | os.PathLike) -> str:
    """Write the manifest atomically; returns its fingerprint."""
    doc = _content(ds) | {"fingerprint": fingerprint(ds)}
    write_json(doc, path)
    return doc["fingerprint"]


def manifest_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint recorded in a manifest when it was written (what stores are checked against)."""
    try:
        return json.loads(Path(path).read_text())["fingerprint"]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise BadInputError(f"{path} has no recorded fingerprint: rewrite it with `dcsm-cache items`") from err


def read_manifest(path: str | os.PathLike) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no manifest at {path}: run `dcsm-cache items` for that dataset first")
    try:
        doc = json.loads(path.read_text())
        return Dataset(
            name=doc["name"], root=doc["root"], metric=doc.get("metric", "argmax"),
            images=tuple(ImageRef(r["path"], tuple(r["box"]) if r.get("box") else None, r.get("canvas"))
                         for r in doc["images"]),
            captions=tuple(doc["captions"]),
            items=tuple(Item(it["image"], tuple(it["candidates"]), it["correct"], it["subset"],
                             it.get("tags", {})) for it in doc["items"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise BadInputError(f"{path} is not a dcsm-cache manifest ({err}): rewrite it with `dcsm-cache items`") from err


def open_image(ds: Dataset, row: int):
    """The image at `row` as RGB PIL, cropped to its box; a missing or corrupt file is a BadInputError."""
    from PIL import Image, UnidentifiedImageError

    ref, path = ds.images[row], ds.image_path(row)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError as err:
        raise InputNotFoundError(f"image {path} is missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise BadInputError(f"image {path} cannot be read ({err.__class__.__name__})") from err
    if ref.box:
        x, y, w, h = ref.box
        im = im.crop((x, y, x + w, y + h))
    if ref.canvas:
        import numpy as np
        px = np.asarray(im)
        ring = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
        canvas = Image.new("RGB", (ref.canvas, ref.canvas), tuple(int(v) for v in np.median(ring, axis=0)))
        canvas.paste(im, ((ref.canvas - im.width) // 2, (ref.canvas - im.height) // 2))
        im = canvas
    return im
