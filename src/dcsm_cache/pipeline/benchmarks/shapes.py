"""Loader for the shapes world written by `pipeline/world.py`, into the item form.

    ds = load("data/world", name="shapes_spatial", family="spatial")

Families: `pretrain` (one item per pretraining image, its web caption as the single candidate,
subset "pretrain"); `train` (DCSM items, [positive, 3 hard negatives], subsets "train" and "val");
`binding`, `spatial`, `negation` (probe items, [positive, hard negative], subsets "test" and
"heldout"). The correct candidate is always 0. Image paths are relative to `root`. Items carry the
tags `family` and `kind` (the relation, "with"/"without", ...) and, for probes, `negative` (which
edit made the hard negative: "swap", "flip", ...).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ...errors import BadInputError, InputNotFoundError, UnknownNameError
from ..items import Dataset, DatasetBuilder
from ..world import FAMILIES, FORMAT

SPLITS_OF = {"pretrain": ("pretrain",), "train": ("train", "val"),
             **{family: ("test", "heldout") for family in FAMILIES}}


def read_world_file(path: Path, root: Path) -> dict:
    """A JSON file of the world at `root` (world.json or scenes/{split}.json), checked for its format."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputNotFoundError(f"{path} is missing: regenerate the world with `dcsm-cache world --out {root}`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path} is not valid JSON ({err}): regenerate the world with `dcsm-cache world --out {root}`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BadInputError(f"{path} has world format {found!r}, not {FORMAT}: regenerate it with `dcsm-cache world --out {root}`")
    return doc


def load(root: str | os.PathLike, name: str = "shapes", family: str = "binding") -> Dataset:
    """The items of one family of the shapes world at `root` (see the module docstring)."""
    if family not in SPLITS_OF:
        raise UnknownNameError(f"unknown shapes family {family!r}; valid: {', '.join(SPLITS_OF)}")
    base = Path(root)
    if not (base / "world.json").is_file():
        raise InputNotFoundError(f"no complete shapes world at {base} (world.json missing): "
                                 f"run `dcsm-cache world --out {base}`")
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
                builder.add(scene["file"], [scene["positive"], *scene["negatives"]], 0, split, **tags)
        except (KeyError, TypeError, IndexError) as err:
            raise BadInputError(f"{base / 'scenes' / f'{split}.json'} lacks {err} in a scene: "
                                f"regenerate the world with `dcsm-cache world --out {base}`") from None
    return builder.build()
