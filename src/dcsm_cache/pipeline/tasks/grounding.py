"""Word grounding on the shapes world: does a word's best-matching image token lie on its object?

    report = grounding("stores/shapes-clip/shapes_binding.zarr", "data/world")
    report["in_context"]   # {"colour": 0.999, "shape": 0.999}: the caption's own tokens, from the store
    report["alone"]        # {"colour": .., "shape": .., "phrase": ..}: "red", "circle", "a red circle"
                           # encoded as captions of their own (pooled), against the same image tokens

A DCSM can only read what its two sides locate. For every probe item whose true caption names
objects of its scene, each named object's colour and shape word is looked up in the stored token
ids, its column of the similarity map is taken against the image's patch tokens, and the argmax patch
counts as a hit when the object nearest to that patch's centre is the named one. Chance is one over
the number of objects in the scene (`chance`). `alone` (which loads the backbone) separates the two
sides: a colour word that is found alone but not in context is a text-side failure; a shape word not
found even alone means the image tokens do not carry shape where the shape is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import BadInputError
from ..dcsm import CachedDataset, FunctionalWords, patch_grid
from ..world.files import world_images
from ..world.scenes import parse_caption, phrase


@dataclass(frozen=True)
class _Hit:
    image: int
    objects: list
    obj: int  # index of the named object in `objects`
    kind: str  # "colour" or "shape"
    word: str
    column: np.ndarray  # [D] the word's stored token
    phrase: str


def grounding(store_path: str | os.PathLike, world: str | os.PathLike, alone: bool = True, device: str = "cpu") -> dict:
    """Per word kind, the fraction of named objects whose word token peaks on them (see module doc)."""
    d = CachedDataset.open(store_path)
    root = Path(world)
    cfg, drawn = world_images(root)
    scenes = {path: objects for path, (_, _, objects) in drawn.items()}
    grid = patch_grid(d.n_tokens)
    if grid is None:
        raise BadInputError(f"store {store_path}: {d.n_tokens} image tokens are not a square patch grid")
    hits = list(_named_words(d, scenes, store_tokenizer(d.store)))
    if not hits:
        raise BadInputError(
            f"store {store_path}: no item's image is a scene of the world at {root}; "
            f"pass the world the store's manifest was made from"
        )
    images = sorted({h.image for h in hits})
    tokens = dict(zip(images, d.store.image_tokens.oindex[images].astype(np.float32)))
    locate = _locator(grid, cfg["image_size"])
    report = {
        "store": str(store_path),
        "world": str(root),
        "n_objects": sum(h.kind == "shape" for h in hits),
        "chance": float(np.mean([1 / len(h.objects) for h in hits])),
        "in_context": _rates(hits, lambda h: locate(tokens[h.image] @ h.column, h.objects) == h.obj),
    }
    if alone:
        embed = _pooled_encoder(d.store.attrs["backbone"], device)
        words = {h.word: None for h in hits} | {h.phrase: None for h in hits}
        table = dict(zip(words, embed(list(words))))
        report["alone"] = _rates(hits, lambda h: locate(tokens[h.image] @ table[h.word], h.objects) == h.obj)
        phrases = [locate(tokens[h.image] @ table[h.phrase], h.objects) == h.obj for h in hits if h.kind == "shape"]
        report["alone"]["phrase"] = float(np.mean(phrases))
    return report


def _named_words(d: CachedDataset, scenes: dict, tokenizer):
    """One _Hit per colour and shape word of each object that a true caption names and its scene shows."""
    ids, store_tokens = d.store.text_ids[:], d.text_tokens
    captions = [d.dataset.captions[it.candidates[it.correct]] for it in d.dataset.items]
    words = sorted({w for c in captions for combo in parse_caption(c)[1] for w in combo})
    single = FunctionalWords.for_tokenizer(tokenizer, tuple(words))  # keeps the words that are one token
    word_id = dict(zip(single.words, single.token_ids))
    for it in d.dataset.items:
        objects = scenes.get(d.dataset.images[it.image].path)
        if objects is None:
            continue
        row = ids[it.candidates[it.correct]]
        caption = d.dataset.captions[it.candidates[it.correct]]
        start = 0
        for colour, shape in parse_caption(caption)[1]:
            named = [i for i, o in enumerate(objects) if (o["colour"], o["shape"]) == (colour, shape)]
            for kind, word in (("colour", colour), ("shape", shape)):
                where = np.flatnonzero(row[start:] == word_id[word]) if word in word_id else []
                if not len(where):
                    break
                pos = start + int(where[0])
                start = pos + 1
                if len(named) == 1 and pos < store_tokens.shape[1]:
                    yield _Hit(
                        it.image,
                        objects,
                        named[0],
                        kind,
                        word,
                        store_tokens[it.candidates[it.correct], pos].float().numpy(),
                        phrase((colour, shape)),
                    )


def _locator(grid: tuple[int, int, int], image_size: int):
    skip, h, w = grid

    def nearest(sims: np.ndarray, objects: list) -> int:
        p = int(np.argmax(sims[skip : skip + h * w]))
        y, x = (p // w + 0.5) * image_size / h, (p % w + 0.5) * image_size / w
        return int(np.argmin([(o["x"] - x) ** 2 + (o["y"] - y) ** 2 for o in objects]))

    return nearest


def _rates(hits: list[_Hit], hit) -> dict[str, float]:
    return {kind: float(np.mean([hit(h) for h in hits if h.kind == kind])) for kind in ("colour", "shape")}


def _pooled_encoder(backbone: str, device: str):
    from ..tokens.backbones import load_backbone

    bb = load_backbone(backbone, device)

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        e = bb.model.encode_text(bb.tokenizer(texts).to(bb.device)).float()
        return torch.nn.functional.normalize(e, dim=-1).cpu().numpy()

    return embed


def store_tokenizer(store):
    """The tokenizer of the store's backbone (grounding reads arbitrary words; train and eval never need it)."""
    from ..._openclip import open_clip

    return open_clip.get_tokenizer(store.attrs["tokenizer"]["name"])
