"""Merge evaluation results into one Markdown table and one CSV.

    report(sorted(Path("results").glob("*/*/*.json")), "results/summary.md")

One row per (backbone, scorer), one column per benchmark subset (and per benchmark, where it has
several subsets), accuracy in percent; the first row is the chance level. The CSV beside the
Markdown file holds the same numbers in long form with item counts.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..errors import BadInputError
from .benchmarks import paper


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


def paper_table(results: list[dict]) -> str:
    """The paper's eight columns (each the mean of its benchmark keys), where results cover any of them."""
    by_row: dict[tuple[str, str], dict[str, float]] = {}
    for r in results:
        key = r["dataset"].split("+", 1)[0]  # `whatsUp_A+paper` scores the registry key whatsUp_A
        by_row.setdefault((r["backbone"], r["scorer"]), {})[key] = r["accuracy"]
    rows = {k: paper.column_scores(v) for k, v in by_row.items()}
    names = [c.name for c in paper.COLUMNS if any(c.name in v for v in rows.values())]
    if not names:
        return ""
    lines = ["| backbone | scorer | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names),
             "| chance | | " + " | ".join(f"{100 * c.chance:.1f}" for c in paper.COLUMNS if c.name in names) + " |"]
    for (backbone, scorer), v in sorted(rows.items()):
        if v:
            lines.append(f"| {backbone} | {scorer} | " + " | ".join(f"{100 * v[c]:.1f}" if c in v else ""
                                                                for c in names) + " |")
    for model, v in paper.REPORTED.items():
        lines.append(f"| {model} (paper) | reported | " + " | ".join(f"{v[c]:.1f}" for c in names) + " |")
    return ("\n## The paper's columns\n\nEach column is the mean accuracy (%) over its benchmark keys "
            "(see `pipeline/benchmarks/paper.py`); the last rows are the numbers the paper reports.\n\n"
            + "\n".join(lines) + "\n")


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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["backbone", "scorer", "column", "accuracy", "chance", "n_items"])
        for (backbone, scorer), row in sorted(table.items()):
            for c in cols:
                if c in row:
                    w.writerow([backbone, scorer, c, f"{row[c]['accuracy']:.4f}", f"{row[c]['chance']:.4f}",
                                row[c]["n_items"]])
    return md
