"""How a dataset's name says its captions are the DCSM reference's: the suffix `items --paper-compat` gives it.

    ds.name + SUFFIX[True]       # 'whatsUp_A+paper'; SUFFIX[False]: '+paper-baseline', the baselines' captions

A leaf of the paper package, like padding.py: `captions.py` names the datasets it rewrites with it,
and the reference scorer (`scorer.py`) reads it to warn about captions that are not the reference's,
without importing the caption rewrites (which check benchmark keys against the whole registry).
"""

from __future__ import annotations

__all__ = ["SUFFIX"]

SUFFIX = {True: "+paper", False: "+paper-baseline"}  # by `dcsm`: the DCSM path's captions, or the baselines'
