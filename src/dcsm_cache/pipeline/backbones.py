"""Backbones by name: open_clip is the registry, this module only parses names and loads weights.

    bb = load_backbone("ViT-B-32-quickgelu@weights/negclip.pth", device="cpu")
    bb.model, bb.preprocess, bb.tokenizer

Naming forms (design.md):
  `arch.tag`     open_clip's pretrained registry (`ViT-B-16-quickgelu.openai`); loads wherever the
                 weights are cached; with HF_HUB_OFFLINE=1 missing weights are an error, never a download
  `arch@path`    a local .pt/.pth/.bin/.safetensors file: an open_clip state dict, an OpenAI-CLIP state
                 dict, either wrapped as {"state_dict": ...} (NegCLIP) or {"model": ...} (CoN-CLIP) and
                 possibly with `module.` prefixes, or an OpenAI TorchScript archive
  `hf-hub:org/name`  an open_clip model on the Hugging Face hub (config and weights)
  `arch`         the architecture with random weights (tests, shape checks)
Checkpoints are read with `weights_only=True`: a pickle that would run code is refused.
"""
from __future__ import annotations

import contextlib
import json
import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._compat import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME  # noqa: E402  (after the torchvision guard)
from ..errors import (BackboneLoadError, ConfigError, DcsmCacheError, DeviceError, InputNotFoundError,
                      MissingPackageError, UnknownNameError)
from . import tinyclip  # noqa: F401  (registers the shapes-world model configs)
from .checkpoints import load_into, read_checkpoint, read_state_dict, sha256_file, to_open_clip_keys

__all__ = ["Backbone", "BackboneSpec", "PRECISIONS", "activation", "autocast", "identity_key", "load_backbone",
           "load_into", "parse_backbone", "read_checkpoint", "read_state_dict", "resolve_device", "sha256_file",
           "to_open_clip_keys", "weights_cached"]

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class BackboneSpec:
    spec: str
    arch: str
    tag: str | None = None       # open_clip pretrained tag
    path: str | None = None      # local weights file
    hub: str | None = None       # hf-hub:org/name

    @property
    def weights(self) -> str:
        return self.hub or self.path or self.tag or "random"


@dataclass
class Backbone:
    spec: BackboneSpec
    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    device: torch.device
    weights_sha256: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> dict:
        """What was loaded, not how it was named: architecture, weights, activation and preprocessing.

        The same file under another path (or after the folder moved) is the same backbone; other
        weights under the same path are not. Stores and scorer checkpoints record it and compare it.
        """
        bs = self.spec
        weights = (f"sha256:{self.weights_sha256}" if self.weights_sha256 else f"tag:{bs.tag}" if bs.tag
                   else bs.hub if bs.hub else "random:seed0")
        pp = json.loads(json.dumps(open_clip.get_model_preprocess_cfg(self.model), default=str))
        return {"arch": bs.hub or bs.arch, "weights": weights, "activation": self.info.get("activation"),
                "preprocess": pp}

    @property
    def identity_key(self) -> str:
        return identity_key(self.identity)


def identity_key(identity: dict) -> str:
    """A short hash of a backbone identity: equal keys, same features."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def parse_backbone(spec: str) -> BackboneSpec:
    """Split a backbone name into its form; an unknown architecture or tag lists where to look."""
    spec = spec.strip()
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise UnknownNameError(f"backbone {spec!r}: write a hub model as hf-hub:org/name")
        return BackboneSpec(spec, arch=spec, hub=spec)
    if "@" in spec:
        arch, path = spec.split("@", 1)
        _check_arch(arch, spec)
        if not path:
            raise UnknownNameError(f"backbone {spec!r}: no weights file after '@' (write arch@/path/to/weights.pt)")
        return BackboneSpec(spec, arch=arch, path=os.path.expanduser(path))
    if spec in open_clip.list_models():
        return BackboneSpec(spec, arch=spec)
    arch, _, tag = spec.rpartition(".")
    _check_arch(arch or spec, spec)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not open_clip.is_pretrained_cfg(arch, tag):
        raise UnknownNameError(f"unknown backbone {spec!r}: {arch} has no pretrained tag {tag!r} "
                               f"(tags: {', '.join(tags) or 'none'}; or name a local file as {arch}@/path)")
    return BackboneSpec(spec, arch=arch, tag=tag)


def _check_arch(arch: str, spec: str) -> None:
    if arch not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if m.lower().startswith(arch.lower()[:5])][:8]
        raise UnknownNameError(f"unknown backbone {spec!r}: architecture {arch!r} is not an open_clip model "
                               f"(similar: {', '.join(close) or 'none'}; all: open_clip.list_models())")


# -- device and precision ---------------------------------------------------------------------------

def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA where there is none is an error, never a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise DeviceError(f"device {device!r} is not a device name: use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but this machine has no CUDA device: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context for mixed precision: nothing for fp32, torch.autocast for bf16/fp16.

    Weights stay fp32; the token adapters run their final projections in fp32 inside it (see
    `_adapters.project`). Meant for CUDA; on CPU it works too (slowly), which is what tests use.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


# -- the registry's cache ---------------------------------------------------------------------------

def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_cached(repo: str, filename: str, cache_dir: str | None) -> bool:
    """Whether the file, or the safetensors twin open_clip prefers, is in the hub cache."""
    from huggingface_hub import try_to_load_from_cache
    if filename == HF_WEIGHTS_NAME:
        twin = HF_SAFE_WEIGHTS_NAME
    elif filename.endswith((".bin", ".pth")):
        twin = filename[:-4] + ".safetensors"
    else:
        twin = None
    return any(isinstance(try_to_load_from_cache(repo, n, cache_dir=cache_dir), str) for n in (filename, twin) if n)


def weights_cached(bs: BackboneSpec, cache_dir: str | None = None) -> bool:
    """Whether `arch.tag` or `hf-hub:` weights are already on this machine (no network is used)."""
    if bs.hub:
        repo = bs.hub[len("hf-hub:"):]
        return _hub_cached(repo, "open_clip_config.json", cache_dir) and _hub_cached(repo, HF_WEIGHTS_NAME, cache_dir)
    cfg = open_clip.get_pretrained_cfg(bs.arch, bs.tag)
    if "file" in cfg:
        return os.path.isfile(cfg["file"])
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/name/' means the default file name
        if _hub_cached(repo, filename or HF_WEIGHTS_NAME, cache_dir):
            return True
    if cfg.get("url"):
        return os.path.isfile(os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"),
                                           os.path.basename(cfg["url"])))
    return False


def _cached_weights_sha256(bs: BackboneSpec, cache_dir: str | None) -> str | None:
    """sha256 of the registry weights file this machine loaded, where it can be found in the cache."""
    from huggingface_hub import try_to_load_from_cache
    if bs.hub:
        repo, names = bs.hub[len("hf-hub:"):], (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
    else:
        cfg = open_clip.get_pretrained_cfg(bs.arch, bs.tag)
        if cfg.get("file"):
            return sha256_file(cfg["file"]) if os.path.isfile(cfg["file"]) else None
        if not cfg.get("hf_hub"):
            return None
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        twin = HF_SAFE_WEIGHTS_NAME if filename == HF_WEIGHTS_NAME else filename.rsplit(".", 1)[0] + ".safetensors"
        names = (twin, filename)
    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return sha256_file(found)
    return None


def _needs_quick_gelu(bs: BackboneSpec) -> bool:
    """An `arch.tag` whose weights were trained with QuickGELU, on an arch built with GELU."""
    return bool(bs.tag and open_clip.get_pretrained_cfg(bs.arch, bs.tag).get("quick_gelu", False)
                and not (open_clip.get_model_config(bs.arch) or {}).get("quick_gelu", False))


def _not_cached(bs: BackboneSpec) -> InputNotFoundError:
    arch = "<arch>" if bs.hub else bs.arch
    if _needs_quick_gelu(bs) and f"{bs.arch}-quickgelu" in open_clip.list_models():
        arch = f"{bs.arch}-quickgelu"
    return InputNotFoundError(
        f"weights for {bs.spec} are not cached on this machine and HF_HUB_OFFLINE is set: run once with "
        f"network access (or copy the Hugging Face cache, HF_HOME), or download the file and name it "
        f"as {arch}@/path/to/weights")


class _NoRandomInitWarning(logging.Filter):
    """open_clip warns 'initialized randomly' when it builds an arch whose weights we load next."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _weights_loaded_next():
    root, quiet = logging.getLogger(), _NoRandomInitWarning()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


# -- loading ----------------------------------------------------------------------------------------

def _arch_preprocess(arch: str) -> dict:
    """Preprocessing for a local checkpoint, as open_clip's `image_*` overrides: the one all of the
    arch's pretrained tags share, if they agree (OpenAI's mean and std for ViT-B-32, say)."""
    keys = ("mean", "std", "interpolation", "resize_mode")
    seen = {tuple((k, tuple(c[k]) if isinstance(c.get(k), (list, tuple)) else c.get(k)) for k in keys)
            for c in (open_clip.get_pretrained_cfg(arch, t) for t in open_clip.list_pretrained_tags_by_model(arch))}
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
    msg = (f"backbone {bs.spec!r}: {bs.path} is stored the way fine-tunes of OpenAI CLIP ship ({ckpt.style}), "
           f"which were trained with QuickGELU, but {bs.arch} uses GELU and gives silently wrong features: "
           f"name it {twin}@{bs.path} (ignore this if it was trained with GELU)")
    log.warning(msg)
    return msg


_NEEDS_PACKAGE = {"transformers": "hf", "sentencepiece": "hf", "safetensors": "hf", "timm": "hf"}


def _load_error(bs: BackboneSpec, err: BaseException) -> DcsmCacheError:
    """Whatever open_clip (or a package under it) raised, as one line naming the backbone and what to do."""
    if isinstance(err, ImportError):
        pkg = (getattr(err, "name", None) or str(err)).split(".")[0]
        extra = _NEEDS_PACKAGE.get(pkg)
        how = f"pip install 'dcsm-cache[{extra}]'" if extra else f"pip install {pkg}"
        return MissingPackageError(f"backbone {bs.spec!r} needs the Python package {pkg!r}, which is not "
                                   f"installed: {how}")
    first = (str(err).strip().splitlines() or [""])[0][:240] or type(err).__name__
    where = f" from {bs.path}" if bs.path else ""
    if _offline() and isinstance(err, OSError | ValueError) and ("offline" in first.lower() or "cache" in first.lower()):
        return InputNotFoundError(f"backbone {bs.spec!r}: a file it needs is not cached and HF_HUB_OFFLINE is set "
                                  f"({first}): run once with network access, or copy the Hugging Face cache (HF_HOME)")
    return BackboneLoadError(f"backbone {bs.spec!r} could not be loaded{where} ({type(err).__name__}: {first}): "
                             f"check the name with `open_clip.list_models()` and the weights file, or report it")


def load_backbone(spec: str | BackboneSpec, device: str = "auto", cache_dir: str | None = None) -> Backbone:
    """Build the open_clip model, its image preprocessing and tokenizer, on `device`, in eval mode."""
    bs = parse_backbone(spec) if isinstance(spec, str) else spec
    dev = resolve_device(device)
    sha, info = None, {}
    try:
        if bs.path:
            ckpt = read_checkpoint(bs.path)  # fail on a bad file before building a large model
            with _weights_loaded_next():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    bs.arch, pretrained=None, load_weights=False, pretrained_text=False, **_arch_preprocess(bs.arch))
            info["kept_initial"] = load_into(model, to_open_clip_keys(model, ckpt.state), bs.path)
            info["checkpoint_style"] = ckpt.style
            warning = _warn_activation(bs, ckpt, activation(model))
            if warning:
                info["activation_warning"] = warning
            sha = sha256_file(bs.path)
        elif bs.hub or bs.tag:
            if _offline() and not weights_cached(bs, cache_dir):
                raise _not_cached(bs)
            kwargs = {}
            if _needs_quick_gelu(bs):
                kwargs["force_quick_gelu"] = True  # as open_clip's OpenAI loader used to
                info["quick_gelu"] = "forced: the pretrained tag was trained with QuickGELU"
            model, _, preprocess = open_clip.create_model_and_transforms(
                bs.hub or bs.arch, pretrained=bs.tag, cache_dir=cache_dir, **kwargs)
            sha = _cached_weights_sha256(bs, cache_dir)
        else:  # random weights, seeded so that every load of a bare arch gives the same model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(bs.arch, pretrained=None,
                                                                             pretrained_text=False)
        tokenizer = open_clip.get_tokenizer(bs.hub or bs.arch, cache_dir=cache_dir)
    except DcsmCacheError:
        raise
    except Exception as err:  # noqa: BLE001  (a library error never reaches the user as a traceback)
        raise _load_error(bs, err) from err
    model = model.to(dev).eval().requires_grad_(False)
    info["activation"] = activation(model)
    return Backbone(bs, model, preprocess, tokenizer, dev, sha, info)
