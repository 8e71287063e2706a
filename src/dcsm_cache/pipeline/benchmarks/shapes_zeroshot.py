"""The shapes world's objects as a zero-shot classification set: each object, cut out of its scene, is one image.

    ds = load("data/world", name="shapes_objects", label="colour_shape", templates=["a photo of {}"])

Every object of every scene of the world's probe splits (`test`, `heldout`; `splits` names others, e.g.
`val` for a linear probe's train split) becomes one item: its scene's image cropped to a square
window centred on the object, as large as 33 px (half the
default image) allows without reaching the image's edge or another object's box (objects stand at
least `gap` px apart, so the window always holds the whole object and nothing else), then pasted,
unscaled, at the centre of a canvas the size of the world's images filled with the crop's
background (`ImageRef.canvas`): a one-object scene at the scale pretraining saw. (Enlarged to fill
the model's input instead, the default shapes-clip names the shape of 11% of seen objects, not 46%.)
Classes are the world's colour–shape combinations (`label="colour_shape"`, 42 by default) or its
shapes (`label="shape"`); class names are the world's own phrases ("a red circle", "a star"). Each
item is tagged `domain`: `test` when its colour–shape combination was seen in training, `heldout` when
it never was (the world's held-out combos, which only the `heldout` split's scenes show), so
`dcsm-cache zeroshot` reports both, as for DomainNet's domains.

The prompt table is the form `benchmarks/imagefolder.py` writes and `tasks/zeroshot.py` reads:
caption row `t * n_classes + c` is template t filled with class c (`{}` is replaced by the
phrase); one item per object, candidates the first template's rows, correct its class. The default
templates are the world's own caption prefixes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ...errors import BadInputError, ConfigError
from ..items import Dataset, ImageRef, Item
from ..world.files import SPLITS as WORLD_SPLITS
from ..world.files import read_world
from ..world.scenes import phrase

LABELS = ("colour_shape", "shape")
TEMPLATES = ("{}", "a photo of {}", "a picture of {}", "an image of {}", "a drawing of {}")
SPLITS = ("test", "heldout")  # the default: the probe scenes
WINDOW = 32  # largest crop side, px


def expected(**_) -> tuple[str, ...]:
    """What the workflow checks for before it plans this benchmark: the world's completion marker."""
    return ("world.json",)


def crop_box(obj: dict, others: list[dict], size: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the largest odd square up to WINDOW + 1 px centred on `obj`'s pixel, inside the image
    and clear of `others` (the renderer draws an object of side s centred at (x + 0.5, y + 0.5))."""
    x, y = obj["x"], obj["y"]
    half = min(
        WINDOW // 2,
        x,
        y,
        size - 1 - x,
        size - 1 - y,
        *(int(max(abs(o["x"] - x), abs(o["y"] - y)) - o["size"] / 2 - 0.5) for o in others),
    )
    return x - half, y - half, 2 * half + 1, 2 * half + 1


def _templates(templates: Sequence[str] | str) -> list[str]:
    out = [templates] if isinstance(templates, str) else list(templates)
    if not out or any(not isinstance(t, str) or t.count("{}") != 1 for t in out):
        raise ConfigError(f"shapes_zeroshot: templates={templates!r} must be strings with one '{{}}' each")
    return out


def load(
    root: str | os.PathLike,
    name: str = "shapes_zeroshot",
    label: str = "colour_shape",
    templates: Sequence[str] | str = TEMPLATES,
    splits: Sequence[str] | str = SPLITS,
) -> Dataset:
    """The zero-shot items of the world at `root` (see the module docstring)."""
    if label not in LABELS:
        raise ConfigError(f"{name}: label={label!r} is not one of {', '.join(LABELS)}")
    splits = [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)
    if not splits or any(s not in WORLD_SPLITS for s in splits):
        raise ConfigError(f"{name}: splits={splits!r}: choose from {', '.join(WORLD_SPLITS)}")
    prompts = _templates(templates)
    info, scenes = read_world(root)
    cfg = info["config"]
    size = int(cfg["image_size"])
    held = {tuple(c) for c in info["heldout"]}
    classes = (
        [(c, s) for c in cfg["colours"] for s in cfg["shapes"]] if label == "colour_shape" else list(cfg["shapes"])
    )
    index = {c: i for i, c in enumerate(classes)}
    names = [phrase(c) if label == "colour_shape" else f"a {c}" for c in classes]
    images, items = [], []
    for split in splits:
        for scene in scenes[split]:
            objects = scene["objects"]
            for i, obj in enumerate(objects):
                combo = (obj["colour"], obj["shape"])
                key = combo if label == "colour_shape" else obj["shape"]
                if key not in index:
                    raise BadInputError(
                        f"{Path(root) / scene['file']}: object {combo} is not a class of the world's "
                        f"config: regenerate the world with `dcsm-cache world --out {root}`"
                    )
                box = crop_box(obj, objects[:i] + objects[i + 1 :], size)
                items.append(
                    Item(
                        len(images),
                        tuple(range(len(classes))),
                        index[key],
                        "",
                        {"domain": "heldout" if combo in held else "test"},
                    )
                )
                images.append(ImageRef(scene["file"], box, canvas=size))
    if not items:
        raise BadInputError(f"{name}: the world at {root} has no objects in splits {', '.join(splits)}")
    captions = tuple(t.format(n) for t in prompts for n in names)
    return Dataset(name, str(root), tuple(images), captions, tuple(items), "argmax")
