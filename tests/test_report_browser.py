"""The Snakemake HTML report of the tiny embedded default, opened in headless Chromium: what the browser shows.

`snakemake --report` writes one HTML file whose page is a JavaScript (React) app: the source holds the
results only as data inside scripts, and the page's body is empty until the app runs. So the test reads
the DOM Chromium has *after* running it (`--dump-dom`, scripts given virtual time) and looks only at
elements outside <script>: the results table must be there as a table whose numbers are those of the
result files, and the figures as <img> elements carrying exactly the PNGs the report rule drew. A
screenshot then shows the figures were painted: the DCSM's bars (its colour, tab10 green) are on it.
Chromium is Debian's `chromium`, which .ci/run installs; without it the test is skipped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from snakemake_run import DEFAULT, SNAKEMAKE, snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)"),
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH"),
    pytest.mark.xdist_group("default_run"),  # on the worker that builds the tiny default (tests/test_snakemake.py)
]

DCSM_GREEN = (44, 160, 44)  # the DCSM's colour in accuracy.png and gain.png (figures/plots.py: scorer_colour)


class Rendered(HTMLParser):
    """Tables (rows of cell texts) and image sources of a DOM, outside <script> and <style>."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._skip = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        elif self._skip:
            return
        elif tag == "table" and "dcsm" in (a.get("class") or "").split():
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "img" and (a.get("src") or "").startswith("data:image/png"):
            self.images.append(a["src"])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000", *args]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root (CI containers)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def report(default_run, tmp_path_factory) -> Path:
    """The HTML report of the tiny embedded default's run (the shared `default_run`), written outside
    its folder, whose results/ other tests compare byte for byte."""
    page = tmp_path_factory.mktemp("browser") / "report.html"
    snakemake(default_run, DEFAULT, "--report", str(page))
    return page


@pytest.mark.slow
def test_the_browser_shows_the_results_table_and_the_figures(report, default_run):
    page = report
    source = Rendered()
    source.feed(page.read_text())
    assert not source.tables  # before JavaScript runs there is no table: what follows is rendered
    dom = Rendered()
    dom.feed(chromium("--dump-dom", page.as_uri()).stdout)
    assert dom.tables, "the report's front page shows no results table"
    table = dom.tables[0]
    summary = json.loads((default_run / "results/default/summary.json").read_text())["choice"]
    header = table[2]  # family, benchmark, split: the split row
    assert header == [c["split"] for c in summary["columns"]]
    shown = {(r[0], r[1]): r[2:] for r in table[3:] if r[0] != "chance"}
    assert len(shown) == len(summary["rows"]) == 3  # shapes-clip x cosine, maxsim, dcsm
    for row in summary["rows"]:
        cells = shown[(row["backbone"], row["scorer"])]
        for col, text in zip(summary["columns"], cells):
            cell = row["cells"][col["id"]]
            result = json.loads((default_run / cell["result"]).read_text())  # the number as its result file has it
            assert text == f"{100 * result['subsets'][col['split']]['accuracy']:.1f}", (row["scorer"], col["id"])
    drawn = {base64.b64decode(src.split(",", 1)[1]) for src in dom.images}
    for name in ("accuracy.png", "gain.png"):
        assert (default_run / "results/default" / name).read_bytes() in drawn, name
    assert len(drawn) >= 3  # and the gallery's heatmaps

    shot = page.parent / "shot.png"
    chromium("--window-size=1400,3000", f"--screenshot={shot}", page.as_uri())
    px = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    painted = (np.abs(px - DCSM_GREEN) < 4).all(axis=1).sum()
    assert painted > 1000, f"only {painted} pixels of the DCSM's bars on the screenshot"
