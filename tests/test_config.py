"""Frozen dataclass configs: overrides, coercion, unknown keys, nested configs."""

from __future__ import annotations

import dataclasses

import pytest

from dcsm_cache.config import config_hash, from_mapping
from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.train import TrainConfig


def test_overrides_coercion_and_nesting():
    cfg = from_mapping(TrainConfig, {"steps": "50", "lr": 1, "scorer": {"maxsim": "false"}})
    assert cfg.steps == 50 and cfg.lr == 1.0 and cfg.scorer.maxsim is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3  # type: ignore[misc]


def test_unknown_key_names_it_and_lists_known():
    with pytest.raises(ConfigError, match=r"unknown key stepz .*known: .*steps"):
        from_mapping(TrainConfig, {"stepz": 1}, "train")
    with pytest.raises(ConfigError, match="not a int"):
        from_mapping(TrainConfig, {"steps": "many"})


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(TrainConfig()) == config_hash(TrainConfig())
    assert config_hash(TrainConfig()) != config_hash(TrainConfig(steps=1))


@pytest.mark.parametrize(
    "cls, values, words",
    [
        ("extract", {"part": 2, "nparts": 2}, "part=2 is outside 0..1"),
        ("extract", {"part": -1}, "part=-1 is outside 0..0"),
        ("extract", {"precision": "fp8"}, "precision='fp8' is not one of auto, fp32, bf16, fp16"),
        ("extract", {"text_padding": "max"}, "text_padding='max' is not one of longest, reference"),
        ("extract", {"batch_size": -1}, "batch_size=-1 must be at least 0"),
        ("train", {"batch_size": 1}, "batch_size=1 must be at least 2"),
        ("train", {"lr": 0}, "lr=0.0 must be positive"),
        ("train", {"scorer": {"standardise": "items"}}, "standardise='items' is not one of map, image"),
        ("scorer", {"dropout": 1.0}, "dropout=1.0 must be in [0, 1)"),
        ("eval", {"batch_size": 0}, "batch_size=0 must be at least 1"),
        ("zeroshot", {"top_k": [0]}, "every k must be positive"),
        ("retrieval", {"ks": []}, "every k must be positive"),
        ("pretrain", {"token_pool": "max"}, "token_pool 'max' is not one of"),
        ("linear_probe", {"features": "cls"}, "features='cls' is not one of pooled, tokens"),
        ("linear_probe", {"c_min": 10, "c_max": 1}, "need 0 < min < max"),
    ],
)
def test_every_config_checks_its_values(cls, values, words):
    """A bad value is one ConfigError naming the stage and the key, never a traceback or a silent fallback."""
    from dcsm_cache.pipeline.dcsm import ScorerConfig
    from dcsm_cache.pipeline.extract import ExtractConfig
    from dcsm_cache.pipeline.tasks import EvalConfig, LinearProbeConfig, RetrievalConfig, ZeroShotConfig
    from dcsm_cache.pipeline.world.pretrain import PretrainConfig

    classes = {
        "extract": ExtractConfig,
        "train": TrainConfig,
        "scorer": ScorerConfig,
        "eval": EvalConfig,
        "zeroshot": ZeroShotConfig,
        "retrieval": RetrievalConfig,
        "linear_probe": LinearProbeConfig,
        "pretrain": PretrainConfig,
    }
    with pytest.raises(ConfigError) as err:
        from_mapping(classes[cls], values, cls)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_out_of_range_part_is_one_line_through_the_cli(tmp_path):
    from click.testing import CliRunner

    from dcsm_cache.cli import main

    r = CliRunner().invoke(
        main,
        [
            "extract",
            "--items",
            str(tmp_path / "m.json"),
            "--backbone",
            "shapes-clip-tiny",
            "--out",
            str(tmp_path / "s.zarr"),
            "--part",
            "3",
            "--nparts",
            "2",
        ],
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "part=3 is outside 0..1" in r.output
