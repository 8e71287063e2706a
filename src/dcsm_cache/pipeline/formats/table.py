"""A table of the user's own (CSV, TSV or JSONL): one item per row, read in one streaming pass.

    ds = load("data/mine", file="data.csv")   # dcsm-cache items table --root data/mine --set file=data.csv

The format follows the extension: `.csv`, `.tsv` (a header line naming the columns) or `.jsonl`
(one JSON object a line). Column names are options, defaulting to:

- `image`: the image file, relative to `root` or absolute;
- `caption`: a captioned set, one item per row with that one candidate (extraction, pretraining,
  retrieval);
- `caption_0`, `caption_1`, … with `correct`, the index of the true one (option `captions`: the
  prefix; a whole number written as a float, `1.0` as pandas writes an integer column that had
  gaps, is that index, `0.5` an error); or `pos` with `neg_0`, `neg_1`, … (option `neg`: the
  prefix), a choice benchmark scored like the paper's: pos is candidate 0, correct 0. A row may
  leave trailing candidates empty;
- `subset` (optional; accuracy is reported per subset) and `tags`, a list of columns whose values
  each item records (accuracy per value), e.g. `--set 'tags=["family"]'`.

A row with `pos` is a pos/neg row, else one with `caption_0` a numbered row, else a captioned one.
`name` names the dataset (default: the file's stem). With `check_images` (default) every image
must exist. A bad row is a one-line error naming file:line.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder

DELIMITERS = {".csv": ",", ".tsv": "\t", ".jsonl": None}
RESERVED = ("image", "captions", "correct", "subset", "opposite")  # DatasetBuilder.add's own arguments: not tag names


def expected(file: str | None = None, **_) -> tuple[str, ...]:
    """The table file (or the root, when none is named): what the workflow checks before it plans it."""
    return (file,) if file else ("",)


def load(
    root: str | os.PathLike,
    file: str | None = None,
    name: str | None = None,
    image: str = "image",
    caption: str = "caption",
    captions: str = "caption_",
    correct: str = "correct",
    pos: str = "pos",
    neg: str = "neg_",
    subset: str = "subset",
    tags: Sequence[str] | str = (),
    check_images: bool = True,
) -> Dataset:
    """The items of the table `file` under `root` (see the module docstring)."""
    if not file:
        raise ConfigError("table: set file=... (a .csv, .tsv or .jsonl file, relative to --root or absolute)")
    path = Path(root, file)
    if path.suffix.lower() not in DELIMITERS:
        raise ConfigError(f"table: {path} should end in .csv, .tsv or .jsonl (the extension picks the format)")
    if not path.is_file():
        raise InputNotFoundError(f"table: no file {path}; file= is relative to --root {root}")
    name = name or path.stem
    tags = [tags] if isinstance(tags, str) else list(tags)
    clash = [t for t in tags if t in RESERVED]
    if clash:
        raise ConfigError(f"{name}: tag name(s) {', '.join(clash)} are reserved; rename the column(s)")
    cols = _Columns(name, path, image, caption, captions, correct, pos, neg, subset, tags)
    delimiter = DELIMITERS[path.suffix.lower()]
    rows = _jsonl_rows(path, name) if delimiter is None else _csv_rows(path, name, delimiter, cols.check_header)
    builder = DatasetBuilder(name, root)
    for line, row in rows:
        img, cands, right, sub, tag_values = cols.parse(line, row)
        if check_images and not os.path.isfile(os.path.join(root, img)):
            raise InputNotFoundError(
                f"{name}: {path}:{line}: image {img} not found under {root} (paths are relative "
                f"to --root; check_images=false keeps the row, extraction marks it invalid)"
            )
        builder.add(img, cands, right, sub, **tag_values)
    return builder.build()


def _csv_rows(path: Path, name: str, delimiter: str, check_header) -> Iterator[tuple[int, dict]]:
    line = 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            if not any(header):
                raise BadInputError(f"{name}: {path}:1: no header; the first line names the columns")
            check_header(header)
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise BadInputError(f"{name}: {path}:{line}: {len(fields)} fields, the header has {len(header)}")
                yield line, dict(zip(header, fields))
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadInputError(f"{name}: {path}:{line + 1}: cannot be read as {path.suffix[1:].upper()} ({err})") from None


def _jsonl_rows(path: Path, name: str) -> Iterator[tuple[int, dict]]:
    line = 0
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    raise BadInputError(f"{name}: {path}:{line}: not a complete JSON object ({err.msg})") from None
                if not isinstance(row, dict):
                    raise BadInputError(f"{name}: {path}:{line}: expected a JSON object, got {type(row).__name__}")
                yield line, row
    except UnicodeDecodeError as err:
        raise BadInputError(f"{name}: {path}:{line + 1}: not UTF-8 ({err.reason})") from None


class _Columns:
    """Turns one row (a dict of column -> value) into an item, naming file:line in every error."""

    def __init__(self, name, path, image, caption, captions, correct, pos, neg, subset, tags):
        self.name, self.path, self.image, self.caption, self.correct = name, path, image, caption, correct
        self.pos, self.subset, self.tags, self.captions, self.neg = pos, subset, tags, captions, neg
        self.first, self.first_neg = f"{captions}0", f"{neg}0"
        self._numbered_re = {p: re.compile(re.escape(p) + r"(\d+)$") for p in (captions, neg)}
        self._numbered: dict[tuple, list[str]] = {}  # (prefix, row keys) -> the numbered columns in order

    def check_header(self, header: list[str]) -> None:
        """A CSV/TSV header must name the image column, a candidate form, and every named optional column."""
        where = f"{self.name}: {self.path}:1"
        seen = set(header)
        if self.image not in seen:
            raise BadInputError(
                f"{where}: no column {self.image!r} (header: {', '.join(header)}); "
                f"name the image column with --set image=COLUMN"
            )
        if not ({self.pos, self.first, self.caption} & seen):
            raise BadInputError(
                f"{where}: no candidate columns: expected {self.caption!r}, {self.first!r}... with "
                f"{self.correct!r}, or {self.pos!r} with {self.first_neg!r}... "
                f"(header: {', '.join(header)})"
            )
        if self.first in seen and self.pos not in seen and self.correct not in seen:
            raise BadInputError(f"{where}: {self.first}... need a {self.correct!r} column, the index of the true one")
        missing = [t for t in self.tags if t not in seen]
        if missing:
            raise BadInputError(f"{where}: no tag column(s) {', '.join(missing)} (header: {', '.join(header)})")
        for prefix in self._numbered_re:
            self.numbered(prefix, header, 1)

    def numbered(self, prefix: str, keys, line: int) -> list[str]:
        """prefix0, prefix1, ... among `keys`, in order; a gap in the numbers is an error."""
        key = (prefix, tuple(keys))
        cols = self._numbered.get(key)
        if cols is None:
            found = {int(m[1]): k for k in keys if (m := self._numbered_re[prefix].match(k))}
            if sorted(found) != list(range(len(found))):
                gap = min(set(range(len(found))) - set(found))
                raise BadInputError(
                    f"{self.name}: {self.path}:{line}: columns {prefix}0, {prefix}1, ... skip {prefix}{gap}"
                )
            cols = self._numbered[key] = [found[i] for i in range(len(found))]
        return cols

    def text(self, row: dict, col: str, line: int, required: bool = True) -> str | None:
        value = row.get(col)
        if value is None or value == "":
            if required:
                raise BadInputError(f"{self.name}: {self.path}:{line}: no value for {col!r}")
            return None
        if not isinstance(value, str):
            if required or isinstance(value, (dict, list)):
                raise BadInputError(f"{self.name}: {self.path}:{line}: {col} should be text, got {value!r}")
            value = str(value)
        return value

    def candidates(self, row: dict, prefix: str, line: int) -> list[str]:
        values = [self.text(row, c, line, required=False) for c in self.numbered(prefix, row.keys(), line)]
        while values and values[-1] is None:
            values.pop()
        if None in values:
            raise BadInputError(
                f"{self.name}: {self.path}:{line}: {prefix}{values.index(None)} is empty but a later {prefix}... is not"
            )
        return values

    def parse(self, line: int, row: dict) -> tuple[str, list[str], int, str, dict]:
        img = self.text(row, self.image, line)
        if self.pos in row:
            cands = [self.text(row, self.pos, line), *self.candidates(row, self.neg, line)]
            right = 0
        elif self.first in row:
            cands = self.candidates(row, self.captions, line)
            right = self.index(row, line, len(cands))
        elif self.caption in row:
            cands, right = [self.text(row, self.caption, line)], 0
        else:
            raise BadInputError(f"{self.name}: {self.path}:{line}: no {self.caption!r}, {self.first!r} or {self.pos!r}")
        if len(cands) < 2 and (self.pos in row or self.first in row):
            raise BadInputError(f"{self.name}: {self.path}:{line}: a choice row needs at least two candidates")
        sub = self.text(row, self.subset, line, required=False) or ""
        tag_values = {t: v for t in self.tags if (v := self.text(row, t, line, required=False)) is not None}
        return img, cands, right, sub, tag_values

    def index(self, row: dict, line: int, n: int) -> int:
        value = row.get(self.correct)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
            value = float(value)  # 1.0, as pandas writes integers in a float column
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            whole = " (not a whole number)" if isinstance(value, float) else ""
            raise BadInputError(
                f"{self.name}: {self.path}:{line}: {self.correct} should be an integer index, got {value!r}{whole}"
            )
        if not 0 <= value < n:
            raise BadInputError(
                f"{self.name}: {self.path}:{line}: {self.correct} {value} is not one of the row's "
                f"{n} candidates (0-{n - 1})"
            )
        return value
