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
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._compat import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME  # noqa: E402  (after the torchvision guard)
from ..errors import ConfigError, DcsmCacheError, DeviceError, InputNotFoundError, UnknownNameError
from . import tinyclip  # noqa: F401  (registers the shapes-world model configs)
from .checkpoints import load_into, read_state_dict, sha256_file, to_open_clip_keys

__all__ = ["Backbone", "BackboneSpec", "PRECISIONS", "autocast", "load_backbone", "load_into", "parse_backbone",
           "read_state_dict", "resolve_device", "sha256_file", "to_open_clip_keys", "weights_cached"]

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

def _arch_preprocess(arch: str) -> dict | None:
    """Preprocessing for a local checkpoint: the one all of the arch's pretrained tags share, if any."""
    keys = ("mean", "std", "interpolation", "resize_mode")
    seen = {tuple((k, tuple(c[k]) if isinstance(c.get(k), (list, tuple)) else c.get(k)) for k in keys)
            for c in (open_clip.get_pretrained_cfg(arch, t) for t in open_clip.list_pretrained_tags_by_model(arch))}
    if len(seen) != 1:
        return None
    return {k: v for k, v in next(iter(seen)) if v is not None} or None


def load_backbone(spec: str | BackboneSpec, device: str = "auto", cache_dir: str | None = None) -> Backbone:
    """Build the open_clip model, its image preprocessing and tokenizer, on `device`, in eval mode."""
    bs = parse_backbone(spec) if isinstance(spec, str) else spec
    dev = resolve_device(device)
    sha, info = None, {}
    try:
        if bs.path:
            state = read_state_dict(bs.path)  # fail on a bad file before building a large model
            pp = _arch_preprocess(bs.arch)
            with _weights_loaded_next():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    bs.arch, pretrained=None, load_weights=False, pretrained_text=False,
                    **({"force_preprocess_cfg": pp} if pp else {}))
            info["kept_initial"] = load_into(model, to_open_clip_keys(model, state), bs.path)
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
        else:  # random weights, seeded so that every load of a bare arch gives the same model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(bs.arch, pretrained=None,
                                                                             pretrained_text=False)
        tokenizer = open_clip.get_tokenizer(bs.hub or bs.arch, cache_dir=cache_dir)
    except DcsmCacheError:
        raise
    except (RuntimeError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
        raise InputNotFoundError(f"backbone {bs.spec!r} could not be loaded: {first}") from err
    model = model.to(dev).eval().requires_grad_(False)
    return Backbone(bs, model, preprocess, tokenizer, dev, sha, info)
