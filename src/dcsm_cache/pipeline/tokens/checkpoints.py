"""Reading local checkpoints safely, and fitting them to an open_clip architecture.

    ckpt = read_checkpoint("weights/negclip.pth")      # unwrapped, `module.` stripped, weights_only
    load_into(model, to_open_clip_keys(model, ckpt.state), "weights/negclip.pth")
    ckpt.style                                          # "open_clip-train": fine-tuned from OpenAI CLIP?

Formats: a plain state dict or one wrapped as {"state_dict": ...} (open_clip training checkpoints,
NegCLIP), {"model": ...} (CoN-CLIP) or {"model_state_dict": ...}; `module.` (DDP) and `_orig_mod.`
(torch.compile) prefixes; .safetensors. A TorchScript archive (OpenAI's original .pt) holds code and
is refused, saying what to use instead. A pickle that would run code,
a truncated file or a file of something else is a one-line BadInputError naming the path.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..._openclip import open_clip
from ...errors import BadInputError, InputNotFoundError

# keys of OpenAI's TorchScript state dicts and non-persistent buffers that are not weights
_NOT_WEIGHTS = (
    "input_resolution",
    "context_length",
    "vocab_size",
    "attn_mask",
    "text.transformer.embeddings.position_ids",
)
_UNUSED_FOR_EMBEDDINGS = ("logit_scale", "logit_bias")


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@dataclass(frozen=True)
class Checkpoint:
    """A state dict read from a file, and the container it came in.

    `style`: "openai" (the `clip` package's fp16 state dict, or CoN-CLIP's {"model": ...}),
    "open_clip-train" (an open_clip training run's {"state_dict": ...}, as NegCLIP ships),
    "safetensors", or "state_dict" (a plain one).
    """

    state: dict[str, torch.Tensor]
    style: str

    @property
    def openai_lineage(self) -> bool:
        """Whether the container is how fine-tunes of OpenAI CLIP (trained with QuickGELU) ship.

        A heuristic: OpenAI's own weights, CoN-CLIP and NegCLIP all come this way, but so may a
        fine-tune of another model; it only ever prompts a warning.
        """
        return self.style in ("openai", "open_clip-train")


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """A state dict from a local file, unwrapped from the usual containers; never runs code in it."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        elif _is_torchscript(path):
            raise BadInputError(
                f"checkpoint {path} is a TorchScript archive, which holds code and is not loaded: "
                f"use the `arch.openai` name, or re-save its state_dict() with torch.save"
            )
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except BadInputError:
        raise
    except Exception as err:  # truncated zip, pickle with code, not a checkpoint at all
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise BadInputError(
            f"checkpoint {path} cannot be read safely ({type(err).__name__}: {first}): "
            f"check the file or download it again"
        ) from err
    style = "safetensors" if path.suffix == ".safetensors" else "state_dict"
    for key, wrapped in (("state_dict", "open_clip-train"), ("model", "openai"), ("model_state_dict", "state_dict")):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd, style = sd[key], wrapped
            break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BadInputError(f"checkpoint {path} holds no state dict of tensors")
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    floats = [v for v in sd.values() if v.is_floating_point()]
    if style == "state_dict" and floats and all(v.dtype == torch.float16 for v in floats):
        style = "openai"  # the `clip` package converts its models to fp16 before saving
    return Checkpoint(dict(sd), style)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict alone (see `read_checkpoint`)."""
    return read_checkpoint(path).state


def to_open_clip_keys(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a checkpoint's keys onto open_clip's, as open_clip's own loader does.

    OpenAI-CLIP state dicts already use open_clip.CLIP's key names (open_clip builds CLIP from them
    with a strict load); their extra TorchScript entries are dropped, and a CLIP-layout text tower
    moves under `text.` for CustomTextCLIP models.
    """
    state = {k: v for k, v in state.items() if k not in _NOT_WEIGHTS}
    state = open_clip.convert.convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = open_clip.model.convert_to_custom_text_state_dict(state)
    own = model.state_dict()
    for key in _UNUSED_FOR_EMBEDDINGS:  # a scalar saved as [1] or the other way round
        if key in state and key in own and state[key].shape != own[key].shape and state[key].numel() == 1:
            state[key] = state[key].reshape(own[key].shape)
    return state


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> list[str]:
    """Load strictly; a checkpoint that does not fit the architecture says which keys are off.

    Only logit_scale/logit_bias may be missing (they do not touch embeddings); they keep their
    initial values and are returned.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    kept = [k for k in missing if k in _UNUSED_FOR_EMBEDDINGS]
    missing = [k for k in missing if k not in _UNUSED_FOR_EMBEDDINGS]
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:

        def show(keys):
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [
            f"missing {show(missing)}" if missing else "",
            f"unexpected {show(unexpected)}" if unexpected else "",
            f"wrong shape {show(wrong)}" if wrong else "",
        ]
        raise BadInputError(f"checkpoint {where} does not fit this architecture: " + "; ".join(p for p in parts if p))
    model.load_state_dict({**{k: own[k] for k in kept}, **state})
    return kept
