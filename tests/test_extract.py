"""Extraction options: the reference's text padding, bad settings, unknown names before any work."""

from __future__ import annotations

import numpy as np
import pytest

from dcsm_cache.errors import ConfigError, UnknownNameError
from dcsm_cache.pipeline.extract import ExtractConfig, extract

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
