"""pretrain: open_clip's own model and loss, every tower trained, a checkpoint open_clip loads."""

from __future__ import annotations

import pytest
import torch

from dcsm_cache._openclip import open_clip
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.world.pretrain import PretrainConfig, late_interaction, pretrain

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


@pytest.mark.parametrize("both_ways", [False, True])
def test_late_interaction_matches_a_direct_computation(both_ways):
    gen = torch.Generator().manual_seed(0)
    patches, tokens = torch.randn(3, 5, 4, generator=gen), torch.randn(2, 6, 4, generator=gen)
    valid = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float32)
    got = late_interaction(patches, tokens, valid, both_ways)
    for i in range(3):
        for t in range(2):
            words = tokens[t, : int(valid[t].sum())]
            cos = torch.nn.functional.cosine_similarity(patches[i][:, None], words[None], dim=-1)  # [P, L]
            want = cos.max(0).values.mean()  # each word's best patch
            if both_ways:
                want = (want + cos.max(1).values.mean()) / 2  # and each patch's best word
            assert torch.allclose(got[i, t], want, atol=1e-6), (i, t)


@pytest.mark.parametrize("chunk", [1 << 21, 7])  # one block, and blocks of one word with a ragged last one
def test_late_interaction_gradients_equal_autograd_through_max(monkeypatch, chunk):
    from dcsm_cache.pipeline.world.pretrain import _BestPatch

    monkeypatch.setattr(_BestPatch, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(1)
    patches = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    tokens = torch.randn(2, 6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float64)
    weights = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad((late_interaction(patches, tokens, valid) * weights).sum(), (patches, tokens))
    p, t = torch.nn.functional.normalize(patches, dim=-1), torch.nn.functional.normalize(tokens, dim=-1)
    best = torch.einsum("ipd,tld->itlp", p, t).max(-1).values  # autograd's own max: the best patch gets it all
    want = torch.autograd.grad((((best * valid).sum(-1) / valid.sum(-1)) * weights).sum(), (patches, tokens))
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: late_interaction(a, b, valid), (patches, tokens))


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
