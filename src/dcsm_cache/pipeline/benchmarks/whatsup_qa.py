"""What'sUp COCO-spatial and VG-spatial (COCO_QA / VG_QA): one image, [correct, wrong] caption.

    ds = load("data", name="coco_spatial1", source="coco", subset="one")

Layout under `root`, as `COCO_QA_simplified` and `VG_QA` read it:
  source "coco": `coco_qa_{one,two}_obj.json`, images `val2017/{image_id:012d}.jpg`;
  source "vg":   `vg_qa_{one,two}_obj.json`,   images `vg_images/{image_id}.jpg`.
Each JSON is a list of records `[image_id, correct_caption, wrong_caption]`; the candidates are
`record[1:]` (so K = 2), raw, correct 0, in file order, subset "one" or "two", no prefix.
`annotation="vg_qa_one_obj_v2.json"` reads another file of the same form from `root` (What'sUp's
marginalisation script uses such `_v2` variants).

Tag `preposition`, computed as the reference does: for "one", the last word of the correct
caption; for "two", left/right if "left of"/"right of" is in it, else (COCO) above/below or
(VG) front/behind/top.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError, ConfigError
from ..items import Dataset, DatasetBuilder
from ._common import read_json, require_dir, require_file, text

SOURCES = {  # source -> (annotation pattern, image folder, zero-padding of the id, layout)
    "coco": ("coco_qa_{}_obj.json", "val2017", 12, "the WhatsUp COCO_QA layout"),
    "vg": ("vg_qa_{}_obj.json", "vg_images", 0, "the WhatsUp VG_QA layout"),
}
SUBSETS = ("one", "two")
_TWO = {
    "coco": (("left of", "left"), ("right of", "right"), ("above", "above")),
    "vg": (("left of", "left"), ("right of", "right"), ("front of", "front"), ("behind", "behind")),
}
_TWO_ELSE = {"coco": "below", "vg": "top"}


def preposition(source: str, subset: str, correct: str) -> str:
    """The relation the reference assigns to a record (`all_prepositions`)."""
    if subset == "one":
        words = correct.split()
        return words[-1] if words else ""
    return next((word for phrase, word in _TWO[source] if phrase in correct), _TWO_ELSE[source])


def expected(source: str = "coco", subset: str = "one", annotation: str | None = None, **_) -> tuple[str, ...]:
    """The subset's annotation: what the workflow checks for before it plans this benchmark."""
    return (annotation or SOURCES.get(source, ("{}",))[0].format(subset),)


def load(
    root: str | os.PathLike,
    name: str = "whatsup_qa",
    source: str = "coco",
    subset: str = "one",
    annotation: str | None = None,
) -> Dataset:
    """The COCO-spatial or VG-spatial items of one subset (see the module docstring)."""
    if source not in SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(SOURCES)}")
    if subset not in SUBSETS:
        raise ConfigError(f"{name}: subset {subset!r} is not one of {', '.join(SUBSETS)}")
    pattern, folder, width, layout = SOURCES[source]
    ann = require_file(Path(root, annotation or pattern.format(subset)), name, layout)
    require_dir(Path(root, folder), name, layout)
    records = read_json(ann, name)
    if not isinstance(records, list):
        raise BadInputError(
            f"{name}: {ann} should be a list of [image_id, correct, wrong], got a {type(records).__name__}"
        )
    builder = DatasetBuilder(name, root)
    for i, rec in enumerate(records):
        if not isinstance(rec, list) or len(rec) < 3:
            raise BadInputError(f"{name}: {ann} row {i}: expected [image_id, correct, wrong], got {rec!r}")
        image_id = rec[0]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)) or image_id == "":
            raise BadInputError(f"{name}: {ann} row {i}: image_id should be an integer or string, got {image_id!r}")
        texts = [text(c, name, ann, i, "caption") for c in rec[1:]]
        builder.add(
            f"{folder}/{str(image_id).zfill(width)}.jpg",
            texts,
            0,
            subset,
            preposition=preposition(source, subset, texts[0]),
        )
    return builder.build()
