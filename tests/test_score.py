"""`dcsm-cache score` (`figures/score.py`): one generated image, the tiny random backbone and a tiny scorer.

The scores must be the ones evaluation computes from a store for the same image and captions, the
printed rankings must be ordered by the printed scores, and the heatmaps must be real pictures.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import TINY_BACKBONE
from test_show import non_trivial

from dcsm_cache.cli import main
from dcsm_cache.errors import InputNotFoundError, StoreMismatchError
from dcsm_cache.pipeline.dcsm import CachedDataset, load_scorer
from dcsm_cache.pipeline.figures.score import rank_captions, resolve_backbone
from dcsm_cache.pipeline.tasks.scoring import cosine_scores, dcsm_scores, score_items


@pytest.fixture(scope="module")
def item(stores, tiny_scorer):
    """(image path, captions, cosine scores, DCSM scores) of item 0 of the tiny spatial store, as eval scores it."""
    model, meta = load_scorer(tiny_scorer)
    data = CachedDataset.open(stores["shapes_spatial"], text_len=meta["text_len"], fr_words=tuple(meta["fr_words"]))
    it = data.dataset.items[0]
    cos = score_items(data, [it], cosine_scores(data), 1)[0]
    dcsm = score_items(data, [it], dcsm_scores(data, model, "cpu"), 1)[0]
    captions = [data.dataset.captions[c] for c in it.candidates]
    return data.dataset.image_path(it.image), captions, cos, dcsm


def test_scores_are_what_eval_gives_the_same_image_and_captions(item, tiny_scorer):
    image, captions, cos, dcsm = item
    out = rank_captions(image, captions, TINY_BACKBONE, str(tiny_scorer))
    assert out["scores"]["cosine"] == pytest.approx(cos.tolist(), abs=2e-3)
    assert out["scores"]["dcsm"] == pytest.approx(dcsm.tolist(), abs=2e-2)
    for key, scores in out["scores"].items():
        assert [scores[i] for i in out["ranked"][key]] == sorted(scores, reverse=True)


def test_cli_prints_both_rankings_ordered_by_their_scores_and_draws_heatmaps(item, tiny_scorer, tmp_path):
    image, captions, _, _ = item
    captions = [*captions, "a green star"]
    args = ["score", str(image), *captions, "--backbone", TINY_BACKBONE, "--checkpoint", str(tiny_scorer)]
    res = CliRunner().invoke(main, [*args, "--heatmaps", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert len(rows) == len(captions)
    columns: list[list[tuple[float, str]]] = [[], []]
    for line in rows:
        cells = re.findall(r"(\d+)\.\s+(-?\d+\.\d+)  (.+?)(?=\s{2,}\d+\. |$)", line)
        assert len(cells) == 2, line
        for col, (_, score, text) in enumerate(cells):
            columns[col].append((float(score), text.strip()))
    for col in columns:
        scores = [s for s, _ in col]
        assert scores == sorted(scores, reverse=True)  # ranked by the printed scores
        assert sorted(t for _, t in col) == sorted(captions)
    maps = sorted((tmp_path / "maps").glob("caption_*.png"))
    assert len(maps) == len(captions) and all(non_trivial(p) for p in maps)


def test_backbone_keys_resolve_through_the_config_and_mismatches_are_refused(item, tiny_scorer, tmp_path, monkeypatch):
    image, captions, _, _ = item
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(f"backbones:\n  tiny: {{model: {TINY_BACKBONE}}}\n")
    assert resolve_backbone("tiny", None) == (TINY_BACKBONE, None)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "dcsm.pt").write_bytes(tiny_scorer.read_bytes())
    assert resolve_backbone("tiny", None) == (TINY_BACKBONE, "models/tiny/dcsm.pt")
    out = rank_captions(image, captions, "tiny")  # the workflow's key finds its trained scorer
    assert "dcsm" in out["scores"] and "note" in out  # tiny's weights are random: said so
    assert "seeded random weights" in out["note"]
    with pytest.raises(StoreMismatchError, match="trained on"):
        rank_captions(image, captions, "shapes-clip", str(tiny_scorer))  # another architecture
    with pytest.raises(InputNotFoundError, match="no/such.png"):
        rank_captions("no/such.png", captions, "tiny")
