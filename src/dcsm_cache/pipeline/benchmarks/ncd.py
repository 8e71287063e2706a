"""NCD colour-binding composites (made by the DCSM authors from the Natural-Color Dataset).

    ds = load("data", name="ncd_subset1", settype=0)

Layout under `root`: `NCD_colorful_composite_squares/c1_A_c2_B.{png,jpg,jpeg}` (e.g.
`yellow_banana_red_apple.png`); names containing `MIRROR` are skipped, as in the reference
(`COCODataset_color_nooppimg`). The file name (without extension) must split on `_` into exactly
four parts; any other name is a BadInputError (the reference would silently use the first four).

Captions, correct first, as the reference writes them:
  settype 0 (`ncd_subset1`): "A picture of a {c1} {A} and a {c2} {B}", "A picture of a {c2} {A} and a {c1} {B}"
  settype 1 (`ncd_subset2`): "A picture of a {c2} {B} and a {c1} {A}", "A picture of a {c1} {B} and a {c2} {A}"
Item order: the reference uses `os.listdir` order, which is filesystem-dependent; this loader
sorts the names (`sorted()`) so that the order, and so the manifest, is deterministic. Accuracy
does not depend on the order. Subset is "settype0" or "settype1"; no prefix.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import require_dir

FOLDER = "NCD_colorful_composite_squares"
EXTENSIONS = (".png", ".jpeg", ".jpg")  # case-sensitive, as in the reference
LAYOUT = "the DCSM NCD composite layout"


def captions(c1: str, a: str, c2: str, b: str, settype: int) -> list[str]:
    """[correct, wrong] for the file c1_A_c2_B, exactly as the reference builds them."""
    if settype == 0:
        return [f"A picture of a {c1} {a} and a {c2} {b}", f"A picture of a {c2} {a} and a {c1} {b}"]
    return [f"A picture of a {c2} {b} and a {c1} {a}", f"A picture of a {c1} {b} and a {c2} {a}"]


def expected(**_) -> tuple[str, ...]:
    """The composites' folder: what the workflow checks for before it plans this benchmark."""
    return (FOLDER,)


def load(root: str | os.PathLike, name: str = "ncd", settype: int = 0) -> Dataset:
    """The NCD items for one caption order (see the module docstring)."""
    if settype not in (0, 1):
        raise ConfigError(f"{name}: settype {settype!r} is not 0 or 1")
    folder = require_dir(Path(root, FOLDER), name, LAYOUT)
    files = sorted(
        f for f in os.listdir(folder) if "MIRROR" not in f and f.endswith(EXTENSIONS) and (folder / f).is_file()
    )
    if not files:
        raise InputNotFoundError(f"{name}: expected c1_A_c2_B.png images in {folder} ({LAYOUT})")
    builder = DatasetBuilder(name, root)
    for f in files:
        parts = os.path.splitext(f)[0].split("_")
        if len(parts) != 4 or not all(parts):
            raise BadInputError(
                f"{name}: {folder / f}: the name should be c1_A_c2_B "
                f"(four parts separated by '_'), found {len(parts)} parts"
            )
        builder.add(f"{FOLDER}/{f}", captions(*parts, settype), 0, f"settype{settype}")
    return builder.build()
