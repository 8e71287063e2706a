"""Extraction options: the reference's text padding, bad settings, unknown names before any work; parts' batches."""

from __future__ import annotations

import numpy as np
import pytest

from dcsm_cache.errors import ConfigError, UnknownNameError
from dcsm_cache.pipeline.extract import ExtractConfig, extract, on_grid

from conftest import TINY_BACKBONE


def test_reference_padding_keeps_real_columns_and_fills_30(manifests, tmp_path):
    import zarr

    cfg = dict(device="cpu", progress=False)
    ref = extract(
        manifests["shapes_spatial"],
        "shapes-clip",
        tmp_path / "ref.zarr",
        ExtractConfig(**cfg, text_padding="reference"),
    )
    extract(manifests["shapes_spatial"], "shapes-clip", tmp_path / "longest.zarr", ExtractConfig(**cfg))
    longest = zarr.open_group(tmp_path / "longest.zarr", mode="r")
    assert ref.text_tokens.shape[1] == 30 and ref.attrs["text_padding"] == "reference"
    lengths = ref.text_length[:]
    np.testing.assert_array_equal(lengths, longest["text/length"][:])
    a, b = ref.text_tokens[:].astype(np.float32), longest["text/tokens"][:].astype(np.float32)
    for row, n in enumerate(lengths):  # causal attention, pads masked: real tokens are unchanged
        np.testing.assert_allclose(a[row, :n], b[row, :n], atol=3e-3)
        assert np.allclose(np.linalg.norm(a[row, n:], axis=-1), 1, atol=3e-3)  # pads hold real embeddings


def test_bad_padding_and_unknown_backbone_fail_before_work(manifests, tmp_path):
    with pytest.raises(ConfigError, match="text_padding"):
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "x.zarr",
            ExtractConfig(device="cpu", progress=False, text_padding="max"),
        )
    with pytest.raises(ConfigError, match="context length 24"):  # the reference pads to 30
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "z.zarr",
            ExtractConfig(device="cpu", progress=False, text_padding="reference"),
        )
    with pytest.raises(UnknownNameError, match="unknown backbone"):
        extract(tmp_path / "missing.json", "ViT-Q-1.openai", tmp_path / "y.zarr")
    assert not (tmp_path / "y.zarr").exists()


def test_on_grid_widens_a_span_to_whole_batches():
    assert on_grid((3, 12), 8, 22) == (0, 16)
    assert on_grid((18, 22), 8, 22) == (16, 22)  # the last batch is the one-part run's: rows 16..21
    assert on_grid((8, 16), 8, 22) == (8, 16) and on_grid((9, 9), 8, 22) == (9, 9)  # on the grid; empty


def test_parts_run_the_model_on_the_one_part_runs_batches(manifests, tmp_path, monkeypatch):
    """A model whose outputs depend on the whole batch (as some CPU kernels' last bits do: oneDNN's 1x1
    convolution on one thread, 2026-12-05) still gives a 3-part store equal to a 1-part one, bit for bit."""
    from dcsm_cache.pipeline.tokens.encoder import TokenEncoder
    from dcsm_cache.stores import FeatureStore

    image, text = TokenEncoder.image, TokenEncoder.text
    monkeypatch.setattr(TokenEncoder, "image", lambda self, x: [t + x.mean() for t in image(self, x)])
    monkeypatch.setattr(TokenEncoder, "text", lambda self, ids: [t + ids.float().mean() for t in text(self, ids)])
    cfg = dict(batch_size=8, text_batch_size=8, chunk_rows=3, device="cpu", progress=False)
    extract(manifests["shapes_spatial"], TINY_BACKBONE, tmp_path / "one.zarr", ExtractConfig(**cfg))
    for part in range(3):
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "three.zarr",
            ExtractConfig(**cfg, part=part, nparts=3),
        )
    one, three = FeatureStore.open(tmp_path / "one.zarr"), FeatureStore.open(tmp_path / "three.zarr")
    assert three.part_rows(1)["image"][0] % 8 and three.part_rows(1)["text"][0] % 8  # parts start off the grid
    for name in (
        "image/tokens",
        "image/pooled",
        "image/valid",
        "text/tokens",
        "text/pooled",
        "text/ids",
        "text/length",
    ):
        assert one[name][:].tobytes() == three[name][:].tobytes(), name
