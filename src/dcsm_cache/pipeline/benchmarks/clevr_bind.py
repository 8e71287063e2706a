"""CLEVR-bind (Lewis et al., clip-binding), two-object split, read as the DCSM reference reads it.

    ds = load("data", name="clevr_bind_2obj_gen", split="gen")

Layout under `root`: `clevr_bind/two_object/{split}.csv` (split = train, val or gen) with images in
`clevr_bind/two_object/images/{split}/<file_name>`. CSV columns `file_name,pos,neg_0,neg_1,neg_2,neg_3`
(any other column, e.g. a pandas index, is ignored). The reference's other form, a JSON file
`{split}.json` = `{file_name: {"pos": str, "neg": [str, ...]}}`, is read when the CSV is absent (or
always, with `annotation_format="json"`).

One item per row: the image and `[pos, neg_0, neg_1, neg_2, neg_3]`, correct 0, subset = split, in
file order. Captions are stored raw ("red cube"); the reference's "An image of a " prefix is a
scoring-time option (see `paper.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import field, read_csv, read_json, require_dir, require_file, text

SPLITS = ("train", "val", "gen")
FORMATS = ("auto", "csv", "json")
LAYOUT = "the clip-binding CLEVR two_object layout"
COLUMNS = ("file_name", "pos", "neg_0", "neg_1", "neg_2", "neg_3")


def _rows_csv(path: Path, name: str):
    for line, row in read_csv(path, name, COLUMNS):
        if not row["file_name"]:
            raise BadInputError(f"{name}: {path} line {line}: empty file_name")
        yield row["file_name"], [row["pos"], *(row[f"neg_{k}"] for k in range(4))]


def _rows_json(path: Path, name: str):
    doc = read_json(path, name)
    if not isinstance(doc, dict):
        raise BadInputError(f"{name}: {path} should map file_name -> {{pos, neg}}, got a {type(doc).__name__}")
    for file_name, rec in doc.items():
        pos = text(field(rec, "pos", name, path, file_name), name, path, file_name, "pos")
        neg = field(rec, "neg", name, path, file_name)
        if not isinstance(neg, list) or not neg:
            raise BadInputError(f"{name}: {path} row {file_name}: neg should be a non-empty list of strings")
        yield file_name, [pos, *(text(n, name, path, file_name, "neg") for n in neg)]


def expected(split: str = "gen", **_) -> tuple[str, ...]:
    """The split's annotation, CSV or JSON: what the workflow checks for before it plans this benchmark."""
    return (f"clevr_bind/two_object/{split}.csv", f"clevr_bind/two_object/{split}.json")


def load(
    root: str | os.PathLike, name: str = "clevr_bind", split: str = "gen", annotation_format: str = "auto"
) -> Dataset:
    """The items of one CLEVR-bind two-object split (see the module docstring)."""
    if split not in SPLITS:
        raise ConfigError(f"{name}: split {split!r} is not one of {', '.join(SPLITS)}")
    if annotation_format not in FORMATS:
        raise ConfigError(f"{name}: annotation_format {annotation_format!r} is not one of {', '.join(FORMATS)}")
    base = Path(root, "clevr_bind", "two_object")
    csv_path, json_path = base / f"{split}.csv", base / f"{split}.json"
    if annotation_format == "json" or (annotation_format == "auto" and not csv_path.is_file() and json_path.is_file()):
        rows = _rows_json(require_file(json_path, name, LAYOUT), name)
    else:
        if annotation_format == "auto" and not csv_path.is_file():
            raise InputNotFoundError(f"{name}: expected {csv_path.name} (or {json_path.name}) in {base} ({LAYOUT})")
        rows = _rows_csv(require_file(csv_path, name, LAYOUT), name)
    require_dir(base / "images" / split, name, LAYOUT)
    builder = DatasetBuilder(name, root)
    for file_name, captions in rows:
        builder.add(f"clevr_bind/two_object/images/{split}/{file_name}", captions, 0, split)
    return builder.build()
