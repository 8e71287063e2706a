"""Representation analysis from the cache, out of core on dask: linear CKA, UMAP and store statistics.

    names, m = cka_stores(["stores/a/domains_eval.zarr", "stores/b/domains_eval.zarr"], AnalysisConfig())

arrays.py (a store's arrays as dask, in its chunks or within a byte budget; the scheduler and
progress bar), cka.py (linear CKA across stores or across a store's domains), embed.py (UMAP),
stats.py (norms, NaN/inf counts, DCSM values), plots.py (matrix CSV and heatmap).
"""

from .arrays import AnalysisConfig, StoreView, compute
from .cka import cka_domains, cka_numpy, cka_stores

__all__ = ["AnalysisConfig", "StoreView", "cka_domains", "cka_numpy", "cka_stores", "compute"]
