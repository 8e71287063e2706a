"""Registry weights on this machine: is `arch.tag` / `hf-hub:` cached, which file was loaded, offline errors.

    weights_cached(parse_backbone("ViT-B-16-quickgelu.openai"))   # True where the HF cache holds it

No network is used here. With HF_HUB_OFFLINE=1, weights that are not cached are an error that says
how to provide them, never a download.
"""

from __future__ import annotations

import os

from ..._openclip import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME  # noqa: E402  (after the torchvision guard)
from ...errors import InputNotFoundError
from .checkpoints import sha256_file
from .names import BackboneSpec

__all__ = ["cached_weights_sha256", "hub_cached", "needs_quick_gelu", "not_cached", "offline", "weights_cached"]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_file(repo: str, filename: str, cache_dir: str | None) -> str | None:
    """The path of `filename` of hub repo `repo` in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
    return found if isinstance(found, str) else None


def hub_cached(repo: str, filename: str, cache_dir: str | None) -> bool:
    """Whether the file, or the safetensors twin open_clip prefers, is in the hub cache."""
    if filename == HF_WEIGHTS_NAME:
        twin = HF_SAFE_WEIGHTS_NAME
    elif filename.endswith((".bin", ".pth")):
        twin = filename[:-4] + ".safetensors"
    else:
        twin = None
    return any(cached_file(repo, n, cache_dir) for n in (filename, twin) if n)


def weights_cached(bs: BackboneSpec, cache_dir: str | None = None) -> bool:
    """Whether `arch.tag` or `hf-hub:` weights are already on this machine (no network is used)."""
    if bs.hub:
        repo = bs.hub[len("hf-hub:") :]
        if hub_cached(repo, "open_clip_config.json", cache_dir):
            return hub_cached(repo, HF_WEIGHTS_NAME, cache_dir)
        # a transformers model (BLIP, tokens/blip.py): its config.json and weights
        weights = ("model.safetensors", "pytorch_model.bin")
        return hub_cached(repo, "config.json", cache_dir) and any(hub_cached(repo, w, cache_dir) for w in weights)
    cfg = open_clip.get_pretrained_cfg(bs.arch, bs.tag)
    if "file" in cfg:
        return os.path.isfile(cfg["file"])
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/name/' means the default file name
        if hub_cached(repo, filename or HF_WEIGHTS_NAME, cache_dir):
            return True
    if cfg.get("url"):
        return os.path.isfile(
            os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        )
    return False


def cached_weights_sha256(bs: BackboneSpec, cache_dir: str | None) -> str | None:
    """sha256 of the registry weights file this machine loaded, where it can be found in the cache."""
    if bs.hub:
        repo, names = bs.hub[len("hf-hub:") :], (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
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
    found = next((f for f in (cached_file(repo, n, cache_dir) for n in names) if f), None)
    return sha256_file(found) if found else None


def needs_quick_gelu(bs: BackboneSpec) -> bool:
    """An `arch.tag` whose weights were trained with QuickGELU, on an arch built with GELU."""
    return bool(
        bs.tag
        and open_clip.get_pretrained_cfg(bs.arch, bs.tag).get("quick_gelu", False)
        and not (open_clip.get_model_config(bs.arch) or {}).get("quick_gelu", False)
    )


def not_cached(bs: BackboneSpec) -> InputNotFoundError:
    arch = "<arch>" if bs.hub else bs.arch
    if needs_quick_gelu(bs) and f"{bs.arch}-quickgelu" in open_clip.list_models():
        arch = f"{bs.arch}-quickgelu"
    return InputNotFoundError(
        f"weights for {bs.spec} are not cached on this machine and HF_HUB_OFFLINE is set: run once with "
        f"network access (or copy the Hugging Face cache, HF_HOME), or download the file and name it "
        f"as {arch}@/path/to/weights"
    )
