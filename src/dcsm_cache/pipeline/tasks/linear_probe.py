"""Linear probes on frozen image features, the CLIP paper's second protocol, read from two stores, never the backbone.

    result = linear_probe("stores/ViT-B-16.openai/cifar10_train.zarr", "stores/ViT-B-16.openai/cifar10.zarr",
                          LinearProbeConfig(shots=4, seeds=(0, 1, 2)))
    result["accuracy"], result["stderr"], result["C"]      # top-1 on the test store, its standard error, the C used

Both stores hold a classification dataset as a prompt table (`benchmarks/imagefolder.py`,
`benchmarks/shapes_zeroshot.py`): one item per image, `correct` its class. A class is known by its
first prompt (caption row c, the first template filled with class c), so the two datasets must use
the same templates; a test image of a class the train store has no image of is an error naming it.
Features are `image/pooled` or, with `features="tokens"`, the mean of the patch tokens (a leading
CLS token left out), each L2-normalised. The probe is the CLIP paper's (Radford et al. 2021, App. A.3):
scikit-learn's `LogisticRegression` (L-BFGS, at most `max_iter` iterations) with C chosen on a
held-out part of train by its parametric binary search (`choose_c`), then refit on all of train at
that C and scored on the test store. With `shots=K`, each seed draws K images of every class
(fewer where a class has fewer) and the probe runs on those alone; results are averaged over the seeds and
each seed's run is recorded under `runs`. Every fit runs on `threads` BLAS threads and draws from its
seed alone, so a result repeats to the bit on one installation.
Reported: top-1 accuracy and mean per-class accuracy with their standard errors (the test set's
binomial error and, with several seeds, the seeds' spread, combined), top-1 per domain tag
(`subsets`), C, the class count, both stores' fingerprints and `code`, the fingerprint of the code that
computes it (the CLI passes the workflow stage's).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ...config import at_least, config_hash, one_of, require
from ...errors import BadInputError, StoreMismatchError
from ..reading import normalise, open_store
from .zeroshot import prompt_table

__all__ = ["FEATURES", "LinearProbeConfig", "ProbeSet", "choose_c", "fit_probe", "linear_probe", "read_probe_set"]

FEATURES = ("pooled", "tokens")
_BLOCK_BYTES = 64 * 2**20  # image rows read at once: about this many bytes of tokens


@dataclass(frozen=True)
class LinearProbeConfig:
    features: str = "pooled"  # pooled: image/pooled; tokens: the mean of the patch tokens
    shots: int | None = None  # K images a class drawn from train per seed; None: all of train
    seeds: tuple[int, ...] = (0,)  # one probe per seed (the draw of shots, the held-out part), averaged
    val_fraction: float = 0.2  # of each class's train images, held out to choose C (at least one where it has 2)
    c_min: float = 1e-6  # the range C is searched in, log-spaced
    c_max: float = 1e6
    steps_per_decade: int = 8  # the search's final resolution
    default_c: float = 1.0  # where no image can be held out (one a class): scikit-learn's default
    max_iter: int = 1000
    tol: float = 1e-4
    threads: int = 1  # BLAS threads of every fit: a fixed count, so that the numbers repeat

    def __post_init__(self):
        one_of("linear_probe", "features", self.features, FEATURES)
        require(self.shots is None or self.shots >= 1, "linear_probe", f"shots={self.shots} must be at least 1")
        require(bool(self.seeds), "linear_probe", "seeds: give at least one seed")
        require(len(set(self.seeds)) == len(self.seeds), "linear_probe", f"seeds={self.seeds} repeat a seed")
        require(0 < self.val_fraction < 0.5, "linear_probe", f"val_fraction={self.val_fraction} must be in (0, 0.5)")
        require(
            0 < self.c_min < self.c_max, "linear_probe", f"c_min={self.c_min}, c_max={self.c_max}: need 0 < min < max"
        )
        require(self.default_c > 0 and self.tol > 0, "linear_probe", "default_c and tol must be positive")
        at_least("linear_probe", steps_per_decade=(self.steps_per_decade, 1), max_iter=(self.max_iter, 1))
        at_least("linear_probe", threads=(self.threads, 1))


@dataclass
class ProbeSet:
    """One store's classification items: features [N, D] float32 (`fit_probe` L2-normalises them), class, domain."""

    path: str
    dataset: str
    classes: tuple[str, ...]  # each class's first prompt
    x: np.ndarray
    y: np.ndarray
    domains: np.ndarray
    n_skipped: int
    attrs: dict


def _rows_at_once(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


def _first_patch(n_tokens: int) -> int:
    """1 where the tokens are a CLS token and a square patch grid, else 0 (every token is a patch)."""
    side = math.isqrt(max(n_tokens - 1, 0))
    return int(math.isqrt(n_tokens) ** 2 != n_tokens and side > 1 and side * side == n_tokens - 1)


def read_probe_set(store: str | os.PathLike, features: str = "pooled", items: str | None = None) -> ProbeSet:
    """The store's valid images as probe features (see the module doc), its labels and its classes."""
    one_of("linear_probe", "features", features, FEATURES)
    opened = open_store(store, items)
    fs, ds = opened.store, opened.dataset
    n_classes, _ = prompt_table(ds)
    valid = fs.image_valid[:]
    n = len(ds.items)
    image = np.fromiter((it.image for it in ds.items), dtype=np.int64, count=n)
    keep = valid[image]
    if not keep.any():
        raise BadInputError(f"{store}: none of the {n} images could be read at extraction")
    rows = image[keep]
    labels = np.fromiter((it.correct for it in ds.items), dtype=np.int64, count=n)[keep]
    domains = np.array([it.tags.get("domain", "") if it.tags else "" for it in ds.items])[keep]
    name = "image/pooled" if features == "pooled" else "image/tokens"
    arr = fs[name]
    skip = _first_patch(arr.shape[1]) if features == "tokens" else 0  # a leading CLS token is not a patch
    step = _rows_at_once(int(np.prod(arr.shape[1:])) * arr.dtype.itemsize)
    x = np.empty((len(rows), arr.shape[-1]), dtype=np.float32)
    for a in range(0, len(rows), step):  # the store's own reader: whole chunk files mapped
        block = fs.read_rows(name, rows[a : a + step])
        x[a : a + len(block)] = block if features == "pooled" else normalise(block[:, skip:]).mean(axis=1)
    return ProbeSet(
        str(store),
        ds.name,
        tuple(ds.captions[:n_classes]),
        x,
        labels,
        domains,
        n - len(rows),
        fs.attrs,
    )


def _check_pair(train: ProbeSet, test: ProbeSet, features: str) -> np.ndarray:
    """Test labels in the train set's class indices; stores of two backbones, one store twice or a test class
    without train images is an error."""
    a, b = train.attrs, test.attrs
    if a.get("backbone_id") != b.get("backbone_id") or (features == "tokens" and a.get("tokens") != b.get("tokens")):
        raise StoreMismatchError(
            f"{train.path} and {test.path} were extracted with different backbones ({a.get('backbone')!r}, id "
            f"{a.get('backbone_id')}; {b.get('backbone')!r}, id {b.get('backbone_id')}): a linear probe is fit and "
            f"scored on one backbone's features, so pass two stores of one backbone"
        )
    if a.get("fingerprint") == b.get("fingerprint") and train.dataset == test.dataset:
        raise BadInputError(
            f"{train.path} and {test.path} hold the same dataset ({train.dataset}): a probe scored on its own "
            f"training images says nothing; pass the test split's store as --test"
        )
    if train.classes == test.classes:
        to_train = np.arange(len(test.classes))
    elif len(set(train.classes)) != len(train.classes) or len(set(test.classes)) != len(test.classes):
        raise BadInputError(
            f"{train.path} and {test.path} list other classes, and two classes of one share a first prompt: "
            f"their classes cannot be matched; give every class its own name"
        )
    else:
        index = {c: i for i, c in enumerate(train.classes)}
        to_train = np.array([index.get(c, -1) for c in test.classes], dtype=np.int64)
    have = np.zeros(len(train.classes), dtype=bool)
    have[np.unique(train.y)] = True
    lacking = {
        test.classes[c]: int((test.y == c).sum()) for c in np.unique(test.y) if to_train[c] < 0 or not have[to_train[c]]
    }
    if lacking:
        names = ", ".join(f"{n!r} ({k} images)" for n, k in list(lacking.items())[:5])
        more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
        raise BadInputError(
            f"test store {test.path} ({test.dataset}) has images of class {names}{more}, of which train store "
            f"{train.path} ({train.dataset}) has none: probe with a train split holding every test class "
            f"(classes are matched by their first prompt, so both datasets need the same templates)"
        )
    return to_train[test.y]


def _held_out(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of the rows held out to choose C: per class max(1, round(n * fraction)) when it has 2 or more."""
    out = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 2:
            out[rng.choice(idx, max(1, round(len(idx) * fraction)), replace=False)] = True
    return out


def _draw(y: np.ndarray, shots: int | None, rng: np.random.Generator) -> np.ndarray:
    """Rows of `shots` images a class (all of a class with fewer), in row order; all rows for None."""
    if shots is None:
        return np.arange(len(y))
    picked = [rng.choice(np.flatnonzero(y == c), min(shots, int((y == c).sum())), replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def _fit(x: np.ndarray, y: np.ndarray, c: float, cfg: LinearProbeConfig):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # at max_iter: what a fixed budget gives, as in the paper
        return LogisticRegression(C=c, max_iter=cfg.max_iter, tol=cfg.tol).fit(x, y)


def choose_c(x_fit, y_fit, x_val, y_val, cfg: LinearProbeConfig = LinearProbeConfig()) -> tuple[float, list]:
    """C by the CLIP paper's parametric binary search, on log10(C): seven points evenly across [c_min, c_max]
    (every two decades for the default 1e-6..1e6), then, around the best so far, the two points half the last
    spacing away, until the spacing is 1/steps_per_decade (8 a decade: the paper's 96 steps over 12 decades).
    Best: the highest held-out accuracy, ties going to the smaller C. Returns C and [(log10 C, accuracy), ...]."""
    lo, hi = math.log10(cfg.c_min), math.log10(cfg.c_max)
    scores: dict[float, float] = {}

    def score(e: float) -> None:
        e = round(e, 9)
        if lo - 1e-9 <= e <= hi + 1e-9 and e not in scores:
            scores[e] = float((_fit(x_fit, y_fit, 10.0**e, cfg).predict(x_val) == y_val).mean())

    def best() -> float:
        return max(scores, key=lambda e: (scores[e], -e))

    step = (hi - lo) / 6
    for e in np.linspace(lo, hi, 7):
        score(float(e))
    while step > 1 / cfg.steps_per_decade + 1e-9:
        step /= 2
        b = best()
        score(b - step)
        score(b + step)
    return 10.0 ** best(), sorted(scores.items())


def _accuracies(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Top-1, mean per-class accuracy over the classes present, and the latter's standard error."""
    right = pred == y
    per = [(right[y == c].mean(), int((y == c).sum())) for c in np.unique(y)]
    mean = float(np.mean([p for p, _ in per]))
    se = math.sqrt(sum(p * (1 - p) / n for p, n in per)) / len(per)
    return float(right.mean()), mean, se


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cfg: LinearProbeConfig = LinearProbeConfig(),
    domains: np.ndarray | None = None,
) -> dict:
    """The probe on arrays (rows L2-normalised here): per seed, draw, choose C, refit, score; then the mean."""
    from threadpoolctl import threadpool_limits

    x_train, x_test = normalise(x_train), normalise(x_test)
    if len(np.unique(y_train)) < 2:
        raise BadInputError(f"the train split has {len(np.unique(y_train))} class: a probe needs two or more")
    runs = []
    with threadpool_limits(limits=cfg.threads):
        for seed in cfg.seeds:
            rng = np.random.default_rng(seed)
            rows = _draw(y_train, cfg.shots, rng)
            x, y = x_train[rows], y_train[rows]
            val = _held_out(y, cfg.val_fraction, rng)
            if val.any():
                c, search = choose_c(x[~val], y[~val], x[val], y[val], cfg)
            else:  # one image a class: nothing to hold out
                c, search = cfg.default_c, []
            pred = _fit(x, y, c, cfg).predict(x_test)
            top1, mean_pc, mean_pc_se = _accuracies(pred, y_test)
            runs.append(
                {
                    "seed": seed,
                    "C": c,
                    "n_train": len(rows),
                    "n_val": int(val.sum()),
                    "search": [[e, a] for e, a in search],
                    "accuracy": top1,
                    "mean_per_class": mean_pc,
                    "mean_per_class_stderr": mean_pc_se,
                    "predictions": pred,
                }
            )
    return _summary(runs, y_test, domains, len(np.unique(y_train)))


def _spread(values: list[float]) -> float:
    """The variance of the mean over seeds (0 for one seed)."""
    return float(np.var(values, ddof=1)) / len(values) if len(values) > 1 else 0.0


def _summary(runs: list[dict], y: np.ndarray, domains: np.ndarray | None, n_classes: int) -> dict:
    n, chance = len(y), 1 / n_classes
    top1 = [r["accuracy"] for r in runs]
    mean_pc = [r["mean_per_class"] for r in runs]
    acc = float(np.mean(top1))
    pc = float(np.mean(mean_pc))
    subsets = {}
    if domains is not None:
        for d in sorted(set(domains.tolist()) - {""}):
            on = domains == d
            sub = float(np.mean([(r["predictions"][on] == y[on]).mean() for r in runs]))
            subsets[d] = {"accuracy": sub, "top1": sub, "chance": chance, "n_items": int(on.sum())}
    return {
        "metric": "top1",
        "accuracy": acc,
        "top1": acc,
        "stderr": math.sqrt(acc * (1 - acc) / n + _spread(top1)),
        "mean_per_class": pc,
        "mean_per_class_stderr": math.sqrt(
            float(np.mean([r["mean_per_class_stderr"] ** 2 for r in runs])) + _spread(mean_pc)
        ),
        "chance": chance,
        "n_items": n,
        "n_classes": n_classes,
        "C": float(np.median([r["C"] for r in runs])),
        "n_train": int(round(np.mean([r["n_train"] for r in runs]))),
        "subsets": subsets,
        "runs": [{k: v for k, v in r.items() if k != "predictions"} for r in runs],
    }


def linear_probe(
    train_store: str | os.PathLike,
    test_store: str | os.PathLike,
    cfg: LinearProbeConfig = LinearProbeConfig(),
    train_items: str | None = None,
    test_items: str | None = None,
    code: str | None = None,
) -> dict:
    """A linear probe fit on `train_store`'s images and scored on `test_store`'s (see the module doc)."""
    train = read_probe_set(train_store, cfg.features, train_items)
    test = read_probe_set(test_store, cfg.features, test_items)
    y_test = _check_pair(train, test, cfg.features)
    result = fit_probe(train.x, train.y, test.x, y_test, cfg, test.domains)
    return {
        "dataset": test.dataset,
        "train_dataset": train.dataset,
        "backbone": test.attrs["backbone"],
        "backbone_id": test.attrs.get("backbone_id"),
        "scorer": "linear-probe" if cfg.features == "pooled" else f"linear-probe-{cfg.features}",
        "task": "linear_probe",
        "features": cfg.features,
        "shots": cfg.shots,
        "seeds": list(cfg.seeds),
        **result,
        "n_skipped": test.n_skipped,
        "stores": {
            role: {"path": s.path, "dataset": s.dataset, "fingerprint": s.attrs["fingerprint"], "n_images": len(s.y)}
            for role, s in (("train", train), ("test", test))
        },
        "store_fingerprint": test.attrs["fingerprint"],
        "train_store_fingerprint": train.attrs["fingerprint"],
        "config_hash": config_hash(asdict(cfg) | {"task": "linear_probe"}),
        "code": code,
    }
