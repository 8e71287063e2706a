"""Linear probes on the shapes world: what a store's image tokens carry about each object.

    report = probe("stores/shapes-clip/shapes_train.zarr", "stores/shapes-clip/shapes_binding.zarr", "data/world")
    report["shape"]["accuracy"]             # a linear classifier of each object's shape, on the test store
    report["shape"]["pairs"]["circle/square"]  # how often it tells those two apart (chance 0.5)

A DCSM reads only the cosines of image tokens with text tokens, so whatever the image tokens near an
object do not carry, no scorer can recover: a binding probe "a red circle and a blue square" against
"a blue circle and a red square" is a coin toss for any scorer when the tokens cannot tell a circle
from a square. `grounding` asks whether a word finds its object; this asks whether the object's
tokens say what it is. Per object of every scene a store's manifest shows (opposite images
included), the features are its centre patch's token and the mean and max of the 3×3 patches around
it (each token L2-normalised, as the DCSM sees them); a softmax classifier per attribute (colour,
shape) is fit on the first store's objects and scored on the second's. `pairs` gives, for each two
classes, the accuracy of choosing between just those two on the objects of either: what a linear
reader of the tokens gets on a probe whose two captions differ in exactly that. `binding_ceiling` goes one step
further on the test store's binding scenes (two objects, "a red circle and a blue square" against its
swap): told where the objects are, the probe picks the more probable of the two shape assignments.
It reads the tokens far more directly than a DCSM can (with the objects' places given), so it is an
estimate of what the tokens allow, not a bound a nonlinear reader could not pass.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import BadInputError
from ..dcsm import CachedDataset, patch_grid
from ..world.files import world_images

__all__ = ["ATTRIBUTES", "probe"]

ATTRIBUTES = ("colour", "shape")


def _features(store: str | os.PathLike, objects: dict, image_size: int) -> tuple[torch.Tensor, list[dict], list]:
    """Per object the store's images show: [centre token, 3×3 mean, 3×3 max] features and the object;
    and per image, its split, family and the indices of its objects in those lists."""
    d = CachedDataset.open(store)
    grid = patch_grid(d.n_tokens)
    if grid is None:
        raise BadInputError(f"store {store}: {d.n_tokens} image tokens are not a square patch grid")
    skip, h, w = grid
    valid = d.valid
    rows = [(r, objects[ref.path]) for r, ref in enumerate(d.dataset.images) if ref.path in objects and valid[r]]
    if not rows:
        raise BadInputError(
            f"store {store}: none of its images is a scene of this world; pass the world its manifest was made from"
        )
    tokens = d.store.read_rows("image/tokens", np.array([r for r, _ in rows]))[:, skip : skip + h * w]
    grid_tokens = F.normalize(torch.from_numpy(tokens).float(), dim=-1).view(len(rows), h, w, -1)
    feats, objs, scenes = [], [], []
    for i, (_, (split, scene, shown)) in enumerate(rows):
        scenes.append((split, scene["family"], list(range(len(objs), len(objs) + len(shown)))))
        for o in shown:
            y, x = min(int(o["y"] * h / image_size), h - 1), min(int(o["x"] * w / image_size), w - 1)
            block = grid_tokens[i, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].flatten(0, 1)
            feats.append(torch.cat([grid_tokens[i, y, x], block.mean(0), block.amax(0)]))
            objs.append(o)
    return torch.stack(feats), objs, scenes


def _binding_ceiling(logp: torch.Tensor, y: torch.Tensor, scenes: list) -> dict:
    """On two-object binding scenes of two shapes: does the probe prefer the true shape assignment to its swap?
    Overall and per world split (test: colour-shape combinations seen in pretraining; heldout: never seen)."""
    right: dict[str, list[bool]] = {}
    for split, family, idx in scenes:
        if family == "binding" and len(idx) == 2 and y[idx[0]] != y[idx[1]]:
            a, b = idx
            right.setdefault(split, []).append(bool(logp[a, y[a]] + logp[b, y[b]] > logp[a, y[b]] + logp[b, y[a]]))
    every = [r for flags in right.values() for r in flags]
    return {
        "accuracy": float(np.mean(every)) if every else float("nan"),
        "n_scenes": len(every),
        "splits": {split: float(np.mean(flags)) for split, flags in sorted(right.items())},
    }


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, steps: int, seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(lin(x), y).backward()
        opt.step()
    return lin


def _scores(logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    pred = logits.argmax(1)
    confusion = {
        a: {b: float(((y == i) & (pred == j)).sum() / max(1, int((y == i).sum()))) for j, b in enumerate(classes)}
        for i, a in enumerate(classes)
    }
    pairs = {}
    for i, j in itertools.combinations(range(len(classes)), 2):
        on = (y == i) | (y == j)
        if on.any():
            right = torch.where(y[on] == i, logits[on, i] > logits[on, j], logits[on, j] > logits[on, i])
            pairs[f"{classes[i]}/{classes[j]}"] = float(right.float().mean())
    return {
        "accuracy": float((pred == y).float().mean()),
        "chance": 1 / len(classes),
        "confusion": confusion,
        "pairs": pairs,
    }


def probe(
    train_store: str | os.PathLike,
    test_store: str | os.PathLike,
    world: str | os.PathLike,
    steps: int = 300,
    seed: int = 0,
) -> dict:
    """Per attribute, a linear probe fit on `train_store`'s objects and scored on `test_store`'s."""
    cfg, objects = world_images(world)
    x_train, o_train, _ = _features(train_store, objects, cfg["image_size"])
    x_test, o_test, test_scenes = _features(test_store, objects, cfg["image_size"])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    report = {
        "train_store": str(train_store),
        "test_store": str(test_store),
        "world": str(Path(world)),
        "n_train": len(o_train),
        "n_test": len(o_test),
    }
    for attr in ATTRIBUTES:
        classes = list(cfg[f"{attr}s"])
        y_train = torch.tensor([classes.index(o[attr]) for o in o_train])
        y_test = torch.tensor([classes.index(o[attr]) for o in o_test])
        lin = _fit(x_train, y_train, len(classes), steps, seed)
        with torch.no_grad():
            logits = lin(x_test)
            report[attr] = _scores(logits, y_test, classes)
            report[attr]["train_accuracy"] = float((lin(x_train).argmax(1) == y_train).float().mean())
        if attr == "shape":
            report["binding_ceiling"] = _binding_ceiling(F.log_softmax(logits, 1), y_test, test_scenes)
    return report
