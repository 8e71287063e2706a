"""open_clip, imported behind the one torchvision guard: import open_clip through here.

    from dcsm_cache._openclip import open_clip

On a CPU-only machine the registry's torchvision wheel is built for CUDA torch. Its compiled
operators fail to load beside torch+cpu, and `import torchvision` then dies with
"operator torchvision::nms does not exist" while registering fake kernels for `nms`/`qnms`.
open_clip only needs torchvision's pure-Python transforms, so when (and only when) that exact
failure happens we declare the two operator schemas with `torch.library` and import again.
Nothing here runs on a machine whose torchvision matches its torch.
"""

from __future__ import annotations

import sys

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # kept alive: dropping the Library object would unregister the schemas


def _import_torchvision():
    global _library
    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
    import torchvision  # noqa: F401


_import_torchvision()

import open_clip  # noqa: E402

__all__ = ["open_clip"]
