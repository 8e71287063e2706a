"""SugarCREPE (Hsieh et al.): one COCO val2017 image, its caption and one hard negative, 7 subsets.

    ds = load("data", name="sugarcrepe", subsets=("swap_att", "swap_obj"))

Layout under `root`: the sugar-crepe repository's `data/{subset}.json` (a bare `{subset}.json` in
`root` is accepted too) and the COCO images in `val2017/` (option `image_dir`: another folder,
relative to `root` or absolute). Each JSON is a dict keyed by the string index:
`{"0": {"filename": "000000085329.jpg", "caption": ..., "negative_caption": ...}, ...}`.

One item per record, subsets in the order of `SUBSETS`, records in file order: the image and
`[caption, negative_caption]`, raw, correct 0, `Item.subset` = the subset name (report accuracy
per subset). Metric "strict": SugarCREPE counts an item correct only if
score(caption) > score(negative_caption), so ties are wrong (unlike DCSM's argmax).
Counts of the release: 692 / 2062 / 788 / 1652 / 1406 / 666 / 245, total 7,511.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ...errors import BadInputError, ConfigError
from ..items import Dataset, DatasetBuilder
from ._common import field, read_json, require_dir, require_file, text

SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
LAYOUT = "the SugarCREPE layout"


def expected(subsets: Sequence[str] | str = SUBSETS, **_) -> tuple[str, ...]:
    """The first subset's JSON, in either place: what the workflow checks for before it plans this benchmark."""
    first = (subsets.split(",") if isinstance(subsets, str) else list(subsets) or [""])[0].strip()
    return (f"data/{first}.json", f"{first}.json")


def load(
    root: str | os.PathLike,
    name: str = "sugarcrepe",
    subsets: Sequence[str] | str = SUBSETS,
    image_dir: str = "val2017",
) -> Dataset:
    """The SugarCREPE items of the chosen subsets (see the module docstring)."""
    if isinstance(subsets, str):
        subsets = [s.strip() for s in subsets.split(",") if s.strip()]
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown or not subsets:
        raise ConfigError(
            f"{name}: unknown subset(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(SUBSETS)}"
        )
    files = {
        s: require_file(Path(root, "data", f"{s}.json"), name, LAYOUT, [Path(root, f"{s}.json")])
        for s in SUBSETS
        if s in subsets
    }
    images = require_dir(Path(root, image_dir), name, LAYOUT)
    prefix = image_dir if not os.path.isabs(image_dir) else str(images)
    builder = DatasetBuilder(name, root, metric="strict")
    for subset, ann in files.items():
        records = read_json(ann, name)
        if not isinstance(records, dict):
            raise BadInputError(f"{name}: {ann} should map index -> record, got a {type(records).__name__}")
        for key, rec in records.items():
            get = lambda k: text(field(rec, k, name, ann, key), name, ann, key, k)  # noqa: E731
            builder.add(f"{prefix.rstrip('/')}/{get('filename')}", [get("caption"), get("negative_caption")], 0, subset)
    return builder.build()
