"""pretrain: open_clip's own model and loss, every tower trained, a checkpoint open_clip loads."""
from __future__ import annotations

import pytest
import torch

from dcsm_cache._compat import open_clip
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.pipeline.pretrain import PretrainConfig, pretrain

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


@pytest.mark.parametrize("token_loss", [0.0, 1.0])
def test_pretrain_trains_both_towers_and_saves_an_open_clip_checkpoint(pretrain_items, tmp_path, token_loss):
    out = tmp_path / "tiny.pt"
    cfg = PretrainConfig(arch=TINY_BACKBONE, steps=3, batch_size=8, warmup=1, device="cpu",
                         progress=False, token_loss=token_loss)
    summary = pretrain(pretrain_items, out, cfg)
    assert summary["steps"] == 3 and summary["n_pairs"] == 40
    assert torch.isfinite(torch.tensor(summary["final_loss"]))
    moved = _moved(out)
    text = [k for k in moved if k.startswith(("transformer.", "token_embedding", "text_projection", "ln_final"))]
    image = [k for k in moved if k.startswith("visual.")]
    assert text and image
    assert all(moved[k] for k in text + image), [k for k in text + image if not moved[k]]
    model = open_clip.create_model(TINY_BACKBONE, pretrained=str(out))   # loads as open_clip does
    assert torch.equal(model.text_projection, torch.load(out, weights_only=True)["text_projection"])
