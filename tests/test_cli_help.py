"""Every `dcsm-cache` command's --help shows an example, and every command is documented (README or docs/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dcsm_cache.cli import main

REPO = Path(__file__).resolve().parent.parent
COMMANDS = sorted(main.commands)


def example(args: list[str]) -> str:
    """The example line of a --help: the first line after 'Example:'; it must be a dcsm-cache command."""
    res = CliRunner().invoke(main, [*args, "--help"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    where = [i for i, line in enumerate(lines) if line.strip() == "Example:"]
    assert where, f"`dcsm-cache {' '.join(args)} --help` has no example"
    return lines[where[0] + 1].strip()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example_of_itself(name):
    assert example([name]).split()[:2] == ["dcsm-cache", name]


def test_the_group_has_an_example_too():
    assert example([]).startswith("dcsm-cache ")


def test_every_command_is_documented():
    text = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    missing = [name for name in COMMANDS if f"dcsm-cache {name}" not in text]
    assert not missing, f"commands in neither README.md nor docs/: {missing}"
    assert len(COMMANDS) >= 17  # world ... score: a test that found no commands would pass anything
