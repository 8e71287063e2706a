"""Backbones by name: open_clip is the registry, this module only parses names and loads weights.

    bb = load_backbone("shapes-clip@models/shapes-clip.pt", device="cpu")
    bb.model, bb.preprocess, bb.tokenizer

Three naming forms (design.md): `arch.tag` for open_clip's pretrained registry (`ViT-B-16.openai`,
works wherever the weights are cached), `arch@/path/to/weights` for a local .pt/.bin/.safetensors
file, and `hf-hub:org/name`. A bare `arch` builds the architecture with random weights (for tests
and for shape checks). Checkpoints are always read with `weights_only=True`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .._compat import open_clip
from ..errors import BadInputError, DeviceError, InputNotFoundError, UnknownNameError
from . import tinyclip  # noqa: F401  (registers the shapes-world model configs)


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
    """Split a backbone name into its form; an unknown architecture lists where to look."""
    if spec.startswith("hf-hub:"):
        return BackboneSpec(spec, arch=spec, hub=spec)
    if "@" in spec:
        arch, path = spec.split("@", 1)
        _check_arch(arch, spec)
        return BackboneSpec(spec, arch=arch, path=path)
    if spec in open_clip.list_models():
        return BackboneSpec(spec, arch=spec)
    arch, _, tag = spec.rpartition(".")
    _check_arch(arch or spec, spec)
    return BackboneSpec(spec, arch=arch, tag=tag)


def _check_arch(arch: str, spec: str) -> None:
    if arch not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if m.lower().startswith(arch.lower()[:5])][:8]
        raise UnknownNameError(f"unknown backbone {spec!r}: architecture {arch!r} is not an open_clip model "
                               f"(similar: {', '.join(close) or 'none'}; all: open_clip.list_models())")


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA where there is none is an error, never a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but this machine has no CUDA device: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a local file, unwrapped from the usual containers; never runs pickled code."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, not a checkpoint at all
        raise BadInputError(f"checkpoint {path} cannot be read safely ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:160]}): check the file or re-download it") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BadInputError(f"checkpoint {path} holds no state dict of tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_backbone(spec: str | BackboneSpec, device: str = "auto") -> Backbone:
    """Build the open_clip model, its image preprocessing and tokenizer, on `device`, in eval mode."""
    bs = parse_backbone(spec) if isinstance(spec, str) else spec
    dev = resolve_device(device)
    sha = None
    if bs.path:
        model, _, preprocess = open_clip.create_model_and_transforms(bs.arch, pretrained=None, load_weights=False)
        state = read_state_dict(bs.path)
        load_into(model, state, bs.path)
        sha = sha256_file(bs.path)
    elif bs.hub:
        model, _, preprocess = open_clip.create_model_and_transforms(bs.hub)
    else:
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(bs.arch, pretrained=bs.tag)
        except RuntimeError as err:
            raise UnknownNameError(f"backbone {bs.spec!r}: {str(err).splitlines()[0]}") from err
    model = model.to(dev).eval().requires_grad_(False)
    return Backbone(bs, model, preprocess, open_clip.get_tokenizer(bs.hub or bs.arch), dev, sha)


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load strictly; a checkpoint that does not fit the architecture says which keys are off."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        def show(keys): return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
        parts = [f"missing {show(missing)}" if missing else "", f"unexpected {show(unexpected)}" if unexpected else "",
                 f"wrong shape {show(wrong)}" if wrong else ""]
        raise BadInputError(f"checkpoint {where} does not fit this architecture: "
                            + "; ".join(p for p in parts if p))
    model.load_state_dict(state)
