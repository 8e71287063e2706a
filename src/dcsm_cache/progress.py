"""Progress bars for every long loop: rates and ETA on a terminal, a line every so often in a log file.

    from ..progress import tqdm            # a drop-in for tqdm.tqdm with this package's defaults
    for batch in tqdm(batches, total=n, desc="images", unit="img", disable=not cfg.progress): ...

On a terminal this is tqdm as usual (rate and ETA, redrawn in place). When stderr is not a terminal
(a Snakemake rule's log, `> log 2>&1`), each update is written as a line of its own, at most one every
TQDM_MININTERVAL seconds (30 unless that variable is set; the Snakefile sets it too), so a log shows
the rate and ETA as the job goes. `dcsm-cache --quiet` (or DCSM_CACHE_QUIET=1, which worker processes
inherit) turns every bar off; so does a stage's own `--set progress=false`.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm as _tqdm

__all__ = ["LOG_INTERVAL", "QUIET_ENV", "quiet", "set_quiet", "tqdm"]

QUIET_ENV = "DCSM_CACHE_QUIET"
LOG_INTERVAL = 30.0  # seconds between lines in a log file, unless TQDM_MININTERVAL says otherwise


def set_quiet(on: bool = True) -> None:
    """Turn every progress bar off (or back on) in this process and the processes it starts."""
    if on:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "").lower() not in ("", "0", "false", "no")


class _Lines:
    """A file for tqdm that ends each redraw with a newline instead of returning the carriage."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def tqdm(*args, **kwargs) -> _tqdm:
    """tqdm.tqdm(*args, **kwargs), off when quiet, one line per update (see above) when not on a terminal."""
    if quiet():
        kwargs["disable"] = True
    stream = kwargs.get("file") or sys.stderr
    if not kwargs.get("disable") and not _isatty(stream):
        kwargs["file"] = _Lines(stream)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("mininterval", _interval())
    return _tqdm(*args, **kwargs)


def _interval() -> float:
    try:
        return float(os.environ.get("TQDM_MININTERVAL", LOG_INTERVAL))
    except ValueError:
        return LOG_INTERVAL


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
