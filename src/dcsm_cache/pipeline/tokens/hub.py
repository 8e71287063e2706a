"""Registry weights on this machine: is `arch.tag` / `hf-hub:` cached, which file was loaded, offline errors.

    weights_cached(parse_backbone("ViT-B-16-quickgelu.openai"))   # True where the HF cache holds it
    text_files_missing(parse_backbone("ViT-B-16-SigLIP"))         # {"timm/ViT-B-16-SigLIP": ("tokenizer",)}

No network is used here. With HF_HUB_OFFLINE=1, weights that are not cached are an error that says
how to provide them, never a download. So are the files of the hub repos a backbone's text side reads
even with local or random weights: the tokenizer of SigLIP, SigLIP2, XLM-R and NLLB-CLIP
(`hf_tokenizer_name`), the config of a Hugging Face text tower (`hf_model_name`). The error names
each repo, the files it needs and the cache folder they go in, with the `hf download` line that
writes them there on a machine with network access.
"""

from __future__ import annotations

import json
import os

from ..._openclip import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME  # noqa: E402  (after the torchvision guard)
from ...errors import InputNotFoundError
from .checkpoints import sha256_file
from .names import BackboneSpec

__all__ = [
    "cached_weights_sha256",
    "hub_cached",
    "hub_text_repos",
    "needs_quick_gelu",
    "not_cached",
    "offline",
    "text_files_hint",
    "text_files_missing",
    "weights_cached",
]

# What transformers' AutoTokenizer reads: the tokenizer's class (tokenizer_config.json, or else the model's
# config.json, which transformers 5 reads in any case) and its vocabulary (tokenizer.json, or a sentencepiece
# model, or BPE/WordPiece vocab files).
TOKENIZER_CLASS = ("tokenizer_config.json", "config.json")
TOKENIZER_VOCAB = (
    "tokenizer.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
)
_PATTERNS = ("'tokenizer*'", "special_tokens_map.json", "'*.model'", "'vocab*'", "merges.txt", "config.json")
_INCLUDE = " ".join(f"--include {p}" for p in _PATTERNS)  # `hf download`: one pattern per --include


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


def _model_cfg(bs: BackboneSpec, cache_dir: str | None) -> dict:
    if not bs.hub:
        return open_clip.get_model_config(bs.arch) or {}
    repo = bs.hub[len("hf-hub:") :]
    found = cached_file(repo, "open_clip_config.json", cache_dir)
    try:
        with open(found, encoding="utf-8") as f:
            return json.load(f).get("model_cfg") or {}
    except (TypeError, OSError, ValueError, AttributeError):  # not cached (weights_cached says so first)
        return {}


def hub_text_repos(bs: BackboneSpec, cache_dir: str | None = None) -> dict[str, tuple[str, ...]]:
    """The hub repos a backbone's text side reads when it is built -> what for ("tokenizer", "text tower")."""
    text = _model_cfg(bs, cache_dir).get("text_cfg") or {}
    out: dict[str, list[str]] = {}
    for key, what in (("hf_tokenizer_name", "tokenizer"), ("hf_model_name", "text tower")):
        repo = text.get(key)
        if isinstance(repo, str) and repo and not os.path.isdir(repo):  # (a local folder is no repo)
            out.setdefault(repo, []).append(what)
    return {repo: tuple(what) for repo, what in out.items()}


def text_files_missing(bs: BackboneSpec, cache_dir: str | None = None) -> dict[str, tuple[str, ...]]:
    """The repos of `hub_text_repos` whose files are not in the Hugging Face cache -> what each is for."""

    def have(repo: str, names: tuple[str, ...]) -> bool:
        return any(cached_file(repo, n, cache_dir) for n in names)

    config = _transformers_major() >= 5  # AutoTokenizer reads the repo's config.json first
    return {
        repo: what
        for repo, what in hub_text_repos(bs, cache_dir).items()
        if ("tokenizer" in what and not (have(repo, TOKENIZER_CLASS) and have(repo, TOKENIZER_VOCAB)))
        or (("text tower" in what or config) and not have(repo, ("config.json",)))
    }


def _transformers_major() -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return 0


def text_files_hint(repos: dict[str, tuple[str, ...]], cache_dir: str | None) -> str:
    """Which files of `repos` to place where in the cache, and the command that puts them there."""
    from huggingface_hub.constants import HF_HUB_CACHE

    cache = cache_dir or HF_HUB_CACHE
    places, commands = [], []
    for repo, what in repos.items():
        folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
        files = (
            "config.json, tokenizer_config.json, tokenizer.json or its sentencepiece *.model, and "
            "special_tokens_map.json (those the repo has)"
            if "tokenizer" in what
            else "config.json"
        )
        places.append(
            f"{repo} ({' and '.join(what)}): {files} in {folder}/snapshots/COMMIT/, with COMMIT (any folder name) "
            f"written in {folder}/refs/main"
        )
        commands.append(f"`hf download {repo} {_INCLUDE} --cache-dir {cache}`")
    return (
        f"place the files of {'; '.join(places)}, as {' and '.join(commands)} writes them on a machine with "
        f"network access (or copy that machine's Hugging Face cache)"
    )


def text_files_not_cached(bs: BackboneSpec, repos: dict[str, tuple[str, ...]], cache_dir: str | None):
    what = " and ".join(sorted({w for ws in repos.values() for w in ws}))
    return InputNotFoundError(
        f"backbone {bs.spec!r} reads its {what} from the Hugging Face hub ({', '.join(repos)}), which is not "
        f"cached on this machine, and HF_HUB_OFFLINE is set: {text_files_hint(repos, cache_dir)}"
    )


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
