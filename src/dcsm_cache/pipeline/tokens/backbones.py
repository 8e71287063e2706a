"""Loading a backbone by name: the open_clip model, its preprocessing and tokenizer, and what was loaded.

    bb = load_backbone("ViT-B-32-quickgelu@weights/negclip.pth", device="cpu")
    bb.model, bb.preprocess, bb.tokenizer, bb.identity_key

Local checkpoints are read with `weights_only=True` (`checkpoints.py`); registry weights come from
the Hugging Face cache (`hub.py`). Whatever open_clip raises becomes one line naming the backbone and
what to do. A backbone's identity is what was loaded (architecture, weights sha256 or tag,
activation, preprocessing), not how it was spelled: stores and scorer checkpoints compare it. `Backbone`,
what every loader returns, is `loaded.py`'s (re-exported here).
"""

from __future__ import annotations

import contextlib
import logging

import torch

from ..._openclip import open_clip
from ...errors import BackboneLoadError, DcsmCacheError, InputNotFoundError, MissingPackageError
from ..device import resolve_device
from .blip import is_blip, load_blip
from .checkpoints import load_into, read_checkpoint, sha256_file, to_open_clip_keys
from .loaded import Backbone, identity_key
from .hub import (
    cached_weights_sha256,
    hub_text_repos,
    needs_quick_gelu,
    not_cached,
    offline,
    text_files_hint,
    text_files_missing,
    text_files_not_cached,
    weights_cached,
)
from .names import BackboneSpec, parse_backbone

__all__ = ["Backbone", "activation", "identity_key", "load_backbone"]

log = logging.getLogger(__name__)


class _NoRandomInitWarning(logging.Filter):
    """open_clip warns 'initialized randomly' when it builds an arch whose weights we load next."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _weights_loaded_next():
    """Build a model whose every weight is loaded next: no random init (`torch.nn.init.*_` do nothing
    meanwhile: a ViT-L/14 builds in 0.7 s instead of 3.4 s here) and no 'initialized randomly' warning.
    Both loads that follow are strict (`load_into` for a file, open_clip's own for a registry tag or a
    hub model, told to require its weights), so no parameter keeps its uninitialised value."""
    root, quiet = logging.getLogger(), _NoRandomInitWarning()
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    root.addFilter(quiet)
    for n in names:
        setattr(torch.nn.init, n, _keep)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
        root.removeFilter(quiet)


def _keep(tensor, *args, **kwargs):
    return tensor


def _arch_preprocess(arch: str) -> dict:
    """Preprocessing for a local checkpoint, as open_clip's `image_*` overrides: the one all of the
    arch's pretrained tags share, if they agree (OpenAI's mean and std for ViT-B-32, say)."""
    keys = ("mean", "std", "interpolation", "resize_mode")
    seen = {
        tuple((k, tuple(c[k]) if isinstance(c.get(k), (list, tuple)) else c.get(k)) for k in keys)
        for c in (open_clip.get_pretrained_cfg(arch, t) for t in open_clip.list_pretrained_tags_by_model(arch))
    }
    if len(seen) != 1:
        return {}
    return {f"image_{k}": v for k, v in next(iter(seen)) if v is not None}


def activation(model: torch.nn.Module) -> str:
    """The towers' MLP activation: "quick_gelu" where any block uses QuickGELU, else "gelu", else the kinds."""
    kinds = {type(m).__name__ for m in model.modules()}
    if "QuickGELU" in kinds:
        return "quick_gelu"
    if "GELU" in kinds or "GELUTanh" in kinds:
        return "gelu"
    return ",".join(sorted(k for k in kinds if k in ("SiLU", "ReLU", "GELUTanh", "SwiGLU"))) or "unknown"


def _warn_activation(bs: BackboneSpec, ckpt, act: str) -> str | None:
    """A checkpoint shipped the way fine-tunes of OpenAI CLIP are, loaded into a GELU architecture."""
    twin = f"{bs.arch}-quickgelu"
    if not ckpt.openai_lineage or act != "gelu" or twin not in open_clip.list_models():
        return None
    msg = (
        f"backbone {bs.spec!r}: {bs.path} is stored the way fine-tunes of OpenAI CLIP ship ({ckpt.style}), "
        f"which were trained with QuickGELU, but {bs.arch} uses GELU and gives silently wrong features: "
        f"name it {twin}@{bs.path} (ignore this if it was trained with GELU)"
    )
    log.warning(msg)
    return msg


_NEEDS_PACKAGE = {"transformers": "hf", "sentencepiece": "hf", "safetensors": "hf", "timm": "hf"}


def _load_error(bs: BackboneSpec, err: BaseException, cache_dir: str | None = None) -> DcsmCacheError:
    """Whatever open_clip (or a package under it) raised, as one line naming the backbone and what to do."""
    if isinstance(err, ImportError):
        pkg = (getattr(err, "name", None) or str(err)).split(".")[0]
        extra = _NEEDS_PACKAGE.get(pkg)
        how = f"pip install 'dcsm-cache[{extra}]'" if extra else f"pip install {pkg}"
        return MissingPackageError(
            f"backbone {bs.spec!r} needs the Python package {pkg!r}, which is not installed: {how}"
        )
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Error(s) in loading state_dict"):  # torch's strict load: the keys follow
        lines = [" ".join(lines)]
    first = (lines or [""])[0][:240] or type(err).__name__
    where = f" from {bs.path}" if bs.path else ""
    if offline() and isinstance(err, OSError | ValueError) and ("offline" in first.lower() or "cache" in first.lower()):
        repos = hub_text_repos(bs, cache_dir)
        how = text_files_hint(repos, cache_dir) if repos else "copy the Hugging Face cache (HF_HOME)"
        return InputNotFoundError(
            f"backbone {bs.spec!r}: a file it needs is not cached and HF_HUB_OFFLINE is set "
            f"({first}): run once with network access, or {how}"
        )
    return BackboneLoadError(
        f"backbone {bs.spec!r} could not be loaded{where} ({type(err).__name__}: {first}): "
        f"check the name with `open_clip.list_models()` and the weights file, or report it"
    )


def load_backbone(spec: str | BackboneSpec, device: str = "auto", cache_dir: str | None = None) -> Backbone:
    """Build the open_clip model, its image preprocessing and tokenizer, on `device`, in eval mode."""
    bs = parse_backbone(spec) if isinstance(spec, str) else spec
    dev = resolve_device(device)
    if is_blip(bs, cache_dir):  # Hugging Face BLIP, wrapped in open_clip's shape
        return load_blip(bs, dev, cache_dir)
    if offline():  # what a build would fetch from the hub, before building a large model
        if (bs.hub or bs.tag) and not bs.path and not weights_cached(bs, cache_dir):
            raise not_cached(bs)
        missing = text_files_missing(bs, cache_dir)
        if missing:
            raise text_files_not_cached(bs, missing, cache_dir)
    sha, info = None, {}
    try:
        if bs.path:
            ckpt = read_checkpoint(bs.path)  # fail on a bad file before building a large model
            with _weights_loaded_next():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    bs.arch, pretrained=None, load_weights=False, pretrained_text=False, **_arch_preprocess(bs.arch)
                )
            info["kept_initial"] = load_into(model, to_open_clip_keys(model, ckpt.state), bs.path)
            info["checkpoint_style"] = ckpt.style
            warning = _warn_activation(bs, ckpt, activation(model))
            if warning:
                info["activation_warning"] = warning
            sha = sha256_file(bs.path)
        elif bs.hub or bs.tag:
            kwargs = {}
            if needs_quick_gelu(bs):
                kwargs["force_quick_gelu"] = True  # as open_clip's OpenAI loader used to
                info["quick_gelu"] = "forced: the pretrained tag was trained with QuickGELU"
            with _weights_loaded_next():  # open_clip loads the checkpoint strictly, and must find one
                model, _, preprocess = open_clip.create_model_and_transforms(
                    bs.hub or bs.arch, pretrained=bs.tag, cache_dir=cache_dir, require_pretrained=True, **kwargs
                )
            sha = cached_weights_sha256(bs, cache_dir)
        else:  # random weights, seeded so that every load of a bare arch gives the same model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    bs.arch, pretrained=None, pretrained_text=False
                )
        tokenizer = open_clip.get_tokenizer(bs.hub or bs.arch, cache_dir=cache_dir)
    except DcsmCacheError:
        raise
    except Exception as err:  # noqa: BLE001  (a library error never reaches the user as a traceback)
        raise _load_error(bs, err, cache_dir) from err
    model = model.to(dev).eval().requires_grad_(False)
    info["activation"] = activation(model)
    return Backbone(bs, model, preprocess, tokenizer, dev, sha, info)
