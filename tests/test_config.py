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
