"""A loaded backbone: the model, its preprocessing and tokenizer, and its identity (what was loaded).

    bb = Backbone(spec, model, preprocess, tokenizer, device, weights_sha256=sha, info={"activation": "gelu"})
    bb.identity, bb.identity_key          # {'arch': ..., 'weights': 'sha256:...', ...}, '5f0c2a...'

What every loader returns (`backbones.load_backbone` for open_clip models, `blip.load_blip` for BLIP),
in a module of its own so that the loaders import it and not one another. A backbone's identity is what
was loaded (architecture, weights sha256 or tag, activation, preprocessing), not how it was spelled:
stores and scorer checkpoints record it and compare it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..._openclip import open_clip
from .names import BackboneSpec

__all__ = ["Backbone", "identity_key"]


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
        weights = (
            f"sha256:{self.weights_sha256}"
            if self.weights_sha256
            else f"tag:{bs.tag}"
            if bs.tag
            else bs.hub
            if bs.hub
            else "random:seed0"
        )
        pp = json.loads(json.dumps(open_clip.get_model_preprocess_cfg(self.model), default=str))
        return {
            "arch": bs.hub or bs.arch,
            "weights": weights,
            "activation": self.info.get("activation"),
            "preprocess": pp,
        }

    @property
    def identity_key(self) -> str:
        return identity_key(self.identity)


def identity_key(identity: dict) -> str:
    """A short hash of a backbone identity: equal keys, same features."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
