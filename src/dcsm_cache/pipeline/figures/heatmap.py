"""One item's DCSM heatmaps, as the paper draws them: `dcsm-cache show`.

    info = show_item("stores/shapes-clip/shapes_spatial.zarr", 3, "item3.png", checkpoint="models/shapes-clip/dcsm.pt")
    info["scores"]    # {"cosine": [...], "dcsm": [...]} per candidate; info["wrong"]: the strongest wrong one

One PNG: the image; the patch x token cosine map of the true caption and of the strongest wrong
candidate (the one the scorer, or without a checkpoint the cosine, rates highest), tokens labelled
and functional-word columns (the words a learned row replaces: "above", "not", ...) marked in red;
below, per word of the true caption, where it matches on the image (that word's column of the map
over the patch grid, upsampled over the image). Titles carry the cosine's and the scorer's scores.
Everything is read from the store and its manifest; only the token labels need the tokenizer.
`draw_maps` draws the same figure from tensors, for `dcsm-cache score`, which has no store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ...atomic import atomic_path
from ...errors import BadInputError
from ..dcsm import FUNCTIONAL_WORDS, CachedDataset, patch_grid, similarity_maps

__all__ = ["Candidate", "draw_maps", "show_item", "token_labels"]

MAX_WORDS = 8  # per-word overlays drawn (the first words of the true caption)


@dataclass(frozen=True)
class Candidate:
    caption: str
    labels: list[str]  # one per real token, start and end included
    functional: list[bool]  # per token: a functional word's column
    cosine: float
    scorer: float | None


def token_labels(tokenizer, ids) -> list[str]:
    """Readable labels for token ids: open_clip's BPE pieces without `</w>`, or a Hugging Face tokenizer's."""
    ids = [int(i) for i in ids]
    decoder = getattr(tokenizer, "decoder", None)
    if isinstance(decoder, dict):
        byte_decoder = getattr(tokenizer, "byte_decoder", {})
        out = []
        for i in ids:
            text = decoder.get(i, str(i))
            text = bytearray(byte_decoder.get(c, ord(c) % 256) for c in text).decode("utf-8", "replace")
            out.append(text.replace("</w>", "").replace("<start_of_text>", "<s>").replace("<end_of_text>", "</s>"))
        return out
    inner = getattr(tokenizer, "tokenizer", None)
    if hasattr(inner, "convert_ids_to_tokens"):
        return [str(t) for t in inner.convert_ids_to_tokens(ids)]
    return [str(i) for i in ids]


def _square(image, size: int = 224):
    """The image as the backbone sees it: centre-cropped to a square (the patch grid covers that)."""
    from PIL import ImageOps

    return ImageOps.fit(image, (size, size))


def draw_maps(
    image, maps: np.ndarray, grid: tuple[int, int, int], true: Candidate, wrong: Candidate | None, out, title: str = ""
) -> Path:
    """The figure (module doc) from `maps` [2 or 1, P, L] (true first), to `out` as PNG."""
    skip, h, w = grid
    img = np.asarray(_square(image))
    words = [i for i in range(1, len(true.labels) - 1)][:MAX_WORDS]  # start and end tokens left out
    n_top = 3 if wrong is not None else 2
    n_bottom = max(len(words), 4)
    fig = plt.figure(figsize=(3.4 * n_top, 4.2 + 3.4 * n_top / n_bottom))
    rows = fig.add_gridspec(2, 1, height_ratios=[4.2, 3.4 * n_top / n_bottom])
    top, bottom = rows[0].subgridspec(1, n_top, wspace=0.4), rows[1].subgridspec(1, n_bottom)
    ax = fig.add_subplot(top[0, 0])
    ax.imshow(img)
    ax.set_title("image", fontsize=9)
    ax.axis("off")
    vmax = float(np.abs(maps[:, skip:]).max()) or 1.0
    for j, cand in enumerate([c for c in (true, wrong) if c is not None]):
        ax = fig.add_subplot(top[0, j + 1])
        m = maps[j][:, : len(cand.labels)]
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(len(cand.labels)), cand.labels, rotation=70, fontsize=7)
        for tick, fr in zip(ax.get_xticklabels(), cand.functional):
            if fr:
                tick.set_color("red")
                tick.set_fontweight("bold")
        for col, fr in enumerate(cand.functional):
            if fr:
                ax.add_patch(plt.Rectangle((col - 0.5, -0.5), 1, m.shape[0], fill=False, edgecolor="red", lw=1.2))
        ax.set_ylabel("image token (patch)", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        kind = "true" if j == 0 else "strongest wrong"
        score = f"cosine {cand.cosine:.3f}" + (f", DCSM {cand.scorer:.2f}" if cand.scorer is not None else "")
        ax.set_title(f"{kind}: {_short(cand.caption)}\n{score}", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=6)
    for k, col in enumerate(words):
        ax = fig.add_subplot(bottom[0, k])
        heat = maps[0][skip : skip + h * w, col].reshape(h, w)
        ax.imshow(img)
        ax.imshow(heat, cmap="jet", alpha=0.5, interpolation="bilinear", extent=(0, img.shape[1], img.shape[0], 0))
        ax.set_title(true.labels[col] + (" (functional)" if true.functional[col] else ""), fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _scores(data: CachedDataset, item, model, device) -> tuple[np.ndarray, np.ndarray | None]:
    from ..tasks.scoring import cosine_scores, dcsm_scores, score_items

    cos = score_items(data, [item], cosine_scores(data), 1)[0]
    dcsm = score_items(data, [item], dcsm_scores(data, model, device), 1)[0] if model is not None else None
    return cos, dcsm


def show_item(
    store: str | os.PathLike,
    item: int,
    out: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    tokenizer=None,
    data: CachedDataset | None = None,
    model=None,
) -> dict:
    """Draw item `item` of the store's manifest to `out` (module doc); returns its scores and captions."""
    meta: dict = {}
    if checkpoint and model is None:
        from ..dcsm import load_scorer

        model, meta = load_scorer(checkpoint, device)
    if data is None:
        data = CachedDataset.open(
            store, text_len=meta.get("text_len"), fr_words=tuple(meta.get("fr_words", FUNCTIONAL_WORDS))
        )
    items = data.dataset.items
    if not 0 <= item < len(items):
        raise BadInputError(f"store {store}: item {item} is out of range, its manifest has items 0..{len(items) - 1}")
    it = items[item]
    if not data.valid[it.image]:
        raise BadInputError(f"store {store}: the image of item {item} could not be read at extraction")
    grid = patch_grid(data.n_tokens)
    if grid is None:
        raise BadInputError(f"store {store}: {data.n_tokens} image tokens are not a square patch grid")
    if tokenizer is None:
        from ..tasks.grounding import store_tokenizer
        from ..tokens import shapes_clip  # noqa: F401  (registers the shapes-world configs tokenizers are named by)

        tokenizer = store_tokenizer(data.store)
    cos, dcsm = _scores(data, it, model, device)
    rank = dcsm if dcsm is not None else cos
    wrong = [k for k in range(len(it.candidates)) if k != it.correct]
    worst = max(wrong, key=lambda k: rank[k]) if wrong else None
    shown = [it.correct] + ([worst] if worst is not None else [])
    tok, _ = data.image_rows(np.array([it.image]))
    rows = torch.tensor([[it.candidates[k] for k in shown]])
    maps = similarity_maps(tok, data.text_tokens[rows])[0].numpy()  # [len(shown), P, L]
    ids = data.store.text_ids.oindex[[it.candidates[k] for k in shown]]

    def cand(j: int, k: int) -> Candidate:
        n = int(data.lengths[it.candidates[k]])
        return Candidate(
            data.dataset.captions[it.candidates[k]],
            token_labels(tokenizer, ids[j][:n]),
            [bool(c >= 0) for c in data.fr_columns[it.candidates[k]][:n].tolist()],
            float(cos[k]),
            None if dcsm is None else float(dcsm[k]),
        )

    from ..items import open_image

    true = cand(0, it.correct)
    other = cand(1, worst) if worst is not None else None
    right = lambda s: "right" if int(np.argmax(s)) == it.correct else "wrong"  # noqa: E731
    title = f"{data.dataset.name} item {item}: cosine {right(cos)}" + ("" if dcsm is None else f", DCSM {right(dcsm)}")
    draw_maps(open_image(data.dataset, it.image), maps, grid, true, other, out, title)
    return {
        "item": item,
        "out": str(out),
        "captions": [data.dataset.captions[c] for c in it.candidates],
        "correct": it.correct,
        "wrong": worst,
        "scores": {"cosine": cos.tolist(), **({} if dcsm is None else {"dcsm": dcsm.tolist()})},
    }


def normalise_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens as the store keeps them: unit-norm, through float16."""
    return F.normalize(tokens.float(), dim=-1).half().float()
