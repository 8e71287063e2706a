"""VG-Attribution (ARO, Yuksekgonul et al.): one crop of a Visual Genome image and two captions.

    ds = load("data", name="vg_attr")

Layout under `root`: `visual_genome_attribution.json` and the images in `VG_100K/` (the folder the
DCSM/whatsup_vlms copy of ARO reads; the folder `images/`, used by some ARO releases, is accepted
when `VG_100K/` is absent). The JSON is a list of records; the fields used are `image_path` (a
basename), `bbox_x`, `bbox_y`, `bbox_w`, `bbox_h`, `true_caption`, `false_caption` and
`attributes` (at least two strings); other fields are ignored.

One item per record, in file order: the image cropped to the box, stored as
`ImageRef(path, box=(x, y, w, h))` (PIL crop `(x, y, x+w, y+h)`), and the raw captions.
Candidate order: DCSM's `[true_caption, false_caption]` with correct 0 (default). ARO's original
code returns `[false_caption, true_caption]` with the correct answer at index 1: pass
`aro_order=True` for that. The order matters only for ties (argmax gives ties to index 0).
Tag `attributes` = "a0_a1", ARO's grouping key (its own metric is a macro average over attribute
pairs with at least 25 items; DCSM reports micro accuracy). The reference's "An image of " prefix
is a scoring-time option (see `paper.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError
from ..items import Dataset, DatasetBuilder, ImageRef
from ._common import field, number, read_json, require_dir, require_file, text

ANNOTATION = "visual_genome_attribution.json"
LAYOUT = "the ARO VG-Attribution layout"


def expected(**_) -> tuple[str, ...]:
    """The annotation: what the workflow checks for before it plans this benchmark."""
    return (ANNOTATION,)


def load(root: str | os.PathLike, name: str = "vg_attr", aro_order: bool = False) -> Dataset:
    """The VG-Attribution items (see the module docstring)."""
    ann = require_file(Path(root, ANNOTATION), name, LAYOUT)
    images = require_dir(Path(root, "VG_100K"), name, LAYOUT, [Path(root, "images")])
    records = read_json(ann, name)
    if not isinstance(records, list):
        raise BadInputError(f"{name}: {ann} should be a list of records, got a {type(records).__name__}")
    builder = DatasetBuilder(name, root)
    for i, rec in enumerate(records):
        get = lambda key: field(rec, key, name, ann, i)  # noqa: E731
        box = tuple(number(get(k), name, ann, i, k) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        true = text(get("true_caption"), name, ann, i, "true_caption")
        false = text(get("false_caption"), name, ann, i, "false_caption")
        attributes = get("attributes")
        if not isinstance(attributes, list) or len(attributes) < 2:
            raise BadInputError(f"{name}: {ann} row {i}: attributes should list at least two strings")
        image = ImageRef(f"{images.name}/{text(get('image_path'), name, ann, i, 'image_path')}", box)
        caps, correct = ([false, true], 1) if aro_order else ([true, false], 0)
        builder.add(image, caps, correct, "", attributes=f"{attributes[0]}_{attributes[1]}")
    return builder.build()
