"""Merge result files into the report: summary.md, .csv and .json, the figures, and summary.html.

    report(sorted(Path("results/default").glob("*/*/*.json")), "results/default/summary.md")

Every result is read through the declared schema (`schema.py`, docs/results.md). Choice benchmarks
(`dcsm-cache eval`) make the paper-style table (`results_table.py`): benchmarks as columns grouped into
attribute binding, spatial relations and negation, their splits as sub-columns, a chance row, one row
per backbone (the workflow's key) x scorer, the best per column in bold; then the paper's eight
columns where the results cover any. Zero-shot classification (`dcsm-cache zeroshot`): one row per
(dataset, backbone) with top-k accuracy, and one per domain below it. Retrieval (`dcsm-cache
retrieval`): one row per (dataset, backbone) with recall at k in both directions. Linear probes
(`dcsm-cache linear-probe`): one row per probe with the zero-shot top-1 beside it
(`linear_probe_table.py`), and `shots.png`, accuracy against shots with the zero-shot line. The CSV holds
every number in long form, with its standard error, item count, chance level, whether it is the
column's best, and the result file, store fingerprint and config hash it comes from; the JSON holds
the same, by table. Figures (`figures/plots.py`) and an HTML page with them (`report_html.py`) go
beside the Markdown file when `figures` is on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from ...atomic import write_text
from ...errors import BadInputError
from ..paper.table import paper_table
from .linear_probe_table import linear_probe_table, probe_series
from .results_table import ChoiceTable, choice_table
from .schema import read_results, row_name, stderr

FIGURES = ("accuracy.png", "gain.png", "shots.png")  # written beside the report (figures/plots.py)
TASKS = ("zeroshot", "retrieval", "linear_probe")  # results of these carry `task`; choice benchmarks' do not
CSV_HEADER = [
    "task",
    "family",
    "backbone",
    "scorer",
    "column",
    "accuracy",
    "stderr",
    "chance",
    "n_items",
    "best",
    "result",
    "store_fingerprint",
    "config_hash",
]


def load_results(paths) -> list[dict]:
    """Result files read and checked against the schema (a missing declared key is one error line)."""
    return read_results(paths)


def _pct(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _row(task, family, backbone, scorer, column, cell: dict, best: bool = False) -> list:
    return [
        task,
        family,
        backbone,
        scorer,
        column,
        cell["accuracy"],
        cell.get("stderr", stderr(cell["accuracy"], cell["n_items"])),
        cell["chance"],
        cell["n_items"],
        int(best),
        cell.get("result") or "",
        cell.get("store_fingerprint") or "",
        cell.get("config_hash") or "",
    ]


def choice_markdown(table: ChoiceTable, rows: list) -> str:
    parts = [
        "Accuracy (%) per benchmark split, rows are backbone x scorer, the best per column in **bold**; "
        "standard errors and each number's result file, store fingerprint and config hash are in the CSV "
        "and JSON beside this file.\n"
    ]
    for family, cols in table.families():
        ids = [c.id for c in cols]
        best = {c: table.best(c) for c in ids}
        lines = [
            f"\n### {family[0].upper() + family[1:]}\n",
            "| backbone | scorer | " + " | ".join(ids) + " |",
            "|---|---|" + "---:|" * len(ids),
            "| chance | | " + " | ".join(_pct(c.chance) for c in cols) + " |",
        ]
        for key in table.rows:
            row = table.cells[key]
            cells = []
            for c in ids:
                text = _pct(row[c]["accuracy"]) if c in row else ""
                is_best = c in row and text and row[c]["accuracy"] == best[c]
                cells.append(f"**{text}**" if is_best else text)
                if c in row:
                    rows.append(_row("choice", family, *key, c, row[c], bool(is_best)))
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
        lines.append("\nItems per column: " + ", ".join(f"{c} {table.n_items(c)}" for c in ids) + ".")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def choice_json(table: ChoiceTable) -> dict:
    return {
        "columns": [
            {"id": c.id, "family": c.family, "benchmark": c.benchmark, "split": c.split, "chance": c.chance}
            for c in table.columns
        ],
        "rows": [
            {
                "backbone": b,
                "scorer": s,
                "cells": {
                    col: {**cell, "best": cell["accuracy"] == table.best(col)}
                    for col, cell in table.cells[(b, s)].items()
                },
            }
            for b, s in table.rows
        ],
    }


def zeroshot_table(results: list[dict], rows: list) -> str:
    ks = sorted({int(k[3:]) for r in results for k in r if k.startswith("top") and k[3:].isdigit()})
    lines = [
        "| dataset | backbone | " + " | ".join(f"top-{k}" for k in ks) + " | chance (top-1) | images | classes |",
        "|---|---|" + "---:|" * (len(ks) + 3),
    ]
    for r in sorted(results, key=lambda r: (r["dataset"], r["backbone"])):
        for name, v in [(r["dataset"], r), *((f"{r['dataset']}/{d}", s) for d, s in sorted(r["subsets"].items()))]:
            lines.append(
                f"| {name} | {row_name(r)} | "
                + " | ".join(_pct(v.get(f"top{k}")) for k in ks)
                + f" | {_pct(v['chance'])} | {v['n_items']} | {r['n_classes']} |"
            )
            rows += [
                _row(
                    "zeroshot",
                    "zero-shot",
                    row_name(r),
                    r["scorer"],
                    f"{name}/top{k}",
                    {**_trace(r), "accuracy": v[f"top{k}"], "chance": v["chance"], "n_items": v["n_items"]},
                )
                for k in ks
                if f"top{k}" in v
            ]
    return (
        "\n## Zero-shot classification\n\nTop-k accuracy (%) of each image's class among the dataset's "
        "classes, from the pooled embeddings and the prompt ensemble; a row per domain below each dataset "
        "(shapes world: `test` = colour-shape combinations seen in pretraining, `heldout` = never seen).\n\n"
        + "\n".join(lines)
        + "\n"
    )


def retrieval_table(results: list[dict], rows: list) -> str:
    ks = sorted({int(k[2:]) for r in results for k in r["image_to_text"] if k.startswith("R@")})
    arrows = {"image_to_text": "image→text", "text_to_image": "text→image"}
    head = [f"{arrows[d]} R@{k}" for d in arrows for k in ks]
    lines = [
        "| dataset | backbone | " + " | ".join(head) + " | images | texts |",
        "|---|---|" + "---:|" * (len(head) + 2),
    ]
    for r in sorted(results, key=lambda r: (r["dataset"], r["backbone"])):
        lines.append(
            f"| {r['dataset']} | {row_name(r)} | "
            + " | ".join(_pct(r[d].get(f"R@{k}")) for d in arrows for k in ks)
            + f" | {r['n_images']} | {r['n_texts']} |"
        )
        rows += [
            _row(
                "retrieval",
                "retrieval",
                row_name(r),
                r["scorer"],
                f"{r['dataset']}/{d}_R@{k}",
                {
                    **_trace(r),
                    "accuracy": r[d][f"R@{k}"],
                    "chance": r[d]["chance"][f"R@{k}"],
                    "n_items": r[d]["n_queries"],
                },
            )
            for d in arrows
            for k in ks
            if f"R@{k}" in r[d]
        ]
    return (
        "\n## Retrieval\n\nRecall at k (%) over the whole test split, both directions, from the pooled "
        "embeddings (an image counts as found when any of its captions is).\n\n" + "\n".join(lines) + "\n"
    )


def skipped_note(results: list[dict]) -> str:
    """One line naming the datasets whose unreadable images were left out, and how many ("" if none)."""
    skipped = {(r["dataset"], r["n_skipped"]) for r in results if r.get("n_skipped")}
    if not skipped:
        return ""
    counts = ", ".join(f"{d} {n}" for d, n in sorted(skipped))
    return f"\nItems skipped because their image could not be read (`dcsm-cache parts STORE` lists them): {counts}.\n"


def _trace(r: dict) -> dict:
    return {"result": r.get("_path"), "store_fingerprint": r["store_fingerprint"], "config_hash": r["config_hash"]}


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for row in rows:
        w.writerow([*row[:5], *(f"{x:.4f}" for x in row[5:8]), *row[8:]])
    return buf.getvalue()


def report(paths, out: str | os.PathLike, figures: bool = True, gallery=()) -> str:
    """Write OUT (Markdown), OUT.csv, OUT.json and, with `figures`, the PNG figures and OUT.html beside it
    (the PNGs in the `gallery` folders shown at its end)."""
    paths, out = list(paths), Path(out)
    mine = {out, *(out.with_suffix(s) for s in (".csv", ".json", ".html")), *(out.parent / f for f in FIGURES)}
    clash = [str(p) for p in paths if Path(p).resolve() in {m.resolve() for m in mine}]
    if clash:
        raise BadInputError(f"report --out {out} would overwrite its input {clash[0]}: write the report elsewhere")
    results = load_results(paths)
    if not results:
        raise BadInputError("no result files to report: run `dcsm-cache eval` first")
    by_task = {t: [r for r in results if r.get("task") == t] for t in TASKS}
    choice = [r for r in results if r.get("task") not in TASKS]
    rows: list[list] = []
    table = choice_table(choice)
    md = "# dcsm-cache results\n\n" + (choice_markdown(table, rows) + paper_table(choice) if choice else "")
    if by_task["zeroshot"]:
        md += zeroshot_table(by_task["zeroshot"], rows)
    if by_task["retrieval"]:
        md += retrieval_table(by_task["retrieval"], rows)
    if by_task["linear_probe"]:
        probes, cells = linear_probe_table(by_task["linear_probe"], by_task["zeroshot"])
        md += probes
        rows += [_row("linear_probe", "linear probe", *cell) for cell in cells]
    md += skipped_note(results)
    doc = {
        "schema": "dcsm-cache/summary-v1",
        "choice": choice_json(table),
        "rows": [dict(zip(CSV_HEADER, row)) for row in rows],
    }
    made = []
    if figures:
        from ..figures.plots import write_figures

        made = write_figures(table, out.parent, probe_series(by_task["linear_probe"], by_task["zeroshot"]))
        doc["figures"] = [p.name for p in made]
        from .report_html import write_html

        shown = sorted(p for folder in gallery for p in Path(folder).glob("*.png"))
        write_html(table, md, made, out.with_suffix(".html"), shown)
    write_text(out.with_suffix(".csv"), _csv(rows))
    write_text(out.with_suffix(".json"), json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n")
    write_text(out, md)
    return md


def _finite(x):
    """NaN (a column with no items) as JSON null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x
