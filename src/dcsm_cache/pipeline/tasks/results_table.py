"""The choice benchmarks' results as a paper's table: families of benchmarks, splits as sub-columns, best marked.

    table = choice_table(read_results(paths))
    table.columns[0]          # Column(family='attribute binding', benchmark='shapes_binding', split='test', ...)
    table.cells[("shapes-clip", "dcsm")]["shapes_binding/test"]["accuracy"]

Rows are (backbone, scorer), the backbone named by the workflow's key (`schema.row_name`). Columns are
grouped by family (FAMILIES: attribute binding, spatial relations, negation; other benchmarks come
last), one per benchmark split (a result's subsets without `=`; `all` where it has none). Each cell
holds the accuracy, its binomial standard error, the item count and chance level, and where it came
from: the result file, its store fingerprint, config hash and code fingerprint. Where a benchmark's
own paper scores differently from the DCSM reference, OWN_METRICS adds that score as one more
sub-column beside the reference's (VG-Attribution: ARO's macro average over attribute pairs with
at least 25 items, beside the reference's micro accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..scorers import SCORERS
from .schema import row_name, stderr

__all__ = ["FAMILIES", "OWN_METRICS", "ChoiceTable", "Column", "benchmark_key", "choice_table", "family_of"]

# Benchmark registry keys (a dataset named KEY or KEY+paper...) by family, in the order tables show them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "attribute binding": (
        "shapes_binding",
        "clevr_bind_2obj_train",
        "clevr_bind_2obj_valid",
        "clevr_bind_2obj_gen",
        "ncd_subset1",
        "ncd_subset2",
        "vg_attr",
    ),
    "spatial relations": (
        "shapes_spatial",
        "whatsUp_A",
        "whatsUp_B",
        "coco_spatial1",
        "coco_spatial2",
        "vg_subset1",
        "vg_subset2",
    ),
    "negation": ("shapes_negation", "negbench_coco", "negbench_voc", "ccneg"),
}
OTHER = "other"
SPLIT_ORDER = {"test": 0, "heldout": 1}  # then the rest by name


def aro_macro(result: dict, min_items: int = 25) -> dict | None:
    """ARO's VG-Attribution score: the mean accuracy over attribute pairs (tag `attributes`) with >= min_items."""
    pairs = [v for k, v in result["subsets"].items() if k.startswith("attributes=") and v["n_items"] >= min_items]
    if not pairs:
        return None
    se = [stderr(v["accuracy"], v["n_items"]) for v in pairs]
    return {
        "accuracy": sum(v["accuracy"] for v in pairs) / len(pairs),
        "stderr": math.sqrt(sum(s * s for s in se)) / len(pairs),
        "n_items": sum(v["n_items"] for v in pairs),
        "chance": sum(v["chance"] for v in pairs) / len(pairs),
        "n_groups": len(pairs),
    }


# benchmark key -> (sub-column name, how its own paper scores it from the result)
OWN_METRICS: dict[str, tuple[str, Callable[[dict], dict | None]]] = {"vg_attr": ("ARO macro", aro_macro)}


def benchmark_key(dataset: str) -> str:
    """`whatsUp_A+paper` is scored as the registry key whatsUp_A."""
    return dataset.split("+", 1)[0]


def family_of(dataset: str) -> str:
    key = benchmark_key(dataset)
    return next((fam for fam, keys in FAMILIES.items() if key in keys), OTHER)


def _order(dataset: str) -> tuple:
    fam = family_of(dataset)
    fams = [*FAMILIES, OTHER]
    keys = FAMILIES.get(fam, ())
    key = benchmark_key(dataset)
    return (fams.index(fam), keys.index(key) if key in keys else len(keys), dataset)


@dataclass(frozen=True)
class Column:
    family: str
    benchmark: str  # the dataset's name, as results name it
    split: str  # a subset of the result, `all`, or an OWN_METRICS name
    chance: float

    @property
    def id(self) -> str:
        return f"{self.benchmark}/{self.split}"


@dataclass
class ChoiceTable:
    columns: list[Column]
    rows: list[tuple[str, str]]  # (backbone, scorer)
    cells: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)

    def best(self, col: str) -> float | None:
        """The highest accuracy in column `col` (rows tied at it are all marked best)."""
        accs = [c[col]["accuracy"] for c in self.cells.values() if col in c and not math.isnan(c[col]["accuracy"])]
        return max(accs) if accs else None

    def n_items(self, col: str) -> int:
        return max((c[col]["n_items"] for c in self.cells.values() if col in c), default=0)

    def families(self) -> list[tuple[str, list[Column]]]:
        out: dict[str, list[Column]] = {}
        for c in self.columns:
            out.setdefault(c.family, []).append(c)
        return list(out.items())


def _cell(v: dict, r: dict) -> dict:
    return {
        "accuracy": v["accuracy"],
        "stderr": v.get("stderr", stderr(v["accuracy"], v["n_items"])),
        "n_items": v["n_items"],
        "chance": v["chance"],
        "result": r.get("_path"),
        "store_fingerprint": r["store_fingerprint"],
        "config_hash": r["config_hash"],
        "code": r["code"],
    }


def _splits(r: dict) -> dict[str, dict]:
    names = sorted((k for k in r["subsets"] if "=" not in k), key=lambda k: (SPLIT_ORDER.get(k, len(SPLIT_ORDER)), k))
    subsets = {k: r["subsets"][k] for k in names}
    own = OWN_METRICS.get(benchmark_key(r["dataset"]))
    whole = "micro" if own else "all"  # beside another way of scoring, say which this one is
    splits = dict(subsets) if subsets else {whole: {k: r[k] for k in ("accuracy", "chance", "n_items")}}
    if own:
        splits[own[0]] = own[1](r) or {"accuracy": float("nan"), "chance": r["chance"], "n_items": 0}
    return splits


def choice_table(results: list[dict]) -> ChoiceTable:
    """The table of choice results (see the module doc); results of other tasks are ignored."""
    columns: dict[str, Column] = {}
    table = ChoiceTable([], [])
    for r in sorted(results, key=lambda r: _order(r["dataset"])):
        if r.get("task") is not None:
            continue
        row = (row_name(r), r["scorer"])
        for split, v in _splits(r).items():
            col = Column(family_of(r["dataset"]), r["dataset"], split, v["chance"])
            columns.setdefault(col.id, col)
            table.cells.setdefault(row, {})[col.id] = _cell(v, r)
    table.columns = list(columns.values())
    order = list(SCORERS)  # the registry's order: the cosine first, then what improves on it
    table.rows = sorted(table.cells, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else len(order), k[1]))
    return table
