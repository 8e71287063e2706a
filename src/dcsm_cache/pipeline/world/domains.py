"""Rendering domains: one shape per image, drawn in several styles, so that class and domain vary independently.

    generate_domains(DomainsConfig(seed=0), "data/domains")   # train/<domain>/<class>/*.png, eval/..., domains.json

The class is the shape (10 outlines); the domain is how it is drawn:

- `real`: a filled shape of a palette colour with colour jitter on a tinted, shaded, noisy background
  (the "natural" domain of the study);
- `clipart`: a flat saturated fill with a thick dark outline on white;
- `painting`: a brushed fill (strokes of the shape's colour and a darker shade) on a coloured,
  blotchy canvas;
- `sketch`: the outline alone, traced twice with a wobbling dark pencil on paper;
- `quickdraw`: the outline as a jittered, sometimes unclosed black polyline on white, no fill.

Position, size, rotation (±15°) and colour are drawn per scene. `eval/` draws every scene once in
every domain under the same file name (`eval/<domain>/<class>/<scene>.png`), so that rows of two
domains pair up (cross-domain CKA); `train/` draws independent scenes per domain. Both are DomainNet's
layout, read by `benchmarks/imagefolder.py` unchanged; `domains.json` is written last and marks a
complete set. The study's mixtures of these domains are `benchmarks/domains_mixture.py`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...config import at_least, require
from .files import FORMAT, write_world_json
from .generate import _outline
from .scenes import PALETTE

__all__ = ["CLASSES", "DOMAINS", "DomainsConfig", "generate_domains", "render_domain"]

DOMAINS = ("real", "clipart", "painting", "sketch", "quickdraw")
CLASSES = ("arrow", "circle", "cross", "diamond", "heart", "hexagon", "pentagon", "square", "star", "triangle")
MARKER = "domains.json"


@dataclass(frozen=True)
class DomainsConfig:
    seed: int = 0
    image_size: int = 64
    domains: tuple[str, ...] = DOMAINS
    classes: tuple[str, ...] = CLASSES
    n_train: int = 60  # pretraining images per (domain, class), independent scenes
    n_eval: int = 20  # evaluation scenes per class, each drawn in every domain
    min_size: int = 26  # the shape's bounding-box side, pixels
    max_size: int = 46
    supersample: int = 3

    def __post_init__(self):
        bad = [d for d in self.domains if d not in DOMAINS] + [c for c in self.classes if c not in CLASSES]
        require(not bad, "domains", f"unknown domain/class {', '.join(bad)} (known: {', '.join(DOMAINS + CLASSES)})")
        require(len(set(self.domains)) >= 2, "domains", "need at least 2 distinct domains")
        require(len(set(self.classes)) >= 2, "domains", "need at least 2 distinct classes")
        at_least("domains", n_train=(self.n_train, 1), n_eval=(self.n_eval, 1), supersample=(self.supersample, 1))
        require(
            8 <= self.min_size <= self.max_size < self.image_size,
            "domains",
            f"sizes {self.min_size}-{self.max_size} must lie in [8, image_size={self.image_size})",
        )


def polygon(shape: str, cx: float, cy: float, s: float, angle: float = 0.0) -> list[tuple[float, float]]:
    """The shape's outline as points around (cx, cy), bounding side `s`, rotated by `angle` radians."""
    r = s / 2
    if shape in ("circle", "hexagon", "pentagon", "square"):
        n = {"circle": 40, "hexagon": 6, "pentagon": 5, "square": 4}[shape]
        start = -np.pi / 2 if shape != "square" else -np.pi / 4
        ang = start + np.arange(n) * 2 * np.pi / n
        rad = r if shape != "square" else r * 1.25
        pts = list(zip(cx + rad * np.cos(ang), cy + rad * np.sin(ang)))
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        pts = list(zip(cx + r * x / 17, cy - r * (y + 2) / 17))
    elif shape == "arrow":
        h, t = r * 0.45, r * 0.18  # head half-height, shaft half-height
        pts = [(cx - r, cy - t), (cx + r * 0.1, cy - t), (cx + r * 0.1, cy - h * 2), (cx + r, cy)]
        pts += [(cx + r * 0.1, cy + h * 2), (cx + r * 0.1, cy + t), (cx - r, cy + t)]
    else:
        pts = [(float(x), float(y)) for x, y in _outline(shape, cx, cy, s)]
    c, s_ = np.cos(angle), np.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s_, cy + (x - cx) * s_ + (y - cy) * c) for x, y in pts]


def _jitter(rgb, rng, amount=14):
    return tuple(int(v) for v in np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255))


def _noise(im: Image.Image, rng, std: float) -> Image.Image:
    arr = np.asarray(im, dtype=np.float32) + std * rng.standard_normal((*im.size[::-1], 3), np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def _blotches(n: int, base, rng, count: int, spread: int) -> Image.Image:
    """A canvas of `base` colour with soft blotches of nearby colours (a painting's ground)."""
    im = Image.new("RGB", (n, n), _jitter(base, rng, 10))
    draw = ImageDraw.Draw(im)
    for _ in range(count):
        x, y, rad = rng.integers(0, n), rng.integers(0, n), rng.integers(n // 10, n // 4)
        draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=_jitter(base, rng, spread))
    return im.filter(ImageFilter.GaussianBlur(n / 20))


def render_domain(
    shape: str, colour: str, domain: str, size: int, xy, angle: float, n: int, k: int, rng
) -> Image.Image:
    """One shape of `colour` drawn in `domain` at centre `xy`, side `size` (pixels of an n×n image)."""
    N, cx, cy, s = n * k, (xy[0] + 0.5) * k, (xy[1] + 0.5) * k, size * k
    pts = polygon(shape, cx, cy, s, angle)
    fill = PALETTE[colour]
    if domain == "real":
        top, bottom = np.array(_jitter((215, 215, 210), rng, 25)), np.array(_jitter((175, 180, 185), rng, 25))
        ramp = np.linspace(0, 1, N)[:, None, None]
        im = Image.fromarray((top * (1 - ramp) + bottom * ramp).repeat(N, 1).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        shadow = [(x + 2 * k, y + 2 * k) for x, y in pts]
        draw.polygon(shadow, fill=tuple(int(v * 0.7) for v in np.asarray(im)[N // 2, N // 2]))
        draw.polygon(pts, fill=_jitter(fill, rng))
        return _noise(im.resize((n, n), Image.Resampling.BOX), rng, 6.0)
    if domain == "clipart":
        im = Image.new("RGB", (N, N), (255, 255, 255))
        ImageDraw.Draw(im).polygon(pts, fill=fill, outline=(25, 25, 25), width=int(2.5 * k))
        return im.resize((n, n), Image.Resampling.BOX)
    if domain == "painting":
        ground = PALETTE[list(PALETTE)[rng.integers(len(PALETTE))]]
        im = _blotches(N, tuple(int(0.45 * v + 130) for v in ground), rng, 14, 40)
        mask = Image.new("L", (N, N), 0)
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        strokes = Image.new("RGB", (N, N), _jitter(fill, rng, 20))
        draw = ImageDraw.Draw(strokes)
        dark = tuple(int(v * 0.6) for v in fill)
        for _ in range(40):
            x, y = rng.integers(0, N, 2)
            dx, dy = rng.integers(-3 * k, 3 * k + 1, 2)
            draw.line(
                [(x, y), (x + 3 * dx, y + dy)], fill=_jitter(dark if rng.random() < 0.5 else fill, rng, 30), width=k
            )
        im.paste(strokes.filter(ImageFilter.GaussianBlur(k / 2)), (0, 0), mask)
        return _noise(im.resize((n, n), Image.Resampling.BOX), rng, 3.0)
    if domain == "sketch":
        im = Image.new("RGB", (N, N), _jitter((244, 240, 230), rng, 6))
        draw = ImageDraw.Draw(im)
        pencil = _jitter((60, 60, 60), rng, 20)
        for _ in range(2):
            wobble = [(x + rng.normal(0, 0.8 * k), y + rng.normal(0, 0.8 * k)) for x, y in pts]
            draw.line(wobble + wobble[:1], fill=pencil, width=max(1, int(1.2 * k)))
        return _noise(im.resize((n, n), Image.Resampling.BOX), rng, 4.0)
    if domain == "quickdraw":
        im = Image.new("RGB", (N, N), (255, 255, 255))
        keep = pts[:: max(1, len(pts) // 12)]  # few vertices: a hand-drawn polyline
        line = [(x + rng.normal(0, 1.5 * k), y + rng.normal(0, 1.5 * k)) for x, y in keep]
        closed = line + line[:1] if rng.random() < 0.7 else line
        ImageDraw.Draw(im).line(closed, fill=(0, 0, 0), width=int(1.8 * k), joint="curve")
        return im.resize((n, n), Image.Resampling.BOX)
    raise ValueError(f"unknown domain {domain!r}")


def _scene(cfg: DomainsConfig, rng) -> tuple[str, int, tuple[int, int], float]:
    """(colour, size, centre, angle) of one scene."""
    size = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    lo, hi = size // 2 + 2, cfg.image_size - size // 2 - 2
    xy = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
    colour = list(PALETTE)[rng.integers(len(PALETTE))]
    return colour, size, xy, float(rng.uniform(-np.pi / 12, np.pi / 12))


def generate_domains(cfg: DomainsConfig, root: str | os.PathLike) -> Path:
    """Write train/<domain>/<class>/NNNNN.png, eval/<domain>/<class>/NNNNN.png, then domains.json; returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    n, k = cfg.image_size, cfg.supersample
    for ci, cls in enumerate(cfg.classes):
        for di, domain in enumerate(cfg.domains):
            rng = np.random.default_rng([cfg.seed, 1, CLASSES.index(cls), DOMAINS.index(domain)])
            folder = root / "train" / domain / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(cfg.n_train):
                colour, size, xy, angle = _scene(cfg, rng)
                render_domain(cls, colour, domain, size, xy, angle, n, k, rng).save(folder / f"{i:05d}.png")
        rng = np.random.default_rng([cfg.seed, 2, CLASSES.index(cls)])
        for i in range(cfg.n_eval):
            colour, size, xy, angle = _scene(cfg, rng)
            for domain in cfg.domains:
                folder = root / "eval" / domain / cls
                folder.mkdir(parents=True, exist_ok=True)
                render_domain(cls, colour, domain, size, xy, angle, n, k, rng).save(folder / f"{i:05d}.png")
    for split, count in (("train", cfg.n_train), ("eval", cfg.n_eval)):  # what an earlier, larger set left
        for folder in [*(root / split).iterdir(), *(root / split).glob("*/*")]:
            if folder.is_dir() and folder.name not in (cfg.domains if folder.parent.name == split else cfg.classes):
                shutil.rmtree(folder)
        for stale in (root / split).glob("*/*/*.png"):
            if stale.stem.isdigit() and int(stale.stem) >= count:
                stale.unlink()
    doc = {"format": FORMAT, "config": asdict(cfg), "domains": list(cfg.domains), "classes": list(cfg.classes)}
    write_world_json(root / MARKER, doc | {"counts": {"train": cfg.n_train, "eval": cfg.n_eval}})
    return root
