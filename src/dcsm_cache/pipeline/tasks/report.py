"""Merge evaluation results into one Markdown table and one CSV.

    report(sorted(Path("results").glob("*/*/*.json")), "results/summary.md")

One row per (backbone, scorer), one column per benchmark subset (and per benchmark, where it has
several subsets), accuracy in percent; the first row is the chance level. The CSV beside the
Markdown file holds the same numbers in long form with item counts.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ...atomic import write_text
from ...errors import BadInputError
from ..paper.table import paper_table


def load_results(paths) -> list[dict]:
    results = []
    for p in paths:
        try:
            results.append(json.loads(Path(p).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise BadInputError(f"result {p} cannot be read ({type(err).__name__}): rerun its evaluation") from err
    return results


def _columns(r: dict) -> dict[str, dict]:
    """Column name -> summary: each reported subset, plus the whole benchmark if it has several."""
    subsets = {k: v for k, v in r["subsets"].items() if "=" not in k}
    cols = {f"{r['dataset']}/{k}": v for k, v in subsets.items()}
    if len(subsets) != 1:
        cols[r["dataset"]] = {k: r[k] for k in ("accuracy", "chance", "n_items")}
    return cols


def report(paths, out: str | os.PathLike) -> str:
    results = load_results(paths)
    if not results:
        raise BadInputError("no result files to report: run `dcsm-cache eval` first")
    table: dict[tuple[str, str], dict[str, dict]] = {}
    chance: dict[str, float] = {}
    for r in results:
        for col, v in _columns(r).items():
            table.setdefault((r["backbone"], r["scorer"]), {})[col] = v
            chance[col] = v["chance"]
    cols = sorted(chance)
    lines = ["| backbone | scorer | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols),
             "| chance | | " + " | ".join(f"{100 * chance[c]:.1f}" for c in cols) + " |"]
    for (backbone, scorer), row in sorted(table.items()):
        cells = [f"{100 * row[c]['accuracy']:.1f}" if c in row else "" for c in cols]
        lines.append(f"| {backbone} | {scorer} | " + " | ".join(cells) + " |")
    n = {c: max(row[c]["n_items"] for row in table.values() if c in row) for c in cols}
    md = "# dcsm-cache results\n\nAccuracy (%) per benchmark subset; items per column: " + \
         ", ".join(f"{c} {n[c]}" for c in cols) + ".\n\n" + "\n".join(lines) + "\n" + paper_table(results)
    out = Path(out)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["backbone", "scorer", "column", "accuracy", "chance", "n_items"])
    for (backbone, scorer), row in sorted(table.items()):
        for c in cols:
            if c in row:
                w.writerow([backbone, scorer, c, f"{row[c]['accuracy']:.4f}", f"{row[c]['chance']:.4f}",
                            row[c]["n_items"]])
    write_text(out.with_suffix(".csv"), buf.getvalue())
    write_text(out, md)
    return md
