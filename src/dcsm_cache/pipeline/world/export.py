"""Export the shapes world's probe sets in the native layouts of What'sUp, CLEVR-bind and SugarCREPE.

    export_world("data/world", "data/world_export", formats=("whatsup", "clevr_bind", "sugarcrepe"))

Each probe split (`test`, `heldout`) becomes one data root, `out/{split}/`, laid out like the DCSM
reference's `data/` folder, so the benchmark loaders read it unchanged:

- `whatsup`: spatial probes as What'sUp Controlled_Images A: `controlled_images_dataset.json` and
  `controlled_images/{colour-shape}_{prep}_{colour-shape-NNNNNN}.jpeg` (prep above, below, left_of,
  right_of: the world's relations are "above"/"below", not "on"/"under"), four caption options, the
  world's positive first, then the same objects under the other three relations.
  Load it as `whatsUp_A`.
- `clevr_bind`: binding probes as CLEVR-bind two-object rows, one per object of each image (PNG, as
  CLEVR's): pos = that object's "colour shape"; negatives = the other object's colour on this shape,
  this colour on the other shape (the attribute swaps), and this shape and colour each with an
  attribute no object in the image has (seeded). `test` is CLEVR's `val` split (seen combos),
  `heldout` its `gen` split (held-out combos): `clevr_bind_2obj_valid` / `clevr_bind_2obj_gen`.
- `sugarcrepe`: every probe as `data/{subset}.json` with images `val2017/NNNNNNNNNNNN.jpg`:
  binding swap -> swap_att, spatial relation flip -> replace_rel, spatial object swap -> swap_obj,
  negation (with <-> without, a replaced relational word) -> replace_rel. Load it as `sugarcrepe`.

Every caption is checked against the scene with the world's `caption_is_true`: options and negatives
are false, positives true; an item that fails is dropped and counted. In `test`, no derived caption
names a held-out combo (the world's own rule). `out/export.json` is written last and lists, per
split, each benchmark key and its item count.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...atomic import write_bytes
from ...errors import BadInputError, UnknownNameError
from ..benchmarks.sugarcrepe import SUBSETS as SUGARCREPE_SUBSETS
from .files import read_world
from .scenes import RELATIONS, caption_is_true, parse_caption, phrase

FORMATS = ("whatsup", "clevr_bind", "sugarcrepe")
SPLITS = ("test", "heldout")
CLEVR_SPLIT = {"test": "val", "heldout": "gen"}
PREP = {"above": "above", "below": "below", "to the left of": "left_of", "to the right of": "right_of"}
SUGARCREPE = {
    ("binding", "swap"): "swap_att",
    ("spatial", "flip"): "replace_rel",
    ("spatial", "swap"): "swap_obj",
    ("negation", "flip"): "replace_rel",
}


def benchmark_key(fmt: str, split: str) -> str:
    """The BENCHMARKS key that reads export format `fmt` of world split `split`."""
    return {
        "whatsup": "whatsUp_A",
        "sugarcrepe": "sugarcrepe",
        "clevr_bind": "clevr_bind_2obj_valid" if split == "test" else "clevr_bind_2obj_gen",
    }[fmt]


def _jpeg(png: Path) -> bytes:
    buf = io.BytesIO()
    with Image.open(png) as im:
        im.convert("RGB").save(buf, "JPEG", quality=95, subsampling=0)  # no chroma blur on small shapes
    return buf.getvalue()


def _whatsup(scene: dict, stem: str) -> tuple[str, list[str]] | None:
    rel, (a, b) = parse_caption(scene["positive"])
    options = [scene["positive"]] + [f"{phrase(a)} {r} {phrase(b)}" for r in RELATIONS if r != rel]
    if any(caption_is_true(scene["objects"], o) for o in options[1:]):
        return None
    return f"{'-'.join(a)}_{PREP[rel]}_{'-'.join(b)}-{stem}.jpeg", options


def _clevr_rows(scene: dict, info: dict, split: str, rng: np.random.Generator) -> list[list[str]]:
    """One [pos, 4 negatives] row per object of a binding scene (2 words each, no article)."""
    _, combos = parse_caption(scene["positive"])
    held = {tuple(c) for c in info["heldout"]} if split == "test" else set()
    colours, shapes = info["config"]["colours"], info["config"]["shapes"]
    rows = []
    for (c, s), (c2, s2) in ((combos[0], combos[1]), (combos[1], combos[0])):
        new_c = [x for x in colours if x not in (c, c2) and (x, s) not in held]
        new_s = [x for x in shapes if x not in (s, s2) and (c, x) not in held]
        if not new_c or not new_s:
            continue
        negs = [(c2, s), (c, s2), (new_c[rng.integers(len(new_c))], s), (c, new_s[rng.integers(len(new_s))])]
        row = [phrase(x, article=False) for x in [(c, s), *negs]]
        if caption_is_true(scene["objects"], row[0]) and not any(caption_is_true(scene["objects"], n) for n in row[1:]):
            rows.append(row)
    return rows


def export_split(world: Path, out: Path, info: dict, split: str, scenes: list[dict], formats) -> dict:
    """Write one probe split as a data root; returns {benchmark key: item count} and drops."""
    rng = np.random.default_rng([int(info["config"]["seed"]), 17, SPLITS.index(split)])
    whatsup, clevr, sugar, dropped = [], [], {}, 0
    for scene in scenes:
        png, stem = world / scene["file"], Path(scene["file"]).stem
        family, kind = scene["family"], scene["negative_kinds"][0]
        if not caption_is_true(scene["objects"], scene["positive"]):
            raise BadInputError(f"world {world}: positive {scene['positive']!r} of {scene['file']} is false")
        subset = SUGARCREPE.get((family, kind)) if "sugarcrepe" in formats else None
        jpeg = _jpeg(png) if subset or ("whatsup" in formats and family == "spatial") else b""
        if "whatsup" in formats and family == "spatial":
            got = _whatsup(scene, stem)
            if got is None:
                dropped += 1
            else:
                write_bytes(out / "controlled_images" / got[0], jpeg)
                whatsup.append({"image_path": f"data/controlled_images/{got[0]}", "caption_options": got[1]})
        if "clevr_bind" in formats and family == "binding":
            rows = _clevr_rows(scene, info, split, rng)
            dropped += 2 - len(rows)
            if rows:
                name = f"{stem}.png"
                write_bytes(out / "clevr_bind/two_object/images" / CLEVR_SPLIT[split] / name, png.read_bytes())
                clevr += [[name, *row] for row in rows]
        if subset:
            name = f"{int(stem):012d}.jpg"
            write_bytes(out / "val2017" / name, jpeg)
            records = sugar.setdefault(subset, {})
            records[str(len(records))] = {
                "filename": name,
                "caption": scene["positive"],
                "negative_caption": scene["negatives"][0],
            }
    counts = {}
    if "whatsup" in formats:
        (out / "controlled_images").mkdir(parents=True, exist_ok=True)
        write_bytes(out / "controlled_images_dataset.json", json.dumps(whatsup, indent=1))
        counts[benchmark_key("whatsup", split)] = len(whatsup)
    if "clevr_bind" in formats:
        (out / "clevr_bind/two_object/images" / CLEVR_SPLIT[split]).mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(
            [["file_name", "pos", "neg_0", "neg_1", "neg_2", "neg_3"], *clevr]
        )
        write_bytes(out / "clevr_bind/two_object" / f"{CLEVR_SPLIT[split]}.csv", buf.getvalue())
        counts[benchmark_key("clevr_bind", split)] = len(clevr)
    if "sugarcrepe" in formats:
        (out / "val2017").mkdir(parents=True, exist_ok=True)
        for subset in SUGARCREPE_SUBSETS:  # all seven files, as released; those the world has no edit for stay empty
            write_bytes(out / "data" / f"{subset}.json", json.dumps(sugar.get(subset, {}), indent=1))
        counts[benchmark_key("sugarcrepe", split)] = sum(len(r) for r in sugar.values())
    return {
        "root": split,
        "benchmarks": counts,
        "dropped": dropped,
        "sugarcrepe_subsets": {s: len(r) for s, r in sorted(sugar.items())},
    }


def export_world(
    world_root: str | os.PathLike,
    out_root: str | os.PathLike,
    formats: Sequence[str] | str = FORMATS,
    splits: Sequence[str] = SPLITS,
) -> dict:
    """Export the world's probe splits (see the module docstring); returns what export.json holds."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS] + [s for s in splits if s not in SPLITS]
    if bad or not formats:
        raise UnknownNameError(
            f"unknown export format or split {', '.join(bad) or '(none given)'}; "
            f"formats: {', '.join(FORMATS)}; splits: {', '.join(SPLITS)}"
        )
    world, out = Path(world_root), Path(out_root)
    info, scenes = read_world(world)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").unlink(missing_ok=True)  # written last: marks a complete export
    doc = {
        "format": 1,
        "world": str(world.resolve()),
        "formats": list(formats),
        "splits": {s: export_split(world, out / s, info, s, scenes[s], formats) for s in splits},
    }
    write_bytes(out / "export.json", json.dumps(doc, indent=1))
    return doc
