"""dcsm-cache: extract per-token CLIP features once, then train and evaluate DCSM scorers from the cache.

import dcsm_cache
print(dcsm_cache.__version__)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcsm-cache")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
