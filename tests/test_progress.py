"""Progress bars (`progress.py`): rate and ETA as lines of their own in a log, none when quiet."""

from __future__ import annotations

import io
import time

from click.testing import CliRunner

from dcsm_cache import progress
from dcsm_cache.cli import main


class Log(io.StringIO):
    def isatty(self):
        return False


def test_a_log_file_gets_one_line_per_update_with_rate_and_eta(monkeypatch):
    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    log = Log()
    for _ in progress.tqdm(range(4), desc="images", unit="img", file=log, miniters=1):
        time.sleep(0.02)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 4 and all(line.startswith("images:") for line in lines)
    assert "4/4" in lines[-1] and "img/s" in lines[-1] and "<" in lines[1]  # elapsed<remaining, then the rate


def test_quiet_turns_every_bar_off_here_and_in_child_processes(monkeypatch):
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    log = Log()
    for _ in progress.tqdm(range(3), file=log, mininterval=0):
        pass
    assert log.getvalue() == "" and progress.quiet()
    monkeypatch.delenv(progress.QUIET_ENV)
    assert not progress.quiet()
    res = CliRunner().invoke(main, ["--quiet", "benchmarks"])
    assert res.exit_code == 0 and progress.quiet()  # set in the environment, which workers inherit
    progress.set_quiet(False)
    assert not progress.quiet()
