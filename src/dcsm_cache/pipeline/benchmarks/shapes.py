"""Loader for the shapes world written by `pipeline/world.py`, into the item form.

    ds = load("data/world", name="shapes_spatial", family="spatial")

Families: `pretrain` (one item per pretraining image, its web caption as the single candidate,
subset "pretrain"); `train` (DCSM items, [positive, 3 hard negatives], subsets "train", "val" and
"heldout_val", the last with held-out combos: training scores "val" and "heldout_val" items, never
trains on them);
each train item's `opposite` is its opposite image, of which its first negative is true;
`binding`, `spatial`, `negation` (probe items, [positive, hard negative], subsets "test" and
"heldout"). The correct candidate is always 0. Image paths are relative to `root`. Items carry the
tags `family` and `kind` (the relation, "with"/"without", ...) and, for probes, `negative` (which
edit made the hard negative: "swap", "flip", ...).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError, UnknownNameError
from ..items import Dataset, DatasetBuilder
from ..world.files import read_world_file
from ..world.scenes import FAMILIES

SPLITS_OF = {
    "pretrain": ("pretrain",),
    "train": ("train", "val", "heldout_val"),
    **{family: ("test", "heldout") for family in FAMILIES},
}


def expected(**_) -> tuple[str, ...]:
    """What the workflow checks for before it plans this benchmark: the world's completion marker."""
    return ("world.json",)


def load(root: str | os.PathLike, name: str = "shapes", family: str = "binding") -> Dataset:
    """The items of one family of the shapes world at `root` (see the module docstring)."""
    if family not in SPLITS_OF:
        raise UnknownNameError(f"unknown shapes family {family!r}; valid: {', '.join(SPLITS_OF)}")
    base = Path(root)
    read_world_file(base / "world.json", base)
    builder = DatasetBuilder(name, root)
    for split in SPLITS_OF[family]:
        doc = read_world_file(base / "scenes" / f"{split}.json", base)
        try:
            for scene in doc["scenes"]:
                if family in FAMILIES and scene["family"] != family:
                    continue
                tags = {"family": scene["family"], "kind": scene["kind"]}
                if split in ("test", "heldout"):
                    tags["negative"] = scene["negative_kinds"][0]
                opposite = scene["opposite"]["file"] if family == "train" else None  # image-side hard negative
                builder.add(scene["file"], [scene["positive"], *scene["negatives"]], 0, split, opposite, **tags)
        except (KeyError, TypeError, IndexError) as err:
            raise BadInputError(
                f"{base / 'scenes' / f'{split}.json'} lacks {err} in a scene: "
                f"regenerate the world with `dcsm-cache world --out {base}`"
            ) from None
    return builder.build()
