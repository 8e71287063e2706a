"""The scorer registry is the one list: the CLI's choices, the config schema and the rules all come from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcsm_cache.cli import main
from dcsm_cache.errors import UnknownNameError
from dcsm_cache.pipeline.scorers import SCORERS, Scorer, get_scorer
from dcsm_cache.pipeline.tasks.choice import IMPLEMENTATIONS

ROOT = Path(__file__).resolve().parents[1]


def test_cli_choices_are_the_registry():
    option = next(p for p in main.commands["eval"].params if p.name == "scorer")
    assert list(option.type.choices) == list(SCORERS)


def test_schema_enum_is_the_registry():
    schema = yaml.safe_load((ROOT / "config" / "config.schema.yaml").read_text())
    bench = schema["properties"]["evaluate"]["properties"]["benchmarks"]["additionalProperties"]
    registry, recipe = bench["properties"]["scorers"]["items"]["anyOf"]  # (a recipe's name is checked by plan.py)
    assert registry["enum"] == list(SCORERS) and "pattern" in recipe


def test_every_scorer_has_an_implementation_and_the_rules_ask_the_registry():
    assert set(IMPLEMENTATIONS) == set(SCORERS)
    rules = (ROOT / "rules" / "eval.smk").read_text() + (ROOT / "rules" / "common.smk").read_text()
    assert "SCORERS[" in rules
    for name in SCORERS:  # no rule special-cases a scorer by name
        assert f'"{name}"' not in rules and f"'{name}'" not in rules


def test_unknown_scorer_and_bad_source():
    with pytest.raises(UnknownNameError, match="valid: cosine, maxsim, dcsm, dcsm-paper"):
        get_scorer("clip")
    with pytest.raises(ValueError, match="checkpoint source"):
        Scorer("x", "y", checkpoint="somewhere")
