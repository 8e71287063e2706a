"""A labelled square matrix (CKA) written as CSV and drawn as a heatmap PNG.

write_matrix(["natural-only", "cg-high"], m, "cka.csv"); heatmap(["natural-only", "cg-high"], m, "cka.png", "CKA")
"""

from __future__ import annotations

import csv
import io
import os
from typing import Sequence

import numpy as np

from ...atomic import atomic_path, write_text

__all__ = ["heatmap", "read_matrix", "write_matrix"]


def write_matrix(names: Sequence[str], matrix: np.ndarray, out: str | os.PathLike) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["", *names])
    w.writerows([n, *(f"{v:.6f}" for v in row)] for n, row in zip(names, matrix))
    write_text(out, buf.getvalue())


def read_matrix(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


def heatmap(names: Sequence[str], matrix: np.ndarray, out: str | os.PathLike, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * k, 1.2 + 0.8 * k))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(k), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if matrix[i, j] > 0.6 else "white",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
