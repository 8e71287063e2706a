"""Small helpers shared by the benchmark loaders: expected files, JSON and CSV reading, one-line errors.

    ann = require_file(Path(root, "coco_qa_one_obj.json"), "coco_spatial1", "the WhatsUp COCO_QA layout")
    records = read_json(ann, "coco_spatial1")

A folder without the expected file is an `InputNotFoundError` that says which file was expected where;
an annotation that cannot be parsed is a `BadInputError` that names the file and the row.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Iterator

from ...errors import BadInputError, InputNotFoundError


def require_file(path: Path, name: str, layout: str, alternatives: Iterable[Path] = ()) -> Path:
    """`path` (or the first existing of `alternatives`); else one line saying what was expected where."""
    alternatives = tuple(alternatives)
    for candidate in (path, *alternatives):
        if candidate.is_file():
            return candidate
    others = "".join(f" (or in {p.parent})" if p.name == path.name else f" (or {p})" for p in alternatives)
    raise InputNotFoundError(f"{name}: expected {path.name} in {path.parent}{others} ({layout})")


def require_dir(path: Path, name: str, layout: str, alternatives: Iterable[Path] = ()) -> Path:
    """The folder `path` (or the first existing of `alternatives`); else one line saying which."""
    alternatives = tuple(alternatives)
    for candidate in (path, *alternatives):
        if candidate.is_dir():
            return candidate
    others = "".join(f" (or {p.name}/)" for p in alternatives)
    raise InputNotFoundError(f"{name}: expected folder {path.name}/{others} in {path.parent} ({layout})")


def read_json(path: Path, name: str):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{name}: {path} is not valid JSON ({err})") from None


def read_csv(path: Path, name: str, required: Iterable[str], encoding: str = "utf-8-sig") -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) for each data row; a missing column or a short row is a BadInputError."""
    required = tuple(required)
    try:
        with open(path, newline="", encoding=encoding) as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise BadInputError(
                    f"{name}: {path} lacks column(s) {', '.join(missing)} "
                    f"(header: {', '.join(reader.fieldnames or ()) or 'empty file'})"
                )
            for row in reader:
                short = [c for c in required if row.get(c) is None]
                if short:
                    raise BadInputError(
                        f"{name}: {path} line {reader.line_num}: row has no value for {', '.join(short)}"
                    )
                yield reader.line_num, row
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadInputError(f"{name}: {path} cannot be read as CSV ({err})") from None


def text(value, name: str, path: Path, row, field: str) -> str:
    """`value` if it is a string, else a BadInputError naming the file, row and field."""
    if not isinstance(value, str):
        raise BadInputError(f"{name}: {path} row {row}: {field} should be a string, got {value!r}")
    return value


def field(record, key: str, name: str, path: Path, row):
    """record[key], or a BadInputError naming the file, row and missing field."""
    if not isinstance(record, dict):
        raise BadInputError(f"{name}: {path} row {row}: expected an object, got {type(record).__name__}")
    try:
        return record[key]
    except KeyError:
        raise BadInputError(f"{name}: {path} row {row}: missing field {key!r}") from None


def number(value, name: str, path: Path, row, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{name}: {path} row {row}: {key} should be a number, got {value!r}")
    return value
