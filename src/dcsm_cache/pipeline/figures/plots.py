"""The report's figures: accuracy per family per scorer, the DCSM's gain, and linear probes against shots.

    paths = write_figures(choice_table(results), "results/default", probe_series(probes, zeroshots))
    # [accuracy.png, gain.png, shots.png]

`accuracy.png`: per backbone (one panel each), the accuracy of every scorer on each family of
benchmarks (all its benchmarks' items pooled), with binomial standard errors as error bars and each
family's chance level as a dashed line. `gain.png`: per benchmark split, the DCSM's accuracy minus the
cosine's, in points, for each backbone and trained scorer that has both (error bars: the two standard
errors combined). `shots.png`, the CLIP paper's Figure 6 form: per test set and backbone, a linear
probe's top-1 against the labelled training images a class (1, 2, 4, ... on a log scale, then `all`,
the full train split), standard errors as error bars, and the same backbone's zero-shot top-1 on the
same test set as a dashed line of the same colour (chance dotted grey). All are sized for a paper
column (3.4 in wide) at 200 dpi, so they are readable on a screen too (680 px wide).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...atomic import atomic_path
from ..scorers import SCORERS
from ..tasks.linear_probe_table import Series
from ..tasks.results_table import OWN_METRICS, ChoiceTable

__all__ = [
    "COLUMN_WIDTH_IN",
    "DPI",
    "GAIN_SCORERS",
    "accuracy_figure",
    "family_accuracy",
    "gain_figure",
    "shots_figure",
    "write_figures",
]

COLUMN_WIDTH_IN = 3.4
DPI = 200
BASELINE = "cosine"
GAIN_SCORERS = ("dcsm", "dcsm-paper")  # scorers whose gain over the cosine is plotted, and every training recipe's
_OWN = {name for name, _ in OWN_METRICS.values()}  # extra sub-columns re-scoring the same items: not pooled


def scorer_colour(scorer: str):
    """One colour per scorer in every figure: tab10 in the scorer registry's order (cosine blue, maxsim orange,
    dcsm green, dcsm-paper red); scorers not registered take the colours after those."""
    colours, order = plt.get_cmap("tab10").colors, list(SCORERS)
    i = order.index(scorer) if scorer in order else len(order) + sum(map(ord, scorer)) % (10 - len(order))
    return colours[i % len(colours)]


def family_accuracy(table: ChoiceTable) -> dict[tuple[str, str], dict[str, dict]]:
    """(backbone, scorer) -> family -> pooled accuracy, standard error, chance and item count."""
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for key in table.rows:
        for family, cols in table.families():
            cells = [table.cells[key][c.id] for c in cols if c.split not in _OWN and c.id in table.cells[key]]
            n = sum(c["n_items"] for c in cells)
            if not n:
                continue
            acc = sum(c["accuracy"] * c["n_items"] for c in cells) / n
            out.setdefault(key, {})[family] = {
                "accuracy": acc,
                "stderr": math.sqrt(acc * (1 - acc) / n),
                "chance": sum(c["chance"] * c["n_items"] for c in cells) / n,
                "n_items": n,
            }
    return out


def accuracy_figure(table: ChoiceTable, out: str | os.PathLike) -> Path | None:
    fam = family_accuracy(table)
    backbones = sorted({b for b, _ in fam})
    if not backbones:
        return None
    scorers = list(dict.fromkeys(s for _, s in table.rows if any(k[1] == s for k in fam)))  # the table's order
    families = [f for f, _ in table.families() if any(f in v for v in fam.values())]
    fig, axes = plt.subplots(
        len(backbones), 1, figsize=(COLUMN_WIDTH_IN, 2.3 * len(backbones) + 0.4), squeeze=False, sharex=True
    )
    width = 0.8 / len(scorers)
    for ax, backbone in zip(axes[:, 0], backbones):
        for j, scorer in enumerate(scorers):
            v = fam.get((backbone, scorer), {})
            x = np.arange(len(families)) - 0.4 + width * (j + 0.5)
            acc = [100 * v[f]["accuracy"] if f in v else np.nan for f in families]
            err = [100 * v[f]["stderr"] if f in v else 0 for f in families]
            ax.bar(x, acc, width, yerr=err, capsize=2, label=scorer, color=scorer_colour(scorer))
        for i, f in enumerate(families):
            chance = [v[f]["chance"] for (b, _), v in fam.items() if b == backbone and f in v]
            if chance:
                ax.hlines(100 * chance[0], i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)", fontsize=7)
        ax.set_title(backbone, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", linewidth=0.3)
    ax = axes[-1, 0]
    ax.set_xticks(range(len(families)), [f.replace(" ", "\n") for f in families])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="black", linestyle="dashed", linewidth=1))
    labels.append("chance")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, out)


def gain_figure(table: ChoiceTable, out: str | os.PathLike) -> Path | None:
    """DCSM minus cosine per benchmark split; None when no backbone has both."""
    pairs = [
        (b, s)
        for b, s in table.rows
        if (s in GAIN_SCORERS or s not in SCORERS)  # (a name outside the registry: a recipe's DCSM, eval --scorer-name)
        and (b, BASELINE) in table.cells
        and table.cells[(b, BASELINE)]
    ]
    cols = [
        c for c in table.columns if any(c.id in table.cells[p] and c.id in table.cells[(p[0], BASELINE)] for p in pairs)
    ]
    if not pairs or not cols:
        return None
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.9 + 0.22 * len(cols) * max(1, len(pairs) / 2)))
    height = 0.8 / len(pairs)
    hatches = ["", "//", "..", "xx", "\\\\", "++"]  # one per backbone; the colour is the scorer's
    backbones = list(dict.fromkeys(b for b, _ in pairs))
    y0 = np.arange(len(cols))
    for j, (b, s) in enumerate(pairs):
        gain, err = [], []
        for c in cols:
            a, base = table.cells[(b, s)].get(c.id), table.cells[(b, BASELINE)].get(c.id)
            ok = (
                a is not None
                and base is not None
                and not math.isnan(a["accuracy"])
                and not math.isnan(base["accuracy"])
            )
            gain.append(100 * (a["accuracy"] - base["accuracy"]) if ok else np.nan)
            err.append(100 * math.hypot(a["stderr"], base["stderr"]) if ok else 0)
        y = y0 - 0.4 + height * (j + 0.5)
        hatch = hatches[backbones.index(b) % len(hatches)]
        ax.barh(y, gain, height, xerr=err, capsize=2, color=scorer_colour(s), hatch=hatch, label=f"{b}: {s}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y0, [c.id for c in cols])
    ax.invert_yaxis()
    ax.set_xlabel(f"accuracy gain over {BASELINE} (points)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(axis="x", linewidth=0.3)
    fig.legend(loc="lower center", ncol=2, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(pairs) / 2), 1, 1))
    return _save(fig, out)


def shots_figure(series: list[Series], out: str | os.PathLike) -> Path | None:
    """Top-1 against shots per series, the zero-shot top-1 as a dashed line; None without probes."""
    if not series:
        return None
    ks = sorted({k for s in series for k, *_ in s.points if k is not None})
    x_all = math.log2(ks[-1]) + 1.5 if ks else 0.0
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.8))
    colours = plt.get_cmap("tab10").colors
    for i, s in enumerate(series):
        colour = colours[i % len(colours)]
        few = [(math.log2(k), 100 * a, 100 * e) for k, a, e in s.points if k is not None]
        if few:
            x, y, e = zip(*few)
            ax.errorbar(x, y, yerr=e, color=colour, marker="o", ms=3, lw=1, capsize=2, label=s.label)
        for k, a, e in s.points:
            if k is None:
                ax.errorbar([x_all], [100 * a], yerr=[100 * e], color=colour, marker="s", ms=4, capsize=2)
                if few:  # dotted: the whole train split is not one more step of the same scale
                    ax.plot([few[-1][0], x_all], [few[-1][1], 100 * a], color=colour, linestyle="dotted", lw=1)
                else:
                    ax.plot([], [], color=colour, marker="s", ms=4, label=s.label)
        if s.zeroshot is not None:
            ax.axhline(100 * s.zeroshot, color=colour, linestyle="dashed", linewidth=1)
    for chance in sorted({s.chance for s in series}):
        ax.axhline(100 * chance, color="grey", linestyle="dotted", linewidth=0.8)
    ax.set_xticks([*map(math.log2, ks), x_all], [*map(str, ks), "all"])
    ax.set_xlabel("labelled training images per class", fontsize=7)
    ax.set_ylabel("linear probe top-1 (%)", fontsize=7)
    ax.set_ylim(0, 100)
    ax.tick_params(labelsize=7)
    ax.grid(linewidth=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any(s.zeroshot is not None for s in series):
        handles.append(plt.Line2D([], [], color="black", linestyle="dashed", linewidth=1))
        labels.append("zero-shot (same colour)")
    handles.append(plt.Line2D([], [], color="grey", linestyle="dotted", linewidth=0.8))
    labels.append("chance")
    ncol = 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.045 * math.ceil(len(labels) / ncol), 1, 1))
    return _save(fig, out)


def _save(fig, out) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return out


def _empty(out, text: str) -> Path:
    """A figure that says why there is nothing to plot (the workflow expects every figure file)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 1.0))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True)
    ax.axis("off")
    return _save(fig, out)


def write_figures(table: ChoiceTable, folder: str | os.PathLike, probes: list[Series] = ()) -> list[Path]:
    """accuracy.png, gain.png and shots.png in `folder`; where the results lack what one plots, it says so instead."""
    folder = Path(folder)
    return [
        accuracy_figure(table, folder / "accuracy.png")
        or _empty(folder / "accuracy.png", "no choice-benchmark results to plot"),
        gain_figure(table, folder / "gain.png")
        or _empty(folder / "gain.png", f"no backbone has both {BASELINE} and DCSM results"),
        shots_figure(list(probes), folder / "shots.png") or _empty(folder / "shots.png", "no linear-probe results"),
    ]
