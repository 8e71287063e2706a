"""BLIP (Hugging Face `BlipForImageTextRetrieval`) as a backbone: ITC tokens for DCSMs, the ITM head as a scorer.

    bb = load_backbone("blip@models/blip-itm-base-coco")            # a save_pretrained folder
    bb = load_backbone("hf-hub:Salesforce/blip-itm-base-coco")       # or a hub id (HF_HUB_OFFLINE honoured)
    tokens, pooled = token_encoder(bb.model).image(pixels)            # ITC space: vision_proj of every patch

BLIP is not an open_clip model, so `BlipCLIP` wraps it in open_clip's shape: `.visual` and `.text`
towers (with adapters of their own, registered in `encoder.py`), `encode_image`/`encode_text` giving
the unnormalised ITC embeddings (`vision_proj`/`text_proj` of the [CLS] state, as the model's own
`use_itm_head=False` path), and `context_length` 35 (BLIP's retrieval captions). Patch and word tokens
go through the same projections, so they live in the ITC space with the pooled vector.
Preprocessing is the folder's own `BlipImageProcessor` (bicubic resize to a square, CLIP mean and std),
called per image; the tokenizer is open_clip's `HFTokenizer`
over the folder's BERT tokenizer. `itm_scores` runs the ITM head (cross-attention over all image states),
which is not cached: the `blip-itm` scorer re-runs it on the images.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn
from torch.nn import functional as F

from ..._openclip import open_clip
from ...errors import BackboneLoadError, InputNotFoundError, MissingPackageError
from .adapters import ImageAdapter, TextAdapter, project
from .checkpoints import sha256_file
from .hub import cached_file, offline
from .loaded import Backbone
from .names import BackboneSpec

Tensor = torch.Tensor

__all__ = ["BLIP_IMAGE_ADAPTER", "BLIP_TEXT_ADAPTER", "BlipCLIP", "is_blip", "itm_scores", "load_blip"]

CONTEXT_LENGTH = 35  # BLIP's retrieval captions: padding="max_length", max_length=35
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class BlipVisual(nn.Module):
    def __init__(self, vision_model: nn.Module, vision_proj: nn.Module, preprocess_cfg: dict):
        super().__init__()
        self.vision_model, self.vision_proj = vision_model, vision_proj
        self.preprocess_cfg = preprocess_cfg
        size, patch = vision_model.config.image_size, vision_model.config.patch_size
        self.grid_size = (size // patch, size // patch)

    def states(self, pixels: Tensor) -> Tensor:
        """last_hidden_state (post_layernorm), [CLS] first: what the ITC and ITM heads read."""
        return self.vision_model(pixel_values=pixels).last_hidden_state


class BlipText(nn.Module):
    def __init__(self, text_encoder: nn.Module, text_proj: nn.Module, pad_id: int):
        super().__init__()
        self.text_encoder, self.text_proj, self.pad_id = text_encoder, text_proj, pad_id

    def states(self, ids: Tensor) -> Tensor:
        """The text encoder alone (no cross-attention), as the model's ITC path runs it."""
        mask = (ids != self.pad_id).long()
        return self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state


class BlipCLIP(nn.Module):
    """`BlipForImageTextRetrieval` in open_clip's shape: `.visual`, `.text`, `encode_image`, `encode_text`."""

    def __init__(self, hf: nn.Module, preprocess_cfg: dict, pad_id: int):
        super().__init__()
        self.hf = hf
        self.visual = BlipVisual(hf.vision_model, hf.vision_proj, preprocess_cfg)
        self.text = BlipText(hf.text_encoder, hf.text_proj, pad_id)
        self.context_length = CONTEXT_LENGTH

    def encode_image(self, pixels: Tensor, normalize: bool = False) -> Tensor:
        x = self.visual.vision_proj(self.visual.states(pixels)[:, 0])
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, ids: Tensor, normalize: bool = False) -> Tensor:
        x = self.text.text_proj(self.text.states(ids)[:, 0])
        return F.normalize(x, dim=-1) if normalize else x


# -- adapters ---------------------------------------------------------------------------------------


def _blip_image(visual: BlipVisual, pixels: Tensor) -> tuple[Tensor, Tensor]:
    x = visual.states(pixels)
    return project(x[:, 1:], visual.vision_proj), project(x[:, 0], visual.vision_proj)


def _blip_text(text: BlipText, ids: Tensor) -> tuple[Tensor, Tensor]:
    x = text.states(ids)
    return project(x, text.text_proj), project(x[:, 0], text.text_proj)


def _describe(side: str):
    def describe(tower) -> dict:
        d = {
            "family": f"blip-{side}",
            "layer": "last_hidden_state" + (" (post_layernorm)" if side == "image" else " (text encoder, no image)"),
            "projection": "vision_proj" if side == "image" else "text_proj",
            "projected": True,
            "token_path": "direct",
            "cls_token": side == "text",  # the image [CLS] is the pooled vector, not a stored token
            "pool": "cls",
        }
        if side == "image":
            d["grid"] = list(tower.grid_size)
        return d

    return describe


BLIP_IMAGE_ADAPTER = ImageAdapter("blip-image", BlipVisual, _blip_image, _describe("image"))
BLIP_TEXT_ADAPTER = TextAdapter("blip-text", BlipText, _blip_text, _describe("text"))


# -- ITM ---------------------------------------------------------------------------------------------


@torch.no_grad()
def itm_scores(model: BlipCLIP, pixels: Tensor, ids: Tensor) -> Tensor:
    """[B] probability that image i matches caption i, from the ITM head (softmax, class 1), as BLIP ranks."""
    states = model.visual.states(pixels)
    mask = (ids != model.text.pad_id).long()
    q = model.hf.text_encoder(
        input_ids=ids,
        attention_mask=mask,
        encoder_hidden_states=states,
        encoder_attention_mask=torch.ones(states.shape[:2], dtype=torch.long, device=states.device),
    ).last_hidden_state
    return model.hf.itm_head(q[:, 0]).float().softmax(dim=-1)[:, 1]


# -- naming and loading --------------------------------------------------------------------------------


def _is_blip_config(path: str | None) -> bool:
    if not path or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError:
            return False
    return cfg.get("model_type") == "blip" or any("Blip" in a for a in cfg.get("architectures") or [])


def is_blip(bs: BackboneSpec, cache_dir: str | None = None) -> bool:
    """`blip@folder`, or an `hf-hub:` repo whose config.json is a BLIP one (open_clip repos have none).
    Offline, only the cache is read; online, a hub repo's config.json is fetched (a few KB)."""
    if bs.arch == "blip":
        return True
    if not bs.hub:
        return False
    repo = bs.hub[len("hf-hub:") :]
    path = cached_file(repo, "config.json", cache_dir)
    if path is None and not offline() and cached_file(repo, "open_clip_config.json", cache_dir) is None:
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(repo, "config.json", cache_dir=cache_dir)
        except Exception:  # noqa: BLE001  (not a BLIP repo, or no network: open_clip's loader says which)
            return False
    return _is_blip_config(path)


def _source(bs: BackboneSpec, cache_dir: str | None) -> tuple[str, str]:
    """(what from_pretrained reads, the weights file hashed for the identity)."""
    if bs.path:
        folder = bs.path
        if not os.path.isdir(folder):
            raise InputNotFoundError(
                f"backbone {bs.spec!r}: {folder} is not a folder; a BLIP backbone is the folder "
                f"`save_pretrained` writes (config.json, model.safetensors, tokenizer files)"
            )
        found = [os.path.join(folder, n) for n in _WEIGHT_FILES if os.path.isfile(os.path.join(folder, n))]
        weights = found[0] if found else None
        if not os.path.isfile(os.path.join(folder, "config.json")) or weights is None:
            raise InputNotFoundError(
                f"backbone {bs.spec!r}: {folder} lacks config.json or model.safetensors: save the model with "
                f"BlipForImageTextRetrieval.save_pretrained (and its processor) into it"
            )
        return folder, weights
    repo = bs.hub[len("hf-hub:") :]
    weights = next((w for w in (cached_file(repo, n, cache_dir) for n in _WEIGHT_FILES) if w), None)
    if weights is None and offline():
        raise InputNotFoundError(
            f"weights for {bs.spec} are not cached on this machine and HF_HUB_OFFLINE is set: run once with "
            f"network access (or copy the Hugging Face cache, HF_HOME), or save the model to a folder and "
            f"name it blip@/path/to/folder"
        )
    return repo, weights or ""


class BlipPreprocess:
    """The folder's own `BlipImageProcessor` on one PIL image -> [3, H, W] (picklable, for DataLoader workers)."""

    def __init__(self, processor):
        self.processor = processor
        size = processor.size
        self.cfg = {
            "size": [size["height"], size["width"]],
            "mean": list(processor.image_mean),
            "std": list(processor.image_std),
            "interpolation": "bicubic",
            "resize_mode": "squash",
            "processor": type(processor).__name__,
        }

    def __call__(self, image) -> Tensor:
        return self.processor(image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        return f"BlipPreprocess({json.dumps(self.cfg, sort_keys=True)})"


def _preprocess(source: str, cache_dir: str | None, image_size: int) -> BlipPreprocess:
    from transformers import BlipImageProcessor

    try:
        return BlipPreprocess(BlipImageProcessor.from_pretrained(source, cache_dir=cache_dir))
    except OSError:  # no preprocessor_config.json: BLIP's defaults at the model's resolution
        return BlipPreprocess(BlipImageProcessor(size={"height": image_size, "width": image_size}))


def load_blip(bs: BackboneSpec, device: torch.device, cache_dir: str | None = None):
    """The wrapped model on `device` in eval mode, its preprocessing and tokenizer, as a `Backbone`."""
    try:
        from transformers import BlipForImageTextRetrieval
    except ImportError as err:
        raise MissingPackageError(
            f"backbone {bs.spec!r} needs the Python package 'transformers': pip install 'dcsm-cache[hf]'"
        ) from err
    source, weights = _source(bs, cache_dir)
    try:
        hf = BlipForImageTextRetrieval.from_pretrained(source, cache_dir=cache_dir)
        tokenizer = open_clip.tokenizer.HFTokenizer(source, context_length=CONTEXT_LENGTH, cache_dir=cache_dir)
        preprocess = _preprocess(source, cache_dir, hf.config.vision_config.image_size)
    except Exception as err:  # noqa: BLE001  (a library error never reaches the user as a traceback)
        first = (str(err).strip().splitlines() or [""])[0][:240] or type(err).__name__
        raise BackboneLoadError(
            f"backbone {bs.spec!r} could not be loaded as BLIP ({type(err).__name__}: {first}): check that it "
            f"holds a BlipForImageTextRetrieval model (e.g. Salesforce/blip-itm-base-coco) and its tokenizer"
        ) from err
    pad = int(getattr(tokenizer.tokenizer, "pad_token_id", None) or 0)
    model = BlipCLIP(hf, preprocess.cfg, pad).to(device).eval().requires_grad_(False)
    sha = sha256_file(weights) if weights else None
    return Backbone(bs, model, preprocess, tokenizer, device, sha, {"activation": "gelu", "family": "blip"})
