"""The linear probes' results as the report's table, and the series its shots figure draws.

    md, cells = linear_probe_table(probes, zeroshots)    # Markdown; (backbone, scorer, column, cell) per number
    for s in probe_series(probes, zeroshots):            # one per (test set, train set, backbone, features)
        s.points, s.zeroshot                             # ((shots or None, top-1, stderr), ...), the zero-shot top-1

One row per probe (`dcsm-cache linear-probe`): the test set, the train set, the backbone (the workflow's
key), the features, the shots (`all`: the whole train split), top-1 and mean per-class accuracy with
their standard errors, top-1 per domain tag of the test set (the shapes world's `test` and `heldout`
combinations), the C the search chose, the images fitted, and the zero-shot top-1 of the same backbone
on the same test set where the report has it: the CLIP paper's comparison (its Figure 6), which
`figures/plots.py` draws from `probe_series`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .results_table import SPLIT_ORDER
from .schema import row_name

__all__ = ["Series", "linear_probe_table", "probe_series", "shots_label"]


def shots_label(shots: int | None) -> str:
    return "all" if shots is None else f"{shots}-shot"


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _zeroshot(zeroshots: list[dict]) -> dict[tuple[str, str], float]:
    """(backbone row name, dataset) -> zero-shot top-1."""
    return {(row_name(z), z["dataset"]): z.get("top1", z["accuracy"]) for z in zeroshots}


def _key(r: dict) -> tuple:
    return (r["dataset"], row_name(r), r["train_dataset"], r.get("features", "pooled"))


def _order(r: dict) -> tuple:
    return (*_key(r), r["shots"] is None, r["shots"] or 0)


@dataclass(frozen=True)
class Series:
    dataset: str
    train: str
    backbone: str
    features: str
    points: tuple[tuple[int | None, float, float], ...]  # (shots, top-1, its standard error); None: all of train
    zeroshot: float | None  # the same backbone's zero-shot top-1 on the same test set
    chance: float = 0.0  # a uniform guess's top-1

    @property
    def label(self) -> str:
        return f"{self.backbone}: {self.dataset}" + ("" if self.features == "pooled" else f" ({self.features})")


def probe_series(probes: list[dict], zeroshots: list[dict]) -> list[Series]:
    zs = _zeroshot(zeroshots)
    out: dict[tuple, list[dict]] = {}
    for r in sorted(probes, key=_order):
        out.setdefault(_key(r), []).append(r)
    return [
        Series(d, t, b, f, tuple((r["shots"], r["accuracy"], r["stderr"]) for r in rs), zs.get((b, d)), rs[0]["chance"])
        for (d, b, t, f), rs in out.items()
    ]


def linear_probe_table(probes: list[dict], zeroshots: list[dict]) -> tuple[str, list[tuple[str, str, str, dict]]]:
    """The report's Markdown section, and (backbone, scorer, column, cell) for each number it shows."""
    zs = _zeroshot(zeroshots)
    domains = sorted({d for r in probes for d in r["subsets"]}, key=lambda d: (SPLIT_ORDER.get(d, len(SPLIT_ORDER)), d))
    lines = [
        "| test set | train set | backbone | features | shots | top-1 | mean per class | "
        + "".join(f"top-1 {d} | " for d in domains)
        + "C | images fitted | classes | zero-shot top-1 |",
        "|---|---|---|---|---|" + "---:|" * (len(domains) + 6),
    ]
    cells = []
    for r in sorted(probes, key=_order):
        name, shots = row_name(r), shots_label(r["shots"])
        zero = zs.get((name, r["dataset"]))
        lines.append(
            f"| {r['dataset']} | {r['train_dataset']} | {name} | {r.get('features', 'pooled')} | {shots} | "
            f"{_pct(r['accuracy'])} ± {_pct(r['stderr'])} | "
            f"{_pct(r['mean_per_class'])} ± {_pct(r['mean_per_class_stderr'])} | "
            + "".join(f"{_pct(r['subsets'][d]['accuracy']) if d in r['subsets'] else ''} | " for d in domains)
            + f"{r['C']:.3g} | {r.get('n_train', '')} | {r['n_classes']} | {_pct(zero)} |"
        )
        trace = {
            "result": r.get("_path"),
            "store_fingerprint": r["store_fingerprint"],
            "config_hash": r["config_hash"],
            "chance": r["chance"],
        }
        cells += [
            (name, r["scorer"], f"{r['dataset']}/{shots}/top1", {**trace, **_cell(r, "accuracy", "stderr")}),
            (
                name,
                r["scorer"],
                f"{r['dataset']}/{shots}/mean_per_class",
                {**trace, **_cell(r, "mean_per_class", "mean_per_class_stderr")},
            ),
            *(
                (name, r["scorer"], f"{r['dataset']}/{d}/{shots}/top1", {**trace, **r["subsets"][d]})
                for d in domains
                if d in r["subsets"]
            ),
        ]
    md = (
        "\n## Linear probes\n\nAccuracy (%) ± standard error of a logistic regression on each test set's frozen image "
        "features, fit on its train split (`all`) or on K images a class (mean over seeds), C chosen on a held-out "
        "part of train (the CLIP paper's protocol); beside it, the same backbone's zero-shot top-1 on the same test "
        "set. `shots.png` draws accuracy against shots with the zero-shot line.\n\n" + "\n".join(lines) + "\n"
    )
    return md, cells


def _cell(r: dict, key: str, err: str) -> dict:
    return {"accuracy": r[key], "stderr": r[err], "n_items": r["n_items"]}
