"""`dcsm-cache show` and `gallery` (`figures/heatmap.py`, `figures/gallery.py`) on the tiny store and a tiny scorer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError
from dcsm_cache.pipeline.dcsm import CachedDataset, load_scorer
from dcsm_cache.pipeline.figures.gallery import gallery
from dcsm_cache.pipeline.figures.heatmap import show_item
from dcsm_cache.pipeline.tasks.choice import is_correct
from dcsm_cache.pipeline.tasks.scoring import dcsm_scores, score_items


def non_trivial(path, min_colours: int = 50) -> bool:
    """A real picture: a PNG of some size with many colours (image, colour maps, overlays)."""
    with Image.open(path) as im:
        px = np.asarray(im.convert("RGB")).reshape(-1, 3)
        return im.format == "PNG" and im.width >= 600 and len(np.unique(px, axis=0)) >= min_colours


def test_show_draws_the_item_with_the_scorers_strongest_wrong_candidate(stores, tiny_scorer, tmp_path):
    out = tmp_path / "item.png"
    info = show_item(stores["shapes_spatial"], 1, out, checkpoint=tiny_scorer)
    assert non_trivial(out)
    model, meta = load_scorer(tiny_scorer)
    data = CachedDataset.open(stores["shapes_spatial"], text_len=meta["text_len"], fr_words=tuple(meta["fr_words"]))
    it = data.dataset.items[1]
    expected = score_items(data, [it], dcsm_scores(data, model, "cpu"), 1)[0]
    assert info["scores"]["dcsm"] == pytest.approx(expected.tolist(), abs=1e-5)
    wrong = [k for k in range(len(it.candidates)) if k != it.correct]
    assert info["wrong"] == max(wrong, key=lambda k: expected[k])
    assert info["captions"] == [data.dataset.captions[c] for c in it.candidates]


def test_show_cli_without_a_scorer_and_an_item_out_of_range(stores, tmp_path):
    out = tmp_path / "cos.png"
    res = CliRunner().invoke(main, ["show", "--store", str(stores["shapes_spatial"]), "--item", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("cosine ") and "dcsm" not in res.output and non_trivial(out)
    res = CliRunner().invoke(main, ["show", "--store", str(stores["shapes_spatial"]), "--item", "9999"])
    assert res.exit_code == 2 and "out of range" in res.output
    with pytest.raises(BadInputError, match="out of range"):
        show_item(stores["shapes_spatial"], -1, tmp_path / "x.png")


def test_gallery_draws_the_items_where_exactly_one_scorer_is_right(stores, tiny_scorer, tmp_path):
    index = gallery([stores["shapes_spatial"]], tiny_scorer, tmp_path / "g", per_kind=1, device="cpu")
    entry = index["stores"][0]
    model, meta = load_scorer(tiny_scorer)
    data = CachedDataset.open(stores["shapes_spatial"], text_len=meta["text_len"], fr_words=tuple(meta["fr_words"]))
    from dcsm_cache.pipeline.tasks.scoring import cosine_scores

    items = list(data.dataset.items)
    cos = score_items(data, items, cosine_scores(data), 64)
    dcsm = score_items(data, items, dcsm_scores(data, model, "cpu"), 64)
    fixes = sum(
        is_correct(d, it.correct, "argmax") and not is_correct(c, it.correct, "argmax")
        for c, d, it in zip(cos, dcsm, items)
    )
    assert entry["dcsm_right"] == fixes and entry["n_items"] == len(items)
    drawn = entry["dcsm_right_files"] + entry["cosine_right_files"]
    assert len(entry["dcsm_right_files"]) == min(1, fixes)
    for name in drawn:
        item = int(name.rsplit("_", 1)[1].split(".")[0])
        right = "dcsm-right" if is_correct(dcsm[item], items[item].correct, "argmax") else "cosine-right"
        assert f"_{right}_" in name and non_trivial(tmp_path / "g" / name)
    assert json.loads((tmp_path / "g" / "index.json").read_text()) == index
