"""Drawing and writing the shapes world: each scene rendered to a PNG, the scene files, world.json last.

    generate_world(WorldConfig(seed=0), "data/world")      # images/{split}/NNNNNN.png, scenes/{split}.json

train and val scenes also get NNNNNN_opposite.png, their opposite image (`scenes.opposite_scene`), drawn
with the same background and colour jitter as the scene itself, from a copy of the generator's state
(so every other image is the same as in a world without opposites).

The scenes themselves (what is where, which captions are true) come from `scenes.py`; this module only
draws them (`render`, anti-aliased shapes on a plain background) and writes them, world.json last so
that a crash leaves no world that looks complete.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...cores import cpu_cores
from .files import FORMAT, SPLITS, write_world_json
from .scenes import FAMILIES, PALETTE, RELATIONS, Obj, WorldConfig, _plan, _scene, heldout_combos, opposite_scene

__all__ = ["generate_world", "render"]


def _outline(shape, cx, cy, s):
    r = s / 2
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)]
    if shape == "star":
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
        return list(zip(cx + rad * np.cos(ang), cy + rad * np.sin(ang)))
    t, q = r * 0.36, r * 0.9  # cross: a plus sign
    return [
        (cx - t, cy - q),
        (cx + t, cy - q),
        (cx + t, cy - t),
        (cx + q, cy - t),
        (cx + q, cy + t),
        (cx + t, cy + t),
        (cx + t, cy + q),
        (cx - t, cy + q),
        (cx - t, cy + t),
        (cx - q, cy + t),
        (cx - q, cy - t),
        (cx - t, cy - t),
    ]


def shades(cfg: WorldConfig) -> dict[str, np.ndarray]:
    """Each colour's RGB in this world: the palette's, moved by up to `cfg.shade` per channel (seeded)."""
    rng = np.random.default_rng([cfg.seed, 99])
    return {c: np.array(PALETTE[c]) + (rng.integers(-cfg.shade, cfg.shade + 1, 3) if cfg.shade else 0) for c in PALETTE}


def render(objects: Sequence[Obj], cfg: WorldConfig, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB image: light tinted background, shapes with slight colour jitter, blur, noise."""
    k, n = cfg.supersample, cfg.image_size
    palette = shades(cfg)
    bg = np.clip(rng.integers(195, 241) + rng.integers(-8, 9, 3), 0, 255)
    im = Image.new("RGB", (n * k, n * k), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(im)
    for o in objects:
        fill = tuple(int(v) for v in np.clip(palette[o.colour] + rng.integers(-12, 13, 3), 0, 255))
        cx, cy, s = (o.x + 0.5) * k, (o.y + 0.5) * k, o.size * k
        if o.shape == "circle":
            draw.ellipse([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], fill=fill)
        elif o.shape == "square":
            draw.rectangle([cx - s * 0.44, cy - s * 0.44, cx + s * 0.44, cy + s * 0.44], fill=fill)
        else:
            draw.polygon(_outline(o.shape, cx, cy, s), fill=fill)
    im = im.resize((n, n), Image.Resampling.BOX)
    if cfg.blur:
        im = im.filter(ImageFilter.GaussianBlur(cfg.blur))
    if cfg.noise:
        arr = np.asarray(im, dtype=np.float32) + cfg.noise * rng.standard_normal((n, n, 3), np.float32)
        im = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    return im


def _write_split(cfg: WorldConfig, root: Path, split_no: int, split: str, held: list) -> int:
    """One split's images and scenes/{split}.json; its number of scenes."""
    rng = np.random.default_rng([cfg.seed, split_no + 1])
    mode = {"pretrain": "web", "train": "dcsm", "val": "dcsm", "test": "probe", "heldout_val": "dcsm-heldout"}.get(
        split, "heldout"
    )
    held_set = set(held)
    pool = [(c, s) for c in cfg.colours for s in cfg.shapes if split.startswith("heldout") or (c, s) not in held_set]
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    scenes, seen = [], {}
    for i, family in enumerate(_plan(cfg, split)):
        j = seen[family] = seen.get(family, -1) + 1  # index within the family: balances kinds
        scene = _scene(rng, cfg, family, j, pool, held_set, mode)
        file = f"images/{split}/{i:06d}.png"
        twin = np.random.default_rng()
        twin.bit_generator.state = rng.bit_generator.state  # the opposite gets the same background and jitter
        render([Obj(**o) for o in scene["objects"]], cfg, rng).save(root / file, compress_level=1)
        if mode.startswith("dcsm"):
            objs, caption = opposite_scene(scene)
            opp = f"images/{split}/{i:06d}_opposite.png"
            render(objs, cfg, twin).save(root / opp, compress_level=1)
            scene["opposite"] = {"file": opp, "objects": [asdict(o) for o in objs], "caption": caption}
        scenes.append({"file": file, **scene})
    for stale in folder.glob("*.png"):  # left by an earlier, larger world
        stem = stale.stem.removesuffix("_opposite")
        if stem.isdigit() and (int(stem) >= len(scenes) or stem != stale.stem and "opposite" not in scenes[int(stem)]):
            stale.unlink()
    (root / "scenes").mkdir(exist_ok=True)
    write_world_json(
        root / "scenes" / f"{split}.json", {"format": FORMAT, "split": split, "scenes": scenes}, rows="scenes"
    )
    return len(scenes)


def generate_world(cfg: WorldConfig, root: str | os.PathLike, workers: int | None = None) -> Path:
    """Write images/{split}/NNNNNN.png, scenes/{split}.json, then world.json last; returns root.

    Each split draws from its own generator, so on Linux the splits are written in parallel
    processes (`workers`, default one per core; the largest split first), with the same bytes as
    one after the other."""
    root = Path(root)
    held = heldout_combos(cfg)
    root.mkdir(parents=True, exist_ok=True)
    (root / "world.json").unlink(missing_ok=True)  # the marker goes first, so a crash leaves none
    jobs = [(cfg, root, split_no, split, held) for split_no, split in enumerate(SPLITS)]
    workers = min(len(jobs), workers or cpu_cores()) if sys.platform == "linux" else 1
    if workers > 1:  # forked: no re-import of the caller's script, and the children use numpy and PIL only
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            counts = dict(zip(SPLITS, pool.map(_write_split, *zip(*jobs))))
    else:
        counts = {job[3]: _write_split(*job) for job in jobs}
    write_world_json(
        root / "world.json",
        {
            "format": FORMAT,
            "config": asdict(cfg),
            "colours": {c: PALETTE[c] for c in cfg.colours},
            "shapes": list(cfg.shapes),
            "relations": list(RELATIONS),
            "families": list(FAMILIES),
            "heldout": [list(c) for c in held],
            "counts": counts,
        },
    )
    return root
