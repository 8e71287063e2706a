"""The item form: every dataset becomes images, deduplicated captions and items.

    b = DatasetBuilder("whatsup_a", root="data/whatsup")
    b.add("controlled_images/mug_above_table.jpeg", ["A mug above a table", "A mug below a table"])
    ds = b.build(); write_manifest(ds, "manifests/whatsup_a.json")

A benchmark loader, the shapes world and a user's own folder all produce a `Dataset`; extraction,
training and evaluation only ever see this form. The manifest on disk is JSON with a fingerprint
(hash of its content and of each image file's size and modification time), which the feature store
records so that a changed dataset is never scored against a stale cache. It is written one record a
line in one streaming pass and read back a chunk of lines at a time, so a million-item manifest
takes seconds. An image may be a member of a tar shard (`ImageRef.member`, read by `formats/shards.py`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from ..atomic import atomic_path
from ..errors import BadInputError, InputNotFoundError

MANIFEST_SCHEMA = 1
METRICS = ("argmax", "strict")  # argmax: ties go to the first candidate; strict: correct must beat all


@dataclass(frozen=True)
class ImageRef:
    """An image file (relative to the dataset root, or absolute) and an optional (x, y, w, h) crop.

    With `member`, the image is that file inside the uncompressed tar shard at `path` (webdataset).
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


def _content(ds: Dataset) -> dict:
    """The manifest as one JSON object (what the fingerprint hashes, sorted: json.dumps(..., sort_keys=True))."""
    return {
        "schema": MANIFEST_SCHEMA,
        "name": ds.name,
        "root": ds.root,
        "metric": ds.metric,
        "images": [{"path": r.path, **_extras(r)} for r in ds.images],
        "captions": list(ds.captions),
        "items": [
            {
                "image": it.image,
                "candidates": list(it.candidates),
                "correct": it.correct,
                "subset": it.subset,
                **({"tags": dict(it.tags)} if it.tags else {}),
                **({"opposite": it.opposite} if it.opposite is not None else {}),
            }
            for it in ds.items
        ],
    }


# Large manifests are encoded a record at a time, with the same bytes json.dumps(_content(ds),
# sort_keys=True) would give, so the fingerprint is the same as it always was.
_esc = json.encoder.encode_basestring_ascii
_encode = json.JSONEncoder(sort_keys=True).encode
_CHUNK = 8192
_HEAD = f'{{"schema": {MANIFEST_SCHEMA}, "fingerprint": "'  # the fingerprint is patched in last
_REWRITE = (
    "rewrite it with `dcsm-cache items` (one written by hand: `dcsm-cache items manifest --root DIR --set file=FILE`)"
)


def _extras(r: ImageRef) -> dict:
    """An image record's optional fields, only where set (so older manifests and fingerprints are unchanged)."""
    return {
        **({"box": list(r.box)} if r.box else {}),
        **({"member": r.member} if r.member else {}),
        **({"canvas": r.canvas} if r.canvas else {}),
    }


def _image_json(r: ImageRef) -> str:
    if r.box is None and r.member is None and r.canvas is None:
        return '{"path": ' + _esc(r.path) + "}"
    return _encode({"path": r.path, **_extras(r)})


def _item_json(it: Item) -> str:
    tags = ', "tags": ' + _encode(dict(it.tags)) if it.tags else ""
    opposite = f'"opposite": {it.opposite}, ' if it.opposite is not None else ""  # keys sorted, as json.dumps
    return (
        f'{{"candidates": [{", ".join(map(str, it.candidates))}], "correct": {it.correct}, '
        f'"image": {it.image}, {opposite}"subset": {_esc(it.subset)}{tags}}}'
    )


def _digest(ds: Dataset, out=None) -> str:
    """The fingerprint; with `out`, also write the sections one record per line to that binary file."""
    h = hashlib.sha256()
    sections = (
        ("captions", map(_esc, ds.captions)),
        ("images", map(_image_json, ds.images)),
        ("items", map(_item_json, ds.items)),
    )
    for n, (key, records) in enumerate(sections):
        h.update(f'{", " if n else "{"}"{key}": ['.encode())
        if out:
            out.write(f'"{key}": [\n'.encode())
        first = True
        while chunk := list(islice(records, _CHUNK)):
            h.update(("" if first else ", ").encode() + ", ".join(chunk).encode())
            if out:
                out.write((("" if first else ",\n") + ",\n".join(chunk)).encode())
            first = False
        h.update(b"]")
        if out:
            out.write((("\n" if not first else "") + ("],\n" if key != "items" else "]}\n")).encode())
    h.update(
        f', "metric": {_esc(ds.metric)}, "name": {_esc(ds.name)}, "root": {_esc(ds.root)}, '
        f'"schema": {MANIFEST_SCHEMA}}}'.encode()
    )
    last, stamp = None, ""
    for start in range(0, len(ds.images), _CHUNK):
        parts = []
        for row, ref in enumerate(ds.images[start : start + _CHUNK], start):
            path = os.path.join(ds.root, ref.path)
            if path != last:  # rows of one tar shard share a file: stat it once
                try:
                    st = os.stat(path)
                    stamp = f"{st.st_size}:{st.st_mtime_ns}"
                except FileNotFoundError:
                    stamp = "missing"
                last = path
            parts.append(f"{row}:{stamp};")
        h.update("".join(parts).encode())
    return h.hexdigest()[:16]


def fingerprint(ds: Dataset) -> str:
    """sha256 of the manifest content and of every image file's size and modification time."""
    return _digest(ds)


def write_manifest(ds: Dataset, path: str | os.PathLike) -> str:
    """Write the manifest atomically, one record per line, in one streaming pass; returns its fingerprint."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(
            (
                _HEAD + "0" * 16 + f'", "name": {_esc(ds.name)}, "root": {_esc(ds.root)}, '
                f'"metric": {_esc(ds.metric)},\n'
            ).encode()
        )
        fp = _digest(ds, f)
        f.seek(len(_HEAD))
        f.write(fp.encode())
    return fp


def _head(f) -> dict | None:
    """The first line of a manifest in write_manifest's layout, as a dict; None for any other layout."""
    line = f.readline()
    if not (line.startswith(_HEAD) and line.endswith(",\n")):
        return None
    try:
        return json.loads(line[:-2] + "}")
    except json.JSONDecodeError:
        return None


def manifest_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint recorded in a manifest when it was written (what stores are checked against)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = _head(f)
            if head is None:  # another layout (an older manifest): decode it whole
                f.seek(0)
                head = json.load(f)
            return head["fingerprint"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise BadInputError(f"{path} has no recorded fingerprint: {_REWRITE}") from err


def _image_ref(r: dict) -> ImageRef:
    return ImageRef(r["path"], tuple(r["box"]) if r.get("box") else None, r.get("member"), r.get("canvas"))


def _item(r: dict) -> Item:
    return Item(r["image"], tuple(r["candidates"]), r["correct"], r["subset"], r.get("tags", {}), r.get("opposite"))


def _sections(f) -> dict | None:
    """Each section of write_manifest's layout, decoded a chunk of lines at a time; None if the layout differs."""
    out = {}
    for key, make in (("captions", str), ("images", _image_ref), ("items", _item)):
        if f.readline() != f'"{key}": [\n':
            return None
        rows, lines, end = [], [], "],\n" if key != "items" else "]}\n"
        for line in f:
            if line == end:
                break
            lines.append(line)
            if len(lines) == _CHUNK:
                rows += map(make, json.loads("[" + "".join(lines).rstrip().rstrip(",") + "]"))
                lines = []
        else:
            return None
        rows += map(make, json.loads("[" + "".join(lines).rstrip().rstrip(",") + "]"))
        out[key] = tuple(rows)
    return out


def read_manifest(path: str | os.PathLike) -> Dataset:
    """The Dataset of a manifest; write_manifest's layout is read a chunk of lines at a time."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no manifest at {path}: run `dcsm-cache items` for that dataset first")
    try:
        with open(path, encoding="utf-8") as f:
            doc = _head(f)
            try:
                sections = _sections(f) if doc else None
            except json.JSONDecodeError:  # edited by hand since: decode it whole below
                sections = None
            if sections is None:  # another layout (an older manifest): decode it whole
                f.seek(0)
                doc = json.load(f)
                sections = {
                    "captions": tuple(doc["captions"]),
                    "images": tuple(map(_image_ref, doc["images"])),
                    "items": tuple(map(_item, doc["items"])),
                }
        return Dataset(name=doc["name"], root=doc["root"], metric=doc.get("metric", "argmax"), **sections)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
        raise BadInputError(f"{path} is not a dcsm-cache manifest ({err}): {_REWRITE}") from err


@contextmanager
def _opened(ds: Dataset, row: int):
    """(the image file at `row` opened lazily by PIL, its name for errors); missing or unreadable: our errors."""
    from PIL import Image, UnidentifiedImageError

    ref, path = ds.images[row], ds.image_path(row)
    source = path
    if ref.member:  # its own errors name the shard and the member
        from .formats.shards import read_member

        source, path = io.BytesIO(read_member(path, ref.member)), f"{path}:{ref.member}"
    try:
        im = Image.open(source)
    except FileNotFoundError as err:
        raise InputNotFoundError(f"image {path} is missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise BadInputError(f"image {path} cannot be read ({err.__class__.__name__})") from err
    with im:
        yield im, path


def _crop_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """An (x, y, w, h) box as PIL's (left, upper, right, lower) in whole pixels, rounded as PIL rounds."""
    x, y, w, h = box
    return round(x), round(y), round(x + w), round(y + h)


def image_size(ds: Dataset, row: int) -> tuple[int, int]:
    """(width, height) of `open_image(ds, row)`, from the file's header alone: nothing is decoded."""
    ref = ds.images[row]
    if ref.canvas:
        return ref.canvas, ref.canvas
    if ref.box:
        left, upper, right, lower = _crop_box(ref.box)
        return right - left, lower - upper
    with _opened(ds, row) as (im, _):
        return im.size


def open_image(ds: Dataset, row: int):
    """The image at `row` as RGB PIL, cropped to its box; a missing or corrupt file is a BadInputError.

    A member of a tar shard is read through `shards.read_member` (each shard opened once per process)."""
    ref = ds.images[row]
    with _opened(ds, row) as (im, path):
        try:
            im = im.convert("RGB")
        except (OSError, SyntaxError) as err:
            raise BadInputError(f"image {path} cannot be read ({err.__class__.__name__})") from err
    if ref.box:
        im = im.crop(_crop_box(ref.box))
    if ref.canvas:
        import numpy as np
        from PIL import Image

        px = np.asarray(im)
        ring = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
        canvas = Image.new("RGB", (ref.canvas, ref.canvas), tuple(int(v) for v in np.median(ring, axis=0)))
        canvas.paste(im, ((ref.canvas - im.width) // 2, (ref.canvas - im.height) // 2))
        im = canvas
    return im
