"""pretrain: open_clip's own model and loss, every tower trained, a checkpoint open_clip loads."""

from __future__ import annotations

import pytest
import torch

from dcsm_cache._openclip import open_clip
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.world import WorldConfig, generate_world
from dcsm_cache.pipeline.world.pretrain import PretrainConfig, _trim, pretrain

from dcsm_cache.pipeline.tokens.encoder import text_tower, token_encoder

from conftest import TINY_BACKBONE


@pytest.fixture(scope="module")
def pretrain_items(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrain") / "shapes_pretrain.json"
    write_manifest(load_benchmark("shapes_pretrain", str(world)), path)
    return path


def _moved(path) -> dict[str, bool]:
    """Per parameter: whether the checkpoint differs from the seed-0 initialisation."""
    torch.manual_seed(0)
    init = open_clip.create_model(TINY_BACKBONE).state_dict()
    trained = torch.load(path, map_location="cpu", weights_only=True)
    return {k: not torch.equal(init[k], trained[k]) for k in init if init[k].is_floating_point()}


@pytest.mark.parametrize("token_loss,token_pool", [(0.0, "maxsim"), (1.0, "maxsim"), (1.0, "filip"), (1.0, "mean")])
def test_pretrain_trains_both_towers_and_saves_an_open_clip_checkpoint(
    pretrain_items, tmp_path, token_loss, token_pool
):
    out = tmp_path / "tiny.pt"
    cfg = PretrainConfig(
        arch=TINY_BACKBONE,
        steps=3,
        batch_size=8,
        warmup=1,
        device="cpu",
        progress=False,
        token_loss=token_loss,
        token_pool=token_pool,
    )
    summary = pretrain(pretrain_items, out, cfg)
    assert summary["steps"] == 3 and summary["n_pairs"] == 40
    assert torch.isfinite(torch.tensor(summary["final_loss"]))
    moved = _moved(out)
    text = [k for k in moved if k.startswith(("transformer.", "token_embedding", "text_projection", "ln_final"))]
    image = [k for k in moved if k.startswith("visual.")]
    assert text and image
    assert all(moved[k] for k in text + image), [k for k in text + image if not moved[k]]
    model = open_clip.create_model(TINY_BACKBONE, pretrained=str(out))  # loads as open_clip does
    assert torch.equal(model.text_projection, torch.load(out, weights_only=True)["text_projection"])


def test_an_unknown_token_pool_is_a_config_error():
    with pytest.raises(ConfigError, match="token_pool 'last'"):
        PretrainConfig(token_pool="last")


def test_threads_sets_torch_threads_and_a_negative_count_is_a_config_error(pretrain_items, tmp_path):
    with pytest.raises(ConfigError, match="threads=-1"):
        PretrainConfig(threads=-1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = PretrainConfig(
            arch=TINY_BACKBONE, steps=1, batch_size=8, warmup=1, device="cpu", progress=False, token_loss=0, threads=1
        )
        pretrain(pretrain_items, tmp_path / "one.pt", cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("arch,trims", [("shapes-clip", True), (TINY_BACKBONE, True), ("coca_ViT-B-32", False)])
def test_trimmed_ids_give_the_same_tokens_and_pooled_embedding(arch, trims):
    """Pretraining drops the pad positions no caption reaches; a causal tower's outputs at the kept
    positions must not change (CLIP's inlined text transformer, TextTransformer). CoCa's appended
    CLS takes the position after the ids, so its ids are left whole."""
    torch.manual_seed(0)
    model = open_clip.create_model(arch).eval()
    fn, tower = token_encoder(model).text_adapter.fn, text_tower(model)
    ids = open_clip.get_tokenizer(arch)(["a red circle", "a drawing of a blue star and a green square", "cross"])
    trimmed = _trim(ids, tower)
    n = int((ids != 0).sum(1).max()) if trims else ids.shape[1]
    assert trimmed.shape == (3, n) and (n < ids.shape[1]) == trims
    with torch.no_grad():
        (tokens, pooled), (got_tokens, got_pooled) = fn(tower, ids), fn(tower, trimmed)
    torch.testing.assert_close(got_tokens, tokens[:, :n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_pooled, pooled, atol=1e-5, rtol=1e-5)


def test_hard_negatives_change_the_batches_and_a_share_outside_0_1_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="hard_negatives=1.5"):
        PretrainConfig(hard_negatives=1.5)
    world = WorldConfig(seed=0, n_pretrain=160, n_train=0, n_val=0, n_test=0, n_heldout=0, n_heldout_val=0)
    generate_world(world, tmp_path / "w", workers=1)  # (enough captions for partners one word apart)
    write_manifest(load_benchmark("shapes_pretrain", str(tmp_path / "w")), tmp_path / "m.json")
    base = dict(arch=TINY_BACKBONE, steps=2, batch_size=32, warmup=1, device="cpu", progress=False, threads=1)
    for name, share in (("plain", 0.0), ("hard", 1.0), ("hard2", 1.0)):
        pretrain(tmp_path / "m.json", tmp_path / f"{name}.pt", PretrainConfig(**base, hard_negatives=share))
    plain, hard = (tmp_path / "plain.pt").read_bytes(), (tmp_path / "hard.pt").read_bytes()
    assert plain != hard and hard == (tmp_path / "hard2.pt").read_bytes()


def test_training_the_used_rows_alone_gives_the_same_weights(pretrain_items, tmp_path, monkeypatch):
    """The embedding's rows no caption uses keep their initial values either way, and the rest train to the
    same bits as when AdamW steps every row."""
    import contextlib

    from dcsm_cache.pipeline.world import pretrain as module

    cfg = PretrainConfig(arch=TINY_BACKBONE, steps=4, batch_size=16, warmup=2, device="cpu", progress=False)
    pretrain(pretrain_items, tmp_path / "rows.pt", cfg)
    monkeypatch.setattr(module, "used_rows", lambda tower, ids: contextlib.nullcontext(tower.token_embedding.weight))
    pretrain(pretrain_items, tmp_path / "every.pt", cfg)
    rows, every = (torch.load(tmp_path / f, weights_only=True) for f in ("rows.pt", "every.pt"))
    assert rows.keys() == every.keys() and all(torch.equal(rows[k], every[k]) for k in rows)
    assert (tmp_path / "rows.pt").read_bytes() == (tmp_path / "every.pt").read_bytes()
    torch.manual_seed(cfg.seed)  # (as pretrain seeds it before making the model)
    fresh = open_clip.create_model(TINY_BACKBONE).state_dict()["token_embedding.weight"]
    changed = (rows["token_embedding.weight"] != fresh).any(1)
    assert 0 < int(changed.sum()) < 200  # the rows the captions use, no other
