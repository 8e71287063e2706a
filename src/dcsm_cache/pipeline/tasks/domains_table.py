"""The domain study's table and figure, shaped as Kempf et al.'s Figure 2: per mixture, the held-out classes' accuracy.

    rows = study_table({"natural-only": "results/domains/domains-natural-only/domains_eval/zeroshot.json", ...},
                       test_domain="sketch", test_classes=["heart", "star"])
    write_table(rows, "results/domains/figure2")     # figure2.md, figure2.csv, figure2.png

Reads the zero-shot results (`tasks/zeroshot.py`, per domain and per class index) of each mixture's
model on the same evaluation images; class indices are the sorted class folder names, as the
`domainnet` loader numbers them. Columns, top-1 in %: the test domain's held-out classes (never seen
in that domain in any mixture's pretraining: the study's question), its other classes, and every
other domain over all its classes. Held-out accuracy is the mean of its classes' top-1 (the evaluation
set has the same number of images per class and domain, so this is the images' accuracy too).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from ...atomic import atomic_path, write_text
from ...errors import BadInputError, InputNotFoundError

__all__ = ["study_table", "write_table"]


def _load(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputNotFoundError(f"zero-shot result {path} is missing: run `dcsm-cache zeroshot` first") from None


def _mean(values: list) -> float:
    present = [v for v in values if v is not None]
    if not present:
        raise BadInputError("no evaluation images for these classes in this domain")
    return sum(present) / len(present)


def study_table(
    results: Mapping[str, str | os.PathLike], test_domain: str, test_classes: Sequence[str], classes: Sequence[str]
) -> list[dict]:
    """One row per mixture (in the given order): mixture, heldout, seen, and one column per other domain, in %."""
    index = {c: i for i, c in enumerate(sorted(classes))}
    missing = [c for c in test_classes if c not in index]
    if missing or not test_classes:
        raise BadInputError(f"test classes {list(test_classes)} must be among the classes {', '.join(sorted(classes))}")
    held = {index[c] for c in test_classes}
    rows = []
    for mixture, path in results.items():
        subsets = _load(path).get("subsets", {})
        if test_domain not in subsets or "per_class_top1" not in subsets[test_domain]:
            raise BadInputError(
                f"{path}: no per-class results for domain {test_domain!r} (found {', '.join(subsets) or 'none'}); "
                f"rerun `dcsm-cache zeroshot` on the domains' evaluation store"
            )
        per_class = subsets[test_domain]["per_class_top1"]
        if len(per_class) != len(index):
            raise BadInputError(f"{path}: {len(per_class)} classes, the domains have {len(index)}")
        row = {
            "mixture": mixture,
            "heldout": 100 * _mean([a for i, a in enumerate(per_class) if i in held]),
            "seen": 100 * _mean([a for i, a in enumerate(per_class) if i not in held]),
        }
        row |= {d: 100 * s["accuracy"] for d, s in sorted(subsets.items()) if d != test_domain}
        rows.append(row)
    return rows


def _markdown(rows: list[dict], test_domain: str, test_classes: Sequence[str]) -> str:
    cols = list(rows[0])
    names = {
        "mixture": "mixture",
        "heldout": f"{test_domain}: held-out classes",
        "seen": f"{test_domain}: other classes",
    }
    head = [names.get(c, c) for c in cols]
    lines = [
        f"Zero-shot top-1 (%) on the {test_domain} domain's held-out classes ({', '.join(test_classes)}), "
        f"its other classes, and the other domains (all classes).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|",
    ]
    lines += ["| " + " | ".join([r["mixture"]] + [f"{r[c]:.1f}" for c in cols[1:]]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], out: str | os.PathLike, test_domain: str, test_classes: Sequence[str]) -> list[Path]:
    """OUT.md, OUT.csv and OUT.png (bars per mixture: held-out classes, other classes, other domains' mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out.with_suffix(".md"), _markdown(rows, test_domain, test_classes))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    write_text(out.with_suffix(".csv"), buf.getvalue())
    others = [c for c in rows[0] if c not in ("mixture", "heldout", "seen")]
    series = {
        f"{test_domain}: held-out classes": [r["heldout"] for r in rows],
        f"{test_domain}: other classes": [r["seen"] for r in rows],
        "other domains (mean)": [sum(r[c] for c in others) / len(others) if others else 0.0 for r in rows],
    }
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(rows), 3.6))
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series.items()):
        ax.bar([i + (j - (len(series) - 1) / 2) * width for i in range(len(rows))], values, width, label=label)
    ax.set_xticks(range(len(rows)), [r["mixture"] for r in rows])
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"test domain: {test_domain}", fontsize=9)
    fig.tight_layout()
    png = out.with_suffix(".png")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return [out.with_suffix(".md"), out.with_suffix(".csv"), png]
