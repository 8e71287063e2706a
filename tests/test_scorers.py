"""The scorer registry is the one declaration: the CLI's choices, the config schema, the rules and evaluation's
dispatch all come from it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcsm_cache.cli import main
from dcsm_cache.errors import UnknownNameError
from dcsm_cache.pipeline.scorers import SCORERS, Scorer, get_scorer

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = (ast.Module, ast.FunctionDef, ast.ClassDef)


def test_cli_choices_are_the_registry():
    option = next(p for p in main.commands["eval"].params if p.name == "scorer")
    assert list(option.type.choices) == list(SCORERS)


def test_schema_enums_are_the_registry():
    schema = yaml.safe_load((ROOT / "config" / "config.schema.yaml").read_text())
    bench = schema["properties"]["evaluate"]["properties"]["benchmarks"]["additionalProperties"]
    registry, recipe = bench["properties"]["scorers"]["items"]["anyOf"]  # (a recipe's name is checked by plan.py)
    assert registry["enum"] == list(SCORERS) and "pattern" in recipe
    backbone = schema["properties"]["backbones"]["additionalProperties"]["properties"]["scorers"]["items"]
    assert backbone["enum"] == [s.name for s in SCORERS.values() if s.backbone_own]


def test_evaluation_dispatches_through_the_registry_and_the_rules_ask_it():
    rules = (ROOT / "rules" / "eval.smk").read_text() + (ROOT / "rules" / "common.smk").read_text()
    assert "SCORERS[" in rules
    tree = ast.parse((ROOT / "src" / "dcsm_cache" / "pipeline" / "tasks" / "choice.py").read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, DOCUMENTED) and ast.get_docstring(n)}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings}
    for name in SCORERS:  # no rule, and no line of evaluation, special-cases a scorer by name
        assert f'"{name}"' not in rules and f"'{name}'" not in rules, name
        assert name not in strings, name
        assert callable(SCORERS[name].load) and callable(SCORERS[name].score)
    assert get_scorer("cosine").load("ignored", "cpu") == (None, {})


def test_reading_the_registry_imports_no_scoring_code():
    code = (
        "import sys; from dcsm_cache.pipeline.scorers import SCORERS; "
        "print(sorted(m for m in ('torch', 'numpy', 'dcsm_cache.pipeline.tasks') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_scorer_and_bad_source():
    with pytest.raises(UnknownNameError, match="valid: cosine, maxsim, dcsm, dcsm-paper"):
        get_scorer("clip")
    with pytest.raises(ValueError, match="checkpoint source"):
        Scorer("x", "y", get_scorer("cosine").score, checkpoint="somewhere")
