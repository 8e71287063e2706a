"""Evaluation tasks: what reads stores and writes results.

    write_result(evaluate("stores/shapes-clip/shapes_spatial.zarr", "cosine"), "results/.../cosine.json")

choice.py (benchmarks of K candidate captions, every registered scorer), scoring.py (the scorers that
read only the cache), itm.py (BLIP's matching head), zeroshot.py (classification
with prompt ensembles), retrieval.py (recall@k both ways), linear_probe.py (logistic regression on
frozen image features, the CLIP paper's second protocol), grounding.py (do word columns land on
their objects?), probe.py (do the image tokens say what each object is?),
report.py (results -> tables), results.py (the one result writer).
"""

from .choice import EvalConfig, evaluate, is_correct
from .grounding import grounding
from .linear_probe import LinearProbeConfig, linear_probe
from .probe import probe
from .report import load_results, report
from .results import write_result
from .retrieval import RetrievalConfig, retrieval
from .zeroshot import ZeroShotConfig, zeroshot

__all__ = [
    "EvalConfig",
    "LinearProbeConfig",
    "RetrievalConfig",
    "ZeroShotConfig",
    "evaluate",
    "grounding",
    "is_correct",
    "linear_probe",
    "load_results",
    "probe",
    "report",
    "retrieval",
    "write_result",
    "zeroshot",
]
