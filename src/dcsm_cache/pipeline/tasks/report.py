"""Merge evaluation results into one Markdown report and one CSV.

    report(sorted(Path("results/default").glob("*/*/*.json")), "results/default/summary.md")

Choice benchmarks (`dcsm-cache eval`): one row per (backbone, scorer), one column per benchmark
subset (and per benchmark, where it has several subsets), accuracy in percent; the first row is
the chance level; then the paper's columns where the results cover any. Zero-shot classification
(`dcsm-cache zeroshot`): one row per (dataset, backbone) with top-k accuracy, and one per domain
below it. Retrieval (`dcsm-cache retrieval`): one row per (dataset, backbone) with recall at k in
both directions. The CSV beside the Markdown file holds the same numbers in long form with item
counts: task, backbone, scorer, column, accuracy, chance, n_items.
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

TASKS = ("zeroshot", "retrieval")  # results of these carry `task`; choice benchmarks' do not


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


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def choice_table(results: list[dict], rows: list) -> str:
    table: dict[tuple[str, str], dict[str, dict]] = {}
    chance: dict[str, float] = {}
    for r in results:
        for col, v in _columns(r).items():
            table.setdefault((r["backbone"], r["scorer"]), {})[col] = v
            chance[col] = v["chance"]
    cols = sorted(chance)
    lines = [
        "| backbone | scorer | " + " | ".join(cols) + " |",
        "|---|---|" + "---:|" * len(cols),
        "| chance | | " + " | ".join(f"{100 * chance[c]:.1f}" for c in cols) + " |",
    ]
    for (backbone, scorer), row in sorted(table.items()):
        cells = [f"{100 * row[c]['accuracy']:.1f}" if c in row else "" for c in cols]
        lines.append(f"| {backbone} | {scorer} | " + " | ".join(cells) + " |")
        rows += [
            ["choice", backbone, scorer, c, row[c]["accuracy"], row[c]["chance"], row[c]["n_items"]]
            for c in cols
            if c in row
        ]
    n = {c: max(row[c]["n_items"] for row in table.values() if c in row) for c in cols}
    return (
        "Accuracy (%) per benchmark subset; items per column: "
        + ", ".join(f"{c} {n[c]}" for c in cols)
        + ".\n\n"
        + "\n".join(lines)
        + "\n"
        + paper_table(results)
    )


def zeroshot_table(results: list[dict], rows: list) -> str:
    ks = sorted({int(k[3:]) for r in results for k in r if k.startswith("top") and k[3:].isdigit()})
    lines = [
        "| dataset | backbone | " + " | ".join(f"top-{k}" for k in ks) + " | chance (top-1) | images | classes |",
        "|---|---|" + "---:|" * (len(ks) + 3),
    ]
    for r in sorted(results, key=lambda r: (r["dataset"], r["backbone"])):
        for name, v in [(r["dataset"], r), *((f"{r['dataset']}/{d}", s) for d, s in sorted(r["subsets"].items()))]:
            lines.append(
                f"| {name} | {r['backbone']} | "
                + " | ".join(_pct(v.get(f"top{k}")) for k in ks)
                + f" | {_pct(v['chance'])} | {v['n_items']} | {r['n_classes']} |"
            )
            rows += [
                ["zeroshot", r["backbone"], r["scorer"], f"{name}/top{k}", v[f"top{k}"], v["chance"], v["n_items"]]
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
            f"| {r['dataset']} | {r['backbone']} | "
            + " | ".join(_pct(r[d].get(f"R@{k}")) for d in arrows for k in ks)
            + f" | {r['n_images']} | {r['n_texts']} |"
        )
        rows += [
            [
                "retrieval",
                r["backbone"],
                r["scorer"],
                f"{r['dataset']}/{d}_R@{k}",
                r[d][f"R@{k}"],
                r[d]["chance"][f"R@{k}"],
                r[d]["n_queries"],
            ]
            for d in arrows
            for k in ks
            if f"R@{k}" in r[d]
        ]
    return (
        "\n## Retrieval\n\nRecall at k (%) over the whole test split, both directions, from the pooled "
        "embeddings (an image counts as found when any of its captions is).\n\n" + "\n".join(lines) + "\n"
    )


def report(paths, out: str | os.PathLike) -> str:
    results = load_results(paths)
    if not results:
        raise BadInputError("no result files to report: run `dcsm-cache eval` first")
    by_task = {t: [r for r in results if r.get("task") == t] for t in TASKS}
    choice = [r for r in results if r.get("task") not in TASKS]
    rows: list[list] = []
    md = "# dcsm-cache results\n\n" + (choice_table(choice, rows) if choice else "")
    if by_task["zeroshot"]:
        md += zeroshot_table(by_task["zeroshot"], rows)
    if by_task["retrieval"]:
        md += retrieval_table(by_task["retrieval"], rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "backbone", "scorer", "column", "accuracy", "chance", "n_items"])
    w.writerows([*row[:4], f"{row[4]:.4f}", f"{row[5]:.4f}", row[6]] for row in rows)
    out = Path(out)
    write_text(out.with_suffix(".csv"), buf.getvalue())
    write_text(out, md)
    return md
