r"""NegBench multiple-choice (Alhamoud et al.), COCO and VOC2007, read as the DCSM reference reads it.

    ds = load("data", name="negbench_coco", source="coco")

Layout under `root`: the CSVs sit in `NegBench/evaluation data/images/` (three nested folders, the
path a user creates, and the one the workflow names when it is missing). The reference spells it
with the Windows string `NegBench\evaluation data\images`, which on Linux is ONE directory whose name
contains two backslashes and a space; that folder is accepted too, where the first is not.
  source "coco": `COCO_val_mcq_llama3.1_rephrased.csv`, images from `val2017/`;
  source "voc":  `VOC2007_mcq_llama3.1_rephrased.csv`, images from `VOC2007/JPEGImages/`.
CSV (utf-8-sig): columns `caption_0..caption_3`, `correct_answer_template` (positive, negative or
hybrid) and `image_path`, of which only the basename is used (split on `/` and `\`). The
`correct_answer` column, when present, gives the correct index (NegBench writes 0 everywhere,
which is what the reference assumes).

One item per row, in file order: the image and `[caption_0, ..., caption_3]`, raw, subset "",
tag `template`. Rows whose image file is missing are dropped, as the reference does, but not
silently: the count is logged as a warning and every item then carries the tag
`missing_images_dropped` = "n/total". No prefix.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import read_csv, require_dir, require_file

log = logging.getLogger(__name__)

CSV_DIRS = (os.path.join("NegBench", "evaluation data", "images"), "NegBench\\evaluation data\\images")
SOURCES = {
    "coco": ("COCO_val_mcq_llama3.1_rephrased.csv", "val2017"),
    "voc": ("VOC2007_mcq_llama3.1_rephrased.csv", "VOC2007/JPEGImages"),
}
COLUMNS = ("caption_0", "caption_1", "caption_2", "caption_3", "correct_answer_template", "image_path")
LAYOUT = "the DCSM NegBench layout"


def expected(source: str = "coco", **_) -> tuple[str, ...]:
    """The MCQ CSV in either folder spelling, the ordinary path first: what the workflow checks for (and names
    when missing) before it plans this benchmark."""
    return tuple(os.path.join(d, SOURCES.get(source, ("",))[0]) for d in CSV_DIRS)


def load(root: str | os.PathLike, name: str = "negbench", source: str = "coco") -> Dataset:
    """The NegBench MCQ items of COCO or VOC2007 (see the module docstring)."""
    if source not in SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(SOURCES)}")
    csv_name, image_dir = SOURCES[source]
    normalised, literal = (Path(root, d, csv_name) for d in CSV_DIRS)
    ann = require_file(normalised, name, LAYOUT, [literal])
    images = require_dir(Path(root, image_dir), name, LAYOUT)
    rows, dropped = [], []
    for line, row in read_csv(ann, name, COLUMNS, encoding="utf-8-sig"):
        template = row["correct_answer_template"]
        correct = (row.get("correct_answer") or "0").strip()
        if correct not in ("0", "1", "2", "3"):
            raise BadInputError(f"{name}: {ann} line {line}: correct_answer {correct!r} is not 0-3")
        file_name = row["image_path"].replace("\\", "/").split("/")[-1]
        if not file_name:
            raise BadInputError(f"{name}: {ann} line {line}: empty image_path")
        if not (images / file_name).is_file():
            dropped.append(file_name)
            continue
        captions = [row[f"caption_{k}"] for k in range(4)]
        rows.append((f"{image_dir}/{file_name}", captions, int(correct), template))
    if dropped and not rows:
        raise InputNotFoundError(
            f"{name}: none of the {len(dropped)} images named in {ann.name} is in {images} ({LAYOUT})"
        )
    tags = {}
    if dropped:
        total = len(rows) + len(dropped)
        log.warning(
            "%s: dropped %d of %d rows of %s whose image is missing from %s (e.g. %s), as the reference does",
            name,
            len(dropped),
            total,
            ann.name,
            images,
            dropped[0],
        )
        tags["missing_images_dropped"] = f"{len(dropped)}/{total}"
    builder = DatasetBuilder(name, root)
    for image, captions, correct, template in rows:
        builder.add(image, captions, correct, "", template=template, **tags)
    return builder.build()
