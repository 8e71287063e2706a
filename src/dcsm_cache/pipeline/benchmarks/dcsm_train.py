"""The DCSM paper's training sets in their native layout, each image linked to its opposite image.

    ds = load("data", source="spatial")    # objaverse_train_composite_newrelations_withbg/, CUTMIX_ opposites
    ds = load("data", source="colour")     # objaverse_attributes_overlay_withbg/ (+ objaverse_smallbig_withbg/)
    ds = load("data", source="negation")   # negated_pairs_cocotrain_v1.json: img1 against img2
    ds = load("data", source="all")        # the three together (negation where its JSON is there): DCSM-synth

As the reference's `training_util.make_and_return_train_data(data_path)` reads them
(docs/benchmarks.md §4). Each item is one image with [its caption, its opposite caption], correct 0,
and `opposite`, the image its opposite caption describes; one item per image and caption version
(tag `version`: "v0" or "v1", the reference's `PairedDataset` halves), subset "train", tag `source`.

- Spatial: `A_{above|below|leftof|rightof}_B.{png,jpg,jpeg}` (three `_` parts), opposite
  `CUTMIX_<name>`. v0: "A picture of a {A} {rel} a {B}" / "A picture of a {B} {rel} a {A}";
  v1 (the same scene said the other way round): "A picture of a {B} {rel'} a {A}" /
  "A picture of a {A} {rel'} a {B}", rel' the opposite relation's phrase.
- Colour and size: `c1_A_c2_B.png` (four parts), opposite `MIRROR_<name>`, the captions of NCD's two
  settypes (`ncd.captions`); names holding "small" live in the sibling `objaverse_smallbig_withbg/`.
- Negation: records `{img1_path, img2_path, img1_obj: [v0, v1], img2_obj: [v0, v1]}`, paths relative
  to `root`; "An image of a {img1_obj[v]} {neg} a {img2_obj[v]}" / "An image of a {img2_obj[v]} {neg'}
  a {img1_obj[v]}", opposite img2. The reference draws `neg` and `neg'` from NEGATIONS at every step;
  a cache fixes one draw per item and version, seeded (`seed`), so the same seed gives the same manifest.

File order: the reference uses `os.listdir`; names are sorted here so manifests are deterministic.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from . import ncd
from ._common import field, read_json, require_dir, require_file, text

SPATIAL = "objaverse_train_composite_newrelations_withbg"
COLOUR = "objaverse_attributes_overlay_withbg"
SMALLBIG = "objaverse_smallbig_withbg"
NEGATION = "negated_pairs_cocotrain_v1.json"
EXTENSIONS = (".png", ".jpg", ".jpeg")
RELATIONS = {"above": "above", "below": "below", "rightof": "to the right of", "leftof": "to the left of"}
OPPOSITE = {"above": "below", "below": "above", "rightof": "leftof", "leftof": "rightof"}
NEGATIONS = ("and not", "but no", "without")
LAYOUT = "the DCSM training data layout (docs/benchmarks.md §4)"


def spatial_captions(a: str, rel: str, b: str, version: int) -> list[str]:
    """[caption, opposite caption] of `A_rel_B`, as the reference writes them."""
    if version == 0:
        phrase = RELATIONS[rel]
        return [f"A picture of a {a} {phrase} a {b}", f"A picture of a {b} {phrase} a {a}"]
    phrase = RELATIONS[OPPOSITE[rel]]
    return [f"A picture of a {b} {phrase} a {a}", f"A picture of a {a} {phrase} a {b}"]


def negation_captions(obj1: str, obj2: str, neg: str, neg2: str) -> list[str]:
    return [f"An image of a {obj1} {neg} a {obj2}", f"An image of a {obj2} {neg2} a {obj1}"]


def _versions(versions, name: str) -> tuple[int, ...]:
    versions = (versions,) if isinstance(versions, int) else tuple(versions)
    if not versions or any(v not in (0, 1) for v in versions):
        raise ConfigError(f"{name}: versions {versions!r} should be 0, 1 or both")
    return versions


def _images(folder: Path, keep) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.endswith(EXTENSIONS) and keep(f) and (folder / f).is_file())


def _opposite(folder: Path, prefix: str, f: str, name: str) -> str:
    if not (folder / f"{prefix}{f}").is_file():
        raise InputNotFoundError(f"{name}: {folder / f} has no opposite image {prefix}{f} beside it ({LAYOUT})")
    return f"{prefix}{f}"


def _parts(folder: Path, f: str, n: int, form: str, name: str) -> list[str]:
    parts = os.path.splitext(f)[0].split("_")
    if len(parts) != n or not all(parts):
        raise BadInputError(f"{name}: {folder / f}: the name should be {form} ({n} parts separated by '_')")
    return parts


SOURCES = ("spatial", "colour", "negation", "all")


def expected(source: str = "spatial", **_) -> tuple[str, ...]:
    """What the workflow checks for before it plans this source: its folder or its JSON."""
    return ({"spatial": SPATIAL, "colour": COLOUR, "negation": NEGATION, "all": SPATIAL}[source],)


def load(
    root: str | os.PathLike, name: str = "dcsm_train", source: str = "spatial", versions=(0, 1), seed: int = 0
) -> Dataset:
    """One of the three training sources (`spatial`, `colour`, `negation`), both caption versions by default."""
    if source not in SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(SOURCES)}")
    if source == "all":  # the three in one dataset (one store): the reference trains on them together
        parts = [load_spatial(root, name, versions), load_colour(root, name, versions)]
        if Path(root, NEGATION).is_file():
            parts.append(load_negation(root, name, versions, seed))
        return _union(name, root, parts)
    if source == "negation":
        return load_negation(root, name, versions, seed)
    return (load_spatial if source == "spatial" else load_colour)(root, name, versions)


def _union(name: str, root, parts: list[Dataset]) -> Dataset:
    builder = DatasetBuilder(name, root)
    for ds in parts:
        for it in ds.items:
            opposite = None if it.opposite is None else ds.images[it.opposite]
            caps = [ds.captions[c] for c in it.candidates]
            builder.add(ds.images[it.image], caps, it.correct, it.subset, opposite, **it.tags)
    return builder.build()


def load_spatial(root: str | os.PathLike, name: str = "dcsm_train_spatial", versions=(0, 1)) -> Dataset:
    """The Objaverse spatial composites and their CUTMIX_ opposites (see the module docstring)."""
    versions = _versions(versions, name)
    folder = require_dir(Path(root, SPATIAL), name, LAYOUT)
    files = _images(folder, lambda f: "CUTMIX" not in f and any(r in f for r in RELATIONS))
    if not files:
        raise InputNotFoundError(f"{name}: expected A_above_B.png images in {folder} ({LAYOUT})")
    builder = DatasetBuilder(name, root)
    for f in files:
        a, rel, b = _parts(folder, f, 3, "A_rel_B with rel one of " + "/".join(RELATIONS), name)
        if rel not in RELATIONS:
            raise BadInputError(f"{name}: {folder / f}: relation {rel!r} is not one of {', '.join(RELATIONS)}")
        opposite = f"{SPATIAL}/{_opposite(folder, 'CUTMIX_', f, name)}"
        for v in versions:
            builder.add(f"{SPATIAL}/{f}", spatial_captions(a, rel, b, v), 0, "train", opposite, **_tags("spatial", v))
    return builder.build()


def load_colour(root: str | os.PathLike, name: str = "dcsm_train_colour", versions=(0, 1)) -> Dataset:
    """The Objaverse colour overlays (and the small/big sibling) with their MIRROR_ opposites."""
    versions = _versions(versions, name)
    base = require_dir(Path(root, COLOUR), name, LAYOUT)
    folders = [(COLOUR, base, lambda f: "small" not in f)]
    if Path(root, SMALLBIG).is_dir():
        folders.append((SMALLBIG, Path(root, SMALLBIG), lambda f: "small" in f))
    builder, n = DatasetBuilder(name, root), 0
    for rel, folder, keep in folders:
        for f in _images(folder, lambda f: not f.startswith("MIRROR") and keep(f)):
            parts = _parts(folder, f, 4, "c1_A_c2_B", name)
            opposite = f"{rel}/{_opposite(folder, 'MIRROR_', f, name)}"
            for v in versions:
                builder.add(f"{rel}/{f}", ncd.captions(*parts, v), 0, "train", opposite, **_tags("colour", v))
            n += 1
    if not n:
        raise InputNotFoundError(f"{name}: expected c1_A_c2_B.png images in {base} ({LAYOUT})")
    return builder.build()


def load_negation(
    root: str | os.PathLike, name: str = "dcsm_train_negation", versions=(0, 1), seed: int = 0
) -> Dataset:
    """COCO negation pairs: img1 "with A but no B" against img2 (see the module docstring)."""
    versions = _versions(versions, name)
    path = require_file(Path(root, NEGATION), name, LAYOUT)
    records = read_json(path, name)
    if not isinstance(records, list) or not records:
        raise BadInputError(f"{name}: {path} should be a non-empty list of img1_path/img2_path records")
    rng = random.Random(seed)
    builder = DatasetBuilder(name, root)
    for i, r in enumerate(records):
        paths = [text(field(r, k, name, path, i), name, path, i, k) for k in ("img1_path", "img2_path")]
        objs = [field(r, k, name, path, i) for k in ("img1_obj", "img2_obj")]
        for k, o in zip(("img1_obj", "img2_obj"), objs):
            if not (isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) for x in o)):
                raise BadInputError(f"{name}: {path} row {i}: {k} should be [name_v0, name_v1], got {o!r}")
        for p in paths:
            if not Path(root, p).is_file():
                raise InputNotFoundError(f"{name}: {path} row {i}: image {p} not found under {root}")
        for v in versions:
            caps = negation_captions(objs[0][v], objs[1][v], rng.choice(NEGATIONS), rng.choice(NEGATIONS))
            builder.add(paths[0], caps, 0, "train", paths[1], **_tags("negation", v))
    return builder.build()


def _tags(source: str, version: int) -> dict[str, str]:
    return {"source": source, "version": f"v{version}"}
