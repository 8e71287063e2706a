"""Evaluation from stores: metrics, tie rules, the cosine baseline recomputed by hand, mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dcsm_cache.errors import ConfigError, StoreMismatchError, UnknownNameError
from dcsm_cache.pipeline.tasks.choice import EvalConfig, evaluate, is_correct
from dcsm_cache.pipeline.items import read_manifest
from dcsm_cache.pipeline.tasks.report import report
from dcsm_cache.pipeline.train import TrainConfig, train
from dcsm_cache.stores.feature_store import FeatureStore

from conftest import TINY_BACKBONE


def test_tie_rules():
    assert is_correct(np.array([1.0, 1.0]), 0, "argmax")  # reference: first maximum wins
    assert not is_correct(np.array([1.0, 1.0]), 1, "argmax")
    assert not is_correct(np.array([1.0, 1.0]), 0, "strict")  # SugarCREPE: a tie is wrong
    assert is_correct(np.array([0.0, 2.0, 1.0]), 1, "strict")


def test_cosine_accuracy_equals_a_direct_recomputation(stores, manifests):
    result = evaluate(stores["shapes_spatial"], "cosine", EvalConfig(device="cpu"))
    ds = read_manifest(manifests["shapes_spatial"])
    store = FeatureStore.open(stores["shapes_spatial"])
    img = store.image_pooled[:].astype(np.float64)
    txt = store.text_pooled[:].astype(np.float64)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    flags = {}
    for it in ds.items:
        s = [img[it.image] @ txt[c] for c in it.candidates]
        flags.setdefault(it.subset, []).append(int(np.argmax(s)) == it.correct)
    every = [f for v in flags.values() for f in v]
    assert result["n_items"] == len(ds.items) and result["chance"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(np.mean(every))
    for subset, v in flags.items():
        assert result["subsets"][subset]["accuracy"] == pytest.approx(np.mean(v))
    assert result["store_fingerprint"] == store.attrs["fingerprint"]


def test_dcsm_scorer_and_report(stores, tmp_path):
    train(
        stores["shapes_train"],
        tmp_path / "s.pt",
        TrainConfig(steps=2, batch_size=8, device="cpu", progress=False, text_len=16),
    )
    results = []
    for scorer in ("cosine", "dcsm"):
        r = evaluate(stores["shapes_spatial"], scorer, EvalConfig(checkpoint=str(tmp_path / "s.pt"), device="cpu"))
        assert 0 <= r["accuracy"] <= 1 and r["n_skipped"] == 0
        (tmp_path / f"{scorer}.json").write_text(json.dumps(r))
        results.append(r)
    md = report([tmp_path / "cosine.json", tmp_path / "dcsm.json"], tmp_path / "summary.md")
    assert "| chance |" in md and "shapes_spatial/heldout" in md
    row = next(line for line in md.splitlines() if "| dcsm |" in line)
    assert f"{100 * results[1]['subsets']['test']['accuracy']:.1f}" in row
    assert (tmp_path / "summary.csv").read_text().count("\n") == 1 + 2 * 2  # (cosine, dcsm) x (test, heldout)


def test_bad_scorer_and_missing_checkpoint(stores):
    with pytest.raises(UnknownNameError, match="valid: cosine"):
        evaluate(stores["shapes_spatial"], "clip-score")
    with pytest.raises(ConfigError, match="--checkpoint"):
        evaluate(stores["shapes_spatial"], "dcsm", EvalConfig(device="cpu"))


def test_scorer_from_another_backbone_is_refused(stores, tmp_path):
    import torch

    train(
        stores["shapes_train"],
        tmp_path / "s.pt",
        TrainConfig(steps=1, batch_size=8, device="cpu", progress=False, text_len=16),
    )
    ckpt = torch.load(tmp_path / "s.pt", weights_only=True)
    ckpt["backbone"], ckpt["backbone_id"] = "ViT-B-16.openai", "0123456789abcdef"  # other weights
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(StoreMismatchError, match="ViT-B-16.openai"):
        evaluate(stores["shapes_spatial"], "dcsm", EvalConfig(checkpoint=str(tmp_path / "other.pt"), device="cpu"))


def test_maxsim_equals_a_direct_recomputation(stores, manifests):
    """Mean over word tokens of the best image-token cosine, recomputed with numpy loops."""
    result = evaluate(stores["shapes_spatial"], "maxsim", EvalConfig(device="cpu"))
    ds = read_manifest(manifests["shapes_spatial"])
    store = FeatureStore.open(stores["shapes_spatial"])
    img, txt, n = (
        store.image_tokens[:].astype(np.float64),
        store.text_tokens[:].astype(np.float64),
        store.text_length[:],
    )
    flags = []
    for it in ds.items:
        s = [
            np.mean([max(img[it.image][p] @ txt[c][l] for p in range(img.shape[1])) for l in range(1, n[c] - 1)])
            for c in it.candidates
        ]
        flags.append(int(np.argmax(s)) == it.correct)
    assert result["accuracy"] == pytest.approx(np.mean(flags))


def test_changed_dataset_is_never_scored_against_a_stale_store(stores, manifests, tmp_path):
    doc = json.loads(manifests["shapes_spatial"].read_text())
    doc["fingerprint"] = "0" * 16  # as if the images or annotations had changed since extraction
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(StoreMismatchError, match="re-extract it"):
        evaluate(stores["shapes_spatial"], "cosine", EvalConfig(device="cpu"), items=str(tmp_path / "m.json"))


def test_backbone_is_known_by_what_was_loaded(manifests, tmp_path, monkeypatch):
    """A store extracted through an absolute path is scored by a scorer trained through a relative path to
    the same file; a store of other weights saved under that same path is refused."""
    import torch

    from dcsm_cache._openclip import open_clip
    from dcsm_cache.pipeline.extract import ExtractConfig, extract

    torch.manual_seed(5)
    torch.save(open_clip.create_model(TINY_BACKBONE, pretrained=None).state_dict(), tmp_path / "w.pt")
    monkeypatch.chdir(tmp_path)
    cfg = ExtractConfig(batch_size=16, device="cpu", progress=False)
    extract(manifests["shapes_train"], f"{TINY_BACKBONE}@w.pt", tmp_path / "train.zarr", cfg)
    train(
        tmp_path / "train.zarr",
        tmp_path / "s.pt",
        TrainConfig(steps=2, batch_size=8, device="cpu", progress=False, text_len=16),
    )
    extract(manifests["shapes_spatial"], f"{TINY_BACKBONE}@{tmp_path / 'w.pt'}", tmp_path / "abs.zarr", cfg)
    r = evaluate(tmp_path / "abs.zarr", "dcsm", EvalConfig(checkpoint=str(tmp_path / "s.pt"), device="cpu"))
    assert r["n_items"] > 0
    torch.manual_seed(6)  # other weights, same file name
    torch.save(open_clip.create_model(TINY_BACKBONE, pretrained=None).state_dict(), tmp_path / "w.pt")
    extract(manifests["shapes_spatial"], f"{TINY_BACKBONE}@w.pt", tmp_path / "other.zarr", cfg)
    with pytest.raises(StoreMismatchError, match="other weights or settings"):
        evaluate(tmp_path / "other.zarr", "dcsm", EvalConfig(checkpoint=str(tmp_path / "s.pt"), device="cpu"))
