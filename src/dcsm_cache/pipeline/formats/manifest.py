"""A manifest in the item form written by hand (or by another tool): checked, deduplicated, then fingerprinted.

    ds = load("data/mine", file="my.json")  # dcsm-cache items manifest --root data/mine --set file=my.json --out m.json

The file is one JSON object of the form `write_manifest` writes, without a fingerprint:

    {"name": "mine", "metric": "argmax",
     "images": ["a.jpg", {"path": "b.jpg", "box": [x, y, w, h]}, {"path": "00000.tar", "member": "0001.jpg"}],
     "captions": ["a red cube", "a blue cube"],
     "items": [{"image": 0, "candidates": [0, 1], "correct": 0, "subset": "colour", "tags": {"family": "binding"}}]}

Image paths are relative to `root` (a `root` field, if the file has one, must name that folder; in a
manifest `write_manifest` wrote, schema 2, it is relative to the file's own folder).
`name` (default: the file's stem; the option `name` overrides both), `metric`, `correct` (0),
`subset` (""), `tags` and `opposite` (the image row of the item's opposite image) may be left out.
Checked: every index in range, every image an item uses present (a shard holding its member), no
unknown field. Equal captions and images become one row each and unused ones are dropped. Any
problem is a one-line error naming the item, image or caption.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import MANIFEST_SCHEMA, METRICS, Dataset, DatasetBuilder, ImageRef
from .shards import has_member

TOP = {"schema", "fingerprint", "name", "root", "metric", "images", "captions", "items"}
ITEM = {"image", "candidates", "correct", "subset", "tags", "opposite"}
RESERVED_TAGS = ("image", "captions", "correct", "subset", "opposite")  # DatasetBuilder.add's own arguments


def expected(file: str | None = None, **_) -> tuple[str, ...]:
    """The manifest file (or the root, when none is named): what the workflow checks before it plans it."""
    return (file,) if file else ("",)


def load(root: str | os.PathLike, file: str | None = None, name: str | None = None) -> Dataset:
    """The checked items of the hand-written manifest `file` under `root` (see the module docstring)."""
    if not file:
        raise ConfigError("manifest: set file=... (the hand-written manifest JSON, relative to --root or absolute)")
    path = Path(root, file)
    if not path.is_file():
        raise InputNotFoundError(f"manifest: no file {path}; file= is relative to --root {root}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise BadInputError(f"manifest: {path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise BadInputError(f"manifest: {path} is not UTF-8 ({err.reason})") from None
    if not isinstance(doc, dict):
        raise BadInputError(f"manifest: {path} should be one JSON object with images, captions and items")
    check = _Checker(path, root)
    unknown = sorted(set(doc) - TOP)
    if unknown:
        raise check.error(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP))})")
    schema = doc.get("schema", 1)
    if schema not in range(1, MANIFEST_SCHEMA + 1) or isinstance(schema, bool):
        raise check.error(f"schema {schema!r}: this dcsm-cache reads schema 1 to {MANIFEST_SCHEMA}")
    named = doc.get("root")
    if isinstance(named, str) and schema >= 2 and not os.path.isabs(named):
        named = os.path.join(path.parent, named)  # schema 2: relative to the manifest's folder
    if "root" in doc and (not isinstance(named, str) or not _same_folder(named, root)):
        raise check.error(f"root {doc['root']!r} is not --root {root}: drop the field or point --root at it")
    metric = doc.get("metric", "argmax")
    if metric not in METRICS:
        raise check.error(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    name = name or doc.get("name") or path.stem
    if not isinstance(name, str):
        raise check.error(f"name should be text, got {name!r}")
    images = [check.image(i, r) for i, r in enumerate(check.array(doc, "images"))]
    captions = check.array(doc, "captions")
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise check.error(f"caption {i} should be text, got {c!r}")
    builder = DatasetBuilder(name, root, metric=metric)
    for j, item in enumerate(check.array(doc, "items")):
        img, cands, correct, subset, tags, opp = check.item(j, item, len(images), len(captions))
        check.present(j, img, images[img])
        if opp is not None:
            check.present(j, opp, images[opp])
        opposite = None if opp is None else images[opp]
        builder.add(images[img], [captions[c] for c in cands], correct, subset, opposite, **tags)
    return builder.build()


def _same_folder(a: str, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _Checker:
    """Checks one part of the manifest at a time; every error names the file and the part."""

    def __init__(self, path: Path, root):
        self.path, self.root, self.checked = path, root, set()

    def error(self, what: str, where: str = "") -> BadInputError:
        return BadInputError(f"manifest: {self.path}{' ' + where if where else ''}: {what}")

    def array(self, doc: dict, key: str) -> list:
        value = doc.get(key)
        if not isinstance(value, list):
            raise self.error(f"{key} should be a list, got {type(value).__name__ if key in doc else 'nothing'}")
        return value

    def image(self, i: int, rec) -> ImageRef:
        if isinstance(rec, str):
            rec = {"path": rec}
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("path"), str)
            or set(rec) - {"path", "box", "member", "canvas"}
        ):
            raise self.error(
                f'should be a path or {{"path": ..., "box"?: [x, y, w, h], "member"?: ...}}, got {rec!r}', f"image {i}"
            )
        box, member, canvas = rec.get("box"), rec.get("member"), rec.get("canvas")
        if box is not None and not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        ):
            raise self.error(f"box should be [x, y, w, h], got {box!r}", f"image {i}")
        if member is not None and not isinstance(member, str):
            raise self.error(f"member should be the name of a file inside the tar, got {member!r}", f"image {i}")
        return ImageRef(rec["path"], tuple(box) if box else None, member, canvas)

    def index(self, value, n: int, what: str, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"{what} should be an integer index, got {value!r}", where)
        if not 0 <= value < n:
            raise self.error(
                f"{what} {value} is out of range (0-{n - 1})" if n else f"{what} {value}: there are none", where
            )
        return value

    def item(self, j: int, item, n_images: int, n_captions: int) -> tuple[int, list[int], int, str, dict, int | None]:
        where = f"item {j}"
        if not isinstance(item, dict):
            raise self.error(f"should be an object with image and candidates, got {item!r}", where)
        unknown = sorted(set(item) - ITEM)
        if unknown or "image" not in item or "candidates" not in item:
            raise self.error(
                f"fields are image, candidates, correct?, subset?, tags?, opposite?; got {', '.join(sorted(item))}",
                where,
            )
        img = self.index(item["image"], n_images, "image", where)
        cands = item["candidates"]
        if not isinstance(cands, list) or not cands:
            raise self.error(f"candidates should be a non-empty list of caption indices, got {cands!r}", where)
        cands = [self.index(c, n_captions, "candidate", where) for c in cands]
        correct = self.index(item.get("correct", 0), len(cands), "correct", where)
        subset, tags = item.get("subset", ""), item.get("tags", {})
        if not isinstance(subset, str):
            raise self.error(f"subset should be text, got {subset!r}", where)
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise self.error(f"tags should map names to text, got {tags!r}", where)
        if set(tags) & set(RESERVED_TAGS):
            raise self.error(f"tag names {', '.join(RESERVED_TAGS)} are reserved", where)
        opp = item.get("opposite")
        opp = None if opp is None else self.index(opp, n_images, "opposite", where)
        return img, cands, correct, subset, tags, opp

    def present(self, j: int, row: int, ref: ImageRef) -> None:
        if row in self.checked:
            return
        full = Path(self.root, ref.path)
        found = has_member(full, ref.member) if ref.member else full.is_file()
        if not found:
            shown = f"{ref.path}:{ref.member}" if ref.member else ref.path
            raise InputNotFoundError(
                f"manifest: {self.path} item {j}: image {row} ({shown}) not found under {self.root}"
            )
        self.checked.add(row)
