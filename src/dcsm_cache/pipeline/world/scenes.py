"""The shapes world: a seeded, self-contained world of coloured shapes with captions and probes.

    generate_world(WorldConfig(seed=0), "data/world")

Each image shows 1-3 non-overlapping coloured shapes on a light, noisy background. Splits:
`pretrain` (web-style captions that only list objects), `train`/`val` (DCSM items: a positive and
3 minimal-edit hard negatives, families mixed, each with an opposite image of which its first
negative is true: `opposite_scene`), `test`/`heldout` (probe items per family:
[positive, hard negative]) and `heldout_val` (DCSM items like `val`'s, each scene with a held-out
combo: where a recipe's generalisation to unseen combinations is measured and chosen, so that the
`heldout` probes stay a test). Families: binding ("a red circle and a blue square" vs attributes
swapped), spatial ("a red circle above a blue square" vs relation flipped or objects swapped) and
negation ("a red circle with/without a blue square"). A seeded set of (colour, shape) combos is
held out: no scene or caption outside the `heldout` and `heldout_val` splits contains one, and every
scene of those two contains at least one. `caption_is_true` parses a caption and checks it against a scene's
objects, so every negative is verifiably false. `world.json` is written last and marks a
complete world; the loader is `benchmarks/shapes.py`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from ...errors import BadInputError, ConfigError

PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 0),
    "purple": (140, 50, 190),
    "orange": (255, 130, 0),
    "black": (20, 20, 20),
    "pink": (250, 110, 180),
    "brown": (130, 75, 30),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
RELATIONS = {
    "above": "below",
    "below": "above",
    "to the left of": "to the right of",
    "to the right of": "to the left of",
}
FAMILIES = ("binding", "spatial", "negation")
_WEB_PREFIXES = ("", "", "a photo of ", "a picture of ", "an image of ", "a drawing of ")
Combo = tuple  # (colour, shape)


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    image_size: int = 64
    n_pretrain: int = 20000  # images with one web caption each
    n_train: int = 6000  # DCSM training items, families mixed
    n_val: int = 600  # DCSM validation items, families mixed
    n_test: int = 1500  # probe items per family
    n_heldout: int = 500  # probe items per family, each scene with a held-out combo
    n_heldout_val: int = 600  # DCSM validation items, families mixed, each scene with a held-out combo
    heldout_fraction: float = 0.2
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "black")
    shapes: tuple[str, ...] = SHAPES
    min_size: int = 14  # object bounding-box side, pixels
    max_size: int = 20
    gap: int = 3  # least empty pixels between two objects' boxes
    noise: float = 0.0  # std of per-pixel Gaussian noise, 0-255 (noise makes PNGs 10x bigger)
    supersample: int = 3  # draw at this many times the size, then downsample
    shade: int = 0  # each colour's RGB moved by up to this much per channel, one seeded shift per colour
    blur: float = 0.0  # radius of a Gaussian blur over the drawn image, pixels

    def __post_init__(self):
        bad = [c for c in self.colours if c not in PALETTE] + [s for s in self.shapes if s not in SHAPES]
        if bad:
            raise ConfigError(f"world: unknown colour/shape {', '.join(bad)} (known: {', '.join([*PALETTE, *SHAPES])})")
        if len(set(self.colours)) < 4 or len(set(self.shapes)) < 4:
            raise ConfigError("world: need at least 4 distinct colours and 4 distinct shapes")
        if not 1 <= self.min_size <= self.max_size or 2 * (self.max_size + self.gap + 1) > self.image_size:
            raise ConfigError(
                f"world: sizes {self.min_size}-{self.max_size} do not fit 2 objects side by side "
                f"in {self.image_size} px"
            )
        if not 0 <= self.heldout_fraction < 0.5:
            raise ConfigError(f"world: heldout_fraction={self.heldout_fraction} must be in [0, 0.5)")
        n_held = round(self.heldout_fraction * len(self.colours) * len(self.shapes))
        if (self.n_heldout or self.n_heldout_val) and n_held < 1:
            raise ConfigError("world: heldout_fraction holds out no combo; raise it or set n_heldout=n_heldout_val=0")
        if not 0 <= self.shade <= 60 or self.blur < 0:
            raise ConfigError(f"world: shade={self.shade} must be in 0..60 and blur={self.blur} not negative")
        if min(self.n_pretrain, self.n_train, self.n_val, self.n_test, self.n_heldout, self.n_heldout_val) < 0:
            raise ConfigError("world: split counts must not be negative")


@dataclass(frozen=True)
class Obj:
    """One shape: colour and shape names, centre (x, y) and bounding-box side, in pixels."""

    colour: str
    shape: str
    x: int
    y: int
    size: int

    @property
    def combo(self) -> Combo:
        return (self.colour, self.shape)


def phrase(combo: Combo, article: bool = True) -> str:
    """'a red circle', 'an orange star', or without the article 'red circle'."""
    colour, shape = combo
    return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}" if article else f"{colour} {shape}"


# ---- captions: parse and check ------------------------------------------------------------

_OBJ = re.compile(r"^(?:an? )?(\w+) (\w+)$")
_CLAUSE = re.compile(r"^(.+?) (to the left of|to the right of|above|below|without|with) (.+)$")


def parse_caption(caption: str) -> tuple[str, list[Combo]]:
    """(kind, combos): kind is 'list', 'with', 'without' or a relation; combos in caption order."""
    text = caption.strip().lower()
    for prefix in filter(None, _WEB_PREFIXES):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    m = _CLAUSE.match(text)
    kind, parts = (m.group(2), [m.group(1), m.group(3)]) if m else ("list", re.split(r", | and ", text))
    combos = []
    for part in parts:
        o = _OBJ.match(part)
        if not o or o.group(1) not in PALETTE or o.group(2) not in SHAPES:
            raise BadInputError(f"caption {caption!r}: {part!r} is not '<colour> <shape>'")
        combos.append((o.group(1), o.group(2)))
    return kind, combos


def relation_holds(a: Obj, b: Obj, relation: str) -> bool:
    """True when `a` is wholly past `b` along the relation's axis and that axis dominates."""
    dx, dy = b.x - a.x, b.y - a.y  # image y grows downwards
    along, across = {"above": (dy, dx), "below": (-dy, dx), "to the left of": (dx, dy), "to the right of": (-dx, dy)}[
        relation
    ]
    return along >= (a.size + b.size) / 2 and abs(across) <= along


def caption_is_true(scene: Sequence[Obj | Mapping], caption: str) -> bool:
    """Whether `caption` describes the scene's objects (Obj or their JSON dicts) truly."""
    objs = [o if isinstance(o, Obj) else Obj(**o) for o in scene]
    kind, combos = parse_caption(caption)
    present = {o.combo for o in objs}
    if kind == "list" or kind == "with":
        return all(c in present for c in combos)
    if kind == "without":
        return combos[0] in present and combos[1] not in present
    return any(relation_holds(a, b, kind) for a in objs for b in objs if a.combo == combos[0] and b.combo == combos[1])


# ---- scenes ------------------------------------------------------------------------------


def heldout_combos(cfg: WorldConfig) -> list[Combo]:
    """The seeded held-out combos; every colour and shape keeps at least 2 training combos."""
    combos = [(c, s) for c in cfg.colours for s in cfg.shapes]
    k = round(cfg.heldout_fraction * len(combos))
    rng = np.random.default_rng([cfg.seed, 0])
    for _ in range(1000):
        held = {combos[i] for i in rng.choice(len(combos), k, replace=False)}
        if all(sum((c, s) not in held for s in cfg.shapes) >= 2 for c in cfg.colours) and all(
            sum((c, s) not in held for c in cfg.colours) >= 2 for s in cfg.shapes
        ):
            return sorted(held)
    raise ConfigError(f"world: cannot hold out {k} combos and keep 2 per colour and shape; lower heldout_fraction")


def _pick(rng, options):
    return options[rng.integers(len(options))] if options else None


def _pair(rng, pool):
    a = _pick(rng, pool)
    return a, _pick(rng, [c for c in pool if c[0] != a[0] and c[1] != a[1]])


def _fits(cfg, x, y, s, placed) -> bool:
    return all(max(abs(x - o.x), abs(y - o.y)) >= (s + o.size) / 2 + cfg.gap for o in placed)


def _place(rng, cfg, combos, relation=None):
    """Objects for `combos` at random non-overlapping spots; for a relation, combos[0] `relation` combos[1]."""
    sizes = rng.integers(cfg.min_size, cfg.max_size + 1, len(combos))
    lo, hi = (sizes + 1) // 2 + 1, cfg.image_size - (sizes + 1) // 2 - 1
    for _ in range(200):
        xy = rng.integers(lo[:, None], hi[:, None] + 1, (len(combos), 2))
        objs = [Obj(c, s, int(x), int(y), int(z)) for (c, s), (x, y), z in zip(combos, xy, sizes)]
        if relation is None:
            if all(_fits(cfg, o.x, o.y, o.size, objs[:i]) for i, o in enumerate(objs)):
                return objs
        elif _clear(cfg, objs[0], objs[1], relation):
            return objs
    return None


def _clear(cfg, a, b, relation) -> bool:
    """A stricter relation for generation, so that no scene is borderline for the checker."""
    grown = Obj(a.colour, a.shape, a.x, a.y, a.size + 2 * cfg.gap)
    if not relation_holds(grown, b, relation):
        return False
    dx, dy = abs(b.x - a.x), abs(b.y - a.y)
    return (dx if relation in ("above", "below") else dy) <= 0.5 * max(dx, dy)


def _binding(rng, cfg, pool, j):
    a, b = _pair(rng, pool)
    if b is None:
        return None
    present_c, present_s = {a[0], b[0]}, {a[1], b[1]}
    i = rng.integers(2)
    new_c = _pick(rng, [c for c in pool if c[1] == (a, b)[i][1] and c[0] not in present_c])
    new_s = _pick(rng, [c for c in pool if c[0] == (a, b)[i][0] and c[1] not in present_s])
    if new_c is None or new_s is None:
        return None

    def cap(x, y):
        return f"{phrase(x)} and {phrase(y)}"

    negs = {
        "swap": cap((b[0], a[1]), (a[0], b[1])),
        "colour": cap(new_c, b) if i == 0 else cap(a, new_c),
        "shape": cap(new_s, b) if i == 0 else cap(a, new_s),
    }
    return "pair", [a, b], None, cap(a, b), negs, "swap"


def _spatial(rng, cfg, pool, j):
    a, b = _pair(rng, pool)
    if b is None:
        return None
    rel = list(RELATIONS)[j % 4]
    negs = {
        "flip": f"{phrase(a)} {RELATIONS[rel]} {phrase(b)}",
        "swap": f"{phrase(b)} {rel} {phrase(a)}",
        "colour": f"{phrase((b[0], a[1]))} {rel} {phrase((a[0], b[1]))}",
    }
    return rel, [a, b], rel, f"{phrase(a)} {rel} {phrase(b)}", negs, ("flip", "swap")[rng.integers(2)]


def _negation(rng, cfg, pool, j):
    a, b = _pair(rng, pool)  # "with": a and b shown; "without": a and a distractor b shown
    if b is None:
        return None
    near = _pick(rng, [c for c in pool if (c[0] == b[0]) != (c[1] == b[1]) and c[0] != a[0] and c[1] != a[1]])
    if near is None:
        return None
    if j % 2 == 0:
        negs = {
            "flip": f"{phrase(a)} without {phrase(b)}",
            "near": f"{phrase(a)} with {phrase(near)}",
            "colour": f"{phrase((b[0], a[1]))} with {phrase((a[0], b[1]))}",
        }
        return "with", [a, b], None, f"{phrase(a)} with {phrase(b)}", negs, "flip"
    negs = {
        "flip": f"{phrase(a)} with {phrase(near)}",
        "near": f"{phrase(a)} without {phrase(b)}",
        "swap": f"{phrase(near)} without {phrase(a)}",
    }
    return "without", [a, b], None, f"{phrase(a)} without {phrase(near)}", negs, "flip"


def _web(rng, cfg, pool, j):
    n = int(rng.integers(1, 4))
    combos = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
    prefix = _WEB_PREFIXES[rng.integers(len(_WEB_PREFIXES))]
    article = bool(prefix) or rng.random() < 0.5
    parts = [phrase(c, article) for c in combos]
    text = parts[0] if n == 1 else ", ".join(parts[:-1]) + (" and " if rng.random() < 0.7 else ", ") + parts[-1]
    return str(n), combos, None, prefix + text, {}, None


_BUILDERS = {"binding": _binding, "spatial": _spatial, "negation": _negation, "pretrain": _web}


def _scene(rng, cfg, family, j, pool, held, mode) -> dict:
    """One scene of `family` by rejection: mode is 'web', 'dcsm', 'probe', 'heldout' or 'dcsm-heldout'
    (DCSM items, every scene with a held-out combo)."""
    allowed = set(pool)
    for _ in range(1000):
        built = _BUILDERS[family](rng, cfg, pool, j)
        if built is None:
            continue
        kind, combos, relation, positive, negs, probe_neg = built
        heldout = mode in ("heldout", "dcsm-heldout")
        if heldout and not any(c in held for c in combos):
            continue
        kinds = list(negs) if mode.startswith("dcsm") else [probe_neg] if probe_neg else []
        captions = [positive] + [negs[k] for k in kinds]
        if not heldout and any(c not in allowed for t in captions for c in parse_caption(t)[1]):
            continue
        objs = _place(rng, cfg, combos, relation)
        if objs is None:
            continue
        if not caption_is_true(objs, positive) or any(caption_is_true(objs, t) for t in captions[1:]):
            raise AssertionError(f"world generator bug: {captions} for {objs}")
        return {
            "family": family,
            "kind": kind,
            "objects": [asdict(o) for o in objs],
            "positive": positive,
            "negatives": captions[1:],
            "negative_kinds": kinds,
        }
    raise ConfigError(f"world: cannot sample a {family} scene from {len(pool)} combos; add colours or shapes")


def opposite_scene(scene: Mapping) -> tuple[list[Obj], str]:
    """The scene's opposite image and the caption that is true of it (its first hard negative):
    binding swaps the two colours, spatial swaps the two positions (the relation flips), negation
    removes the object a "with" caption names, or puts the named absent object in the distractor's
    place for "without". The positive caption is false of the opposite, so the two images are each
    other's image-side hard negative."""
    a, b = (Obj(**o) for o in scene["objects"])
    kind, caption = scene["kind"], scene["negatives"][0]
    if scene["family"] == "binding":
        objs = [Obj(b.colour, a.shape, a.x, a.y, a.size), Obj(a.colour, b.shape, b.x, b.y, b.size)]
    elif scene["family"] == "spatial":
        objs = [Obj(a.colour, a.shape, b.x, b.y, a.size), Obj(b.colour, b.shape, a.x, a.y, b.size)]
    elif kind == "with":
        objs = [a]
    else:
        near = parse_caption(caption)[1][1]
        objs = [a, Obj(near[0], near[1], b.x, b.y, b.size)]
    if not caption_is_true(objs, caption) or caption_is_true(objs, scene["positive"]):
        raise AssertionError(f"world generator bug: opposite {objs} of {scene['positive']!r} vs {caption!r}")
    return objs, caption


def _plan(cfg: WorldConfig, split: str) -> list[str]:
    """The family of each scene in `split`: probe splits hold n_test / n_heldout per family."""
    if split == "pretrain":
        return ["pretrain"] * cfg.n_pretrain
    n = {"train": cfg.n_train, "val": cfg.n_val, "test": 3 * cfg.n_test, "heldout": 3 * cfg.n_heldout}.get(
        split, cfg.n_heldout_val
    )
    return [FAMILIES[i % len(FAMILIES)] for i in range(n)]
