"""open_clip, imported behind the one torchvision guard and without transformers: import open_clip through here.

    from dcsm_cache._openclip import open_clip

On a CPU-only machine the registry's torchvision wheel is built for CUDA torch. Its compiled
operators fail to load beside torch+cpu, and `import torchvision` then dies with
"operator torchvision::nms does not exist" while registering fake kernels for `nms`/`qnms`.
open_clip only needs torchvision's pure-Python transforms, so when (and only when) that exact
failure happens we declare the two operator schemas with `torch.library` and import again.
Nothing here runs on a machine whose torchvision matches its torch.

open_clip imports transformers (about a second) for two things: its Hugging Face text tower
(`hf_model.HFTextEncoder`, the RoBERTa, XLM-R and NLLB towers) and caption generation, which
dcsm-cache never calls. So open_clip is imported with transformers held back, and transformers is
imported, and handed to `hf_model`, the first time a Hugging Face text tower is built. Tokenizers
from the hub import it themselves, as they always did.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
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


class _HoldBack(importlib.abc.MetaPathFinder):
    """`import transformers` fails while open_clip is imported (open_clip falls back as without it)."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "transformers":
            raise ModuleNotFoundError(f"No module named {name!r} (held back while open_clip is imported)")
        return None


def _import_open_clip():
    if "transformers" in sys.modules or importlib.util.find_spec("transformers") is None:
        import open_clip

        return open_clip
    hold = _HoldBack()
    sys.meta_path.insert(0, hold)
    try:
        import open_clip
    finally:
        sys.meta_path.remove(hold)
    encoder = open_clip.hf_model.HFTextEncoder
    encoder.__init__ = _with_transformers(encoder.__init__)
    return open_clip


def _with_transformers(init):
    @functools.wraps(init)
    def init_with_transformers(self, *args, **kwargs):
        hand_transformers_to_open_clip()
        return init(self, *args, **kwargs)

    return init_with_transformers


def hand_transformers_to_open_clip() -> None:
    """Import transformers and give `open_clip.hf_model` the names its own import would have bound."""
    hf = open_clip.hf_model
    if hf.transformers is not None:
        return
    import transformers
    from transformers import modeling_outputs as outputs

    hf.transformers = transformers
    for name in ("AutoModel", "AutoTokenizer", "AutoConfig", "PretrainedConfig"):
        setattr(hf, name, getattr(transformers, name))
    for name in ("BaseModelOutput", "BaseModelOutputWithPooling", "BaseModelOutputWithPoolingAndCrossAttentions"):
        setattr(hf, name, getattr(outputs, name))


_import_torchvision()
open_clip = _import_open_clip()

__all__ = ["hand_transformers_to_open_clip", "open_clip"]
