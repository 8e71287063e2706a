"""The scorer checkpoint: written and read in one module; an old, foreign or truncated file is one line."""

from __future__ import annotations

import pytest
import torch

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.dcsm import DCSMScorer, ScorerConfig, load_scorer, save_scorer
from dcsm_cache.pipeline.dcsm.scorer_file import FORMAT

META = {
    "scorer_config": {},
    "n_tokens": 16,
    "text_len": 8,
    "fr_words": ["above", "not"],
    "backbone": "b",
    "backbone_id": "0" * 16,
}


def _saved(tmp_path):
    scorer = DCSMScorer(ScorerConfig(), 16, 8, 2)
    path = save_scorer(scorer, META, tmp_path / "dcsm.pt")
    return scorer, path


def test_round_trip_and_no_temporary_left(tmp_path):
    scorer, path = _saved(tmp_path)
    back, meta = load_scorer(path)
    assert meta["format"] == FORMAT and meta["backbone_id"] == "0" * 16
    for k, v in scorer.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["dcsm.pt"]


@pytest.mark.parametrize(
    "make, words",
    [
        (
            lambda p: torch.save({**torch.load(p, weights_only=True), "format": "dcsm-cache/scorer-v1"}, p),
            "was written by another dcsm-cache version (dcsm-cache/scorer-v1)",
        ),
        (lambda p: torch.save({"model_state_dict": {}}, p), "is not a dcsm-cache scorer checkpoint"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot be read"),
        (lambda p: p.write_text("not a checkpoint"), "cannot be read"),
        (
            lambda p: torch.save({k: v for k, v in torch.load(p, weights_only=True).items() if k != "fr_words"}, p),
            "lacks fr_words",
        ),
    ],
)
def test_bad_checkpoints_are_one_line(make, words, tmp_path):
    _, path = _saved(tmp_path)
    make(path)
    with pytest.raises(BadInputError) as err:
        load_scorer(path)
    msg = str(err.value)
    assert words in msg and str(path) in msg and "dcsm-cache train" in msg and "\n" not in msg


def test_missing_checkpoint_says_to_train(tmp_path):
    with pytest.raises(InputNotFoundError, match="run `dcsm-cache train` first"):
        load_scorer(tmp_path / "none.pt")
