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
from ..world.scenes import FAMILIES, caption_is_true, phrase

SPLITS_OF = {
    "pretrain": ("pretrain",),
    "train": ("train", "val", "heldout_val"),
    **{family: ("test", "heldout") for family in FAMILIES},
}


def expected(**_) -> tuple[str, ...]:
    """What the workflow checks for before it plans this benchmark: the world's completion marker."""
    return ("world.json",)


def load(root: str | os.PathLike, name: str = "shapes", family: str = "binding", phrases: bool = False) -> Dataset:
    """The items of one family of the shapes world at `root` (see the module docstring); with `phrases`
    (family `train`), each binding scene's objects as items of their own too (`object_items`)."""
    if family not in SPLITS_OF:
        raise UnknownNameError(f"unknown shapes family {family!r}; valid: {', '.join(SPLITS_OF)}")
    base = Path(root)
    info = read_world_file(base / "world.json", base)
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
                if phrases and family == "train" and scene["family"] == "binding":
                    for captions in object_items(scene, info, split):
                        builder.add(scene["file"], captions, 0, split, opposite, family="object", kind="object")
        except (KeyError, TypeError, IndexError) as err:
            raise BadInputError(
                f"{base / 'scenes' / f'{split}.json'} lacks {err} in a scene: "
                f"regenerate the world with `dcsm-cache world --out {base}`"
            ) from None
    return builder.build()


def object_items(scene: dict, info: dict, split: str) -> list[list[str]]:
    """Each object of a binding scene as an item of its own: ["a red circle", then three false phrases:
    the other object's colour on this shape (true of the scene's opposite image, whose colours are
    swapped: so it is the opposite's caption, as a scene item's first negative is), this colour on the
    other object's shape, and a colour the scene lacks on this shape]. A phrase naming a held-out combo
    is only used in the `heldout_val` split, as in the world's own captions; an object without a full set
    of such phrases gives no item. Short captions of one object, the form CLEVR-bind's probes take."""
    held = {tuple(c) for c in info["heldout"]} if split != "heldout_val" else set()
    colours = info["config"]["colours"]
    (a, b), items = [(o["colour"], o["shape"]) for o in scene["objects"]], []
    for k, ((c, s), (c2, s2)) in enumerate(((a, b), (b, a))):
        absent = [x for x in colours if x not in (c, c2) and (x, s) not in held]
        combos = [(c, s), (c2, s), (c, s2)]
        if not absent or any(x in held for x in combos):
            continue
        captions = [phrase(x) for x in [*combos, (absent[k % len(absent)], s)]]
        true_here = [caption_is_true(scene["objects"], x) for x in captions]
        if true_here == [True, False, False, False] and caption_is_true(scene["opposite"]["objects"], captions[1]):
            items.append(captions)
    return items
