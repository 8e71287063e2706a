"""What'sUp Controlled_Images A and B (Kamath et al.), read as `Controlled_Images_original` reads them.

    ds = load("data", name="whatsUp_A", subset="A")

Layout under `root`: subset A is `controlled_images_dataset.json` with `controlled_images/`; subset
B is `controlled_clevr_dataset.json` with `controlled_clevr/`. Each JSON is a list of
`{"image_path": "data/controlled_images/beer-bottle_on_armchair.jpeg", "caption_options": [4 str]}`,
the first option correct. `image_path` is read with its `data/` prefix stripped (the reference
drops its first five characters).

On/under: the DCSM reference renames `*_on_*` / `*_under_*` files ON DISK to `_above_` / `_below_`
(`rename_whatsup_files`) and then opens `image_path` with `_on`->`_above`, `_under`->`_below`.
This loader never renames anything: for each record it uses whichever file exists, the original
name first, then the renamed one, so a pristine download and one the reference already renamed
both load. A record whose image exists under none of these names is an InputNotFoundError.

One item per record, in file order: the image and the four RAW caption options, correct 0, subset
"A" or "B". The reference also rewrites the captions `" on"`->`" above"`, `" under"`->`" below"`
for every model; that rewrite, the "An image of " prefix and the DCSM-path rewrites are
scoring-time options listed in `paper.py`. Tag `preposition`: the relation in the file name
(A: on, under, left_of, right_of; B: left_of, right_of, in-front_of, behind).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import field, read_json, require_dir, require_file, text

SUBSETS = {
    "A": ("controlled_images_dataset.json", "controlled_images"),
    "B": ("controlled_clevr_dataset.json", "controlled_clevr"),
}
LAYOUT = "the WhatsUp Controlled_Images layout"
_PREP = re.compile(r"_(on|under|above|below|left_of|right_of|in-front_of|behind)_")


def candidates(rel: str) -> list[str]:
    """The names the image may have on disk: as in the JSON, as renamed by `rename_whatsup_files`,
    and as the reference's `__getitem__` rewrites it (these differ only for names like `_onion`)."""
    head, base = os.path.split(rel)
    renamed = os.path.join(head, base.replace("_on_", "_above_").replace("_under_", "_below_"))
    getitem = rel.replace("_on", "_above").replace("_under", "_below")
    return list(dict.fromkeys([rel, renamed, getitem]))


def expected(subset: str = "A", **_) -> tuple[str, ...]:
    """The subset's annotation: what the workflow checks for before it plans this benchmark."""
    return (SUBSETS.get(subset, ("",))[0],)


def load(root: str | os.PathLike, name: str = "whatsup", subset: str = "A") -> Dataset:
    """The What'sUp Controlled_Images items of subset A or B (see the module docstring)."""
    if subset not in SUBSETS:
        raise ConfigError(f"{name}: subset {subset!r} is not one of {', '.join(SUBSETS)}")
    annotation, folder = SUBSETS[subset]
    ann = require_file(Path(root, annotation), name, LAYOUT)
    require_dir(Path(root, folder), name, LAYOUT)
    records = read_json(ann, name)
    if not isinstance(records, list):
        raise BadInputError(f"{name}: {ann} should be a list of records, got a {type(records).__name__}")
    builder, missing = DatasetBuilder(name, root), []
    for i, rec in enumerate(records):
        path = text(field(rec, "image_path", name, ann, i), name, ann, i, "image_path")
        options = field(rec, "caption_options", name, ann, i)
        if not isinstance(options, list) or len(options) < 2:
            raise BadInputError(f"{name}: {ann} row {i}: caption_options should list at least two captions")
        options = [text(c, name, ann, i, "caption_options") for c in options]
        rel = path[len("data/") :] if path.startswith("data/") else path
        found = next((c for c in candidates(rel) if Path(root, c).is_file()), None)
        if found is None:
            missing.append(rel)
            continue
        prep = _PREP.search(os.path.basename(rel))
        tags = {"preposition": prep.group(1)} if prep else {}
        builder.add(found, options, 0, subset, **tags)
    if missing:
        raise InputNotFoundError(
            f"{name}: {len(missing)} of {len(records)} images missing, e.g. "
            f"{missing[0]} (or its _above_/_below_ name) in {root} ({LAYOUT})"
        )
    return builder.build()
