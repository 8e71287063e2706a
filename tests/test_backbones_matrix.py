"""The real open_clip architectures that config/paper.yaml and docs/backbones.md name, through every naming form
that works offline: bare `arch`, `arch@file` in each checkpoint format, `arch.tag` and `hf-hub:org/name`
from a Hugging Face cache laid out here in the real layout, under HF_HUB_OFFLINE=1 (the L/14s through the
forms config/paper.yaml names them by: FORMS). Random weights;
nothing is downloaded. Each form extracts two images and checks token counts and widths, that the
pooled embeddings are the model's own, and that the store names what was loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcsm_cache._openclip import open_clip
from dcsm_cache.errors import BackboneLoadError, MissingPackageError
from dcsm_cache.pipeline.tokens import backbones
from dcsm_cache.pipeline.tokens.backbones import load_backbone
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import DatasetBuilder, write_manifest
from dcsm_cache.stores.feature_store import FeatureStore

# arch -> (image tokens, joint width, context length, its registry form), written down from the papers'
# model cards: ViT-B/32 at 224 px is 7×7 patches + CLS, B/16 14×14 + CLS, L/14 16×16 + CLS; SigLIP has
# no CLS; CoCa keeps CLS + patches (value path); RN50's attention pool sees 7×7 locations.
CLIPS_HUB = "UCSC-VLAA/ViT-L-14-CLIPS-224-Recap-DataComp-1B"
REAL = {
    "ViT-B-32": (50, 512, 77, "ViT-B-32.laion2b_s34b_b79k"),
    "ViT-B-32-quickgelu": (50, 512, 77, "ViT-B-32-quickgelu.openai"),
    "ViT-B-16": (197, 512, 77, "ViT-B-16.openai"),
    "ViT-B-16-quickgelu": (197, 512, 77, "ViT-B-16-quickgelu.openai"),
    "ViT-L-14": (257, 768, 77, "ViT-L-14.laion2b_s32b_b82k"),
    "ViT-L-14-quickgelu": (257, 768, 77, "ViT-L-14-quickgelu.openai"),
    "ViT-B-16-SigLIP": (196, 768, 64, "ViT-B-16-SigLIP.webli"),
    "coca_ViT-B-32": (50, 512, 76, "coca_ViT-B-32.mscoco_finetuned_laion2b_s13b_b90k"),
    "RN50": (49, 1024, 77, "RN50.yfcc15m"),
    "clips": (257, 768, 80, f"hf-hub:{CLIPS_HUB}"),
}
FORMATS = ("open_clip", "openai", "negclip", "safetensors")
# The naming forms each arch goes through: all of them on the B-size archs; on the L/14s (a ~1.7 GB checkpoint,
# each form ~20 s here) the forms the paper's configuration names: the registry tag, and the CoN-CLIP L/14
# release (OpenAI's fp16 layout) in the QuickGELU arch; CLIPS only exists on the hub.
FORMS = {
    "ViT-L-14": ("bare", "registry"),
    "ViT-L-14-quickgelu": ("openai", "registry"),
    "clips": ("registry",),
}
ALL_FORMS = ("bare", *FORMATS, "registry")
REV = "0123456789abcdef0123456789abcdef01234567"

# A stand-in of the CLIPS hub repo: its exact open_clip_config.json cannot be read here, so this is
# the layout it documents (ViT-L/14 vision, a text tower with the repo's own HF tokenizer in open_clip's
# `clips` mode: class token last).
CLIPS_CFG = {
    "embed_dim": 768,
    "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
    "text_cfg": {
        "context_length": 80,
        "vocab_size": 32000,
        "hf_tokenizer_name": CLIPS_HUB,
        "tokenizer_mode": "clips",
        "width": 768,
        "heads": 12,
        "layers": 12,
        "pool_type": "last",
        "no_causal_mask": True,
    },
}
WORDS = "a an the red blue green cube sphere dog cat above below left right of and not with without photo".split()


def _repo(cache: Path, repo: str) -> Path:
    """An empty snapshot of `repo` in the hub cache layout (models--org--name/{refs,snapshots})."""
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(REV)
    snap = base / "snapshots" / REV
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _tokenizer_files(snap: Path, specials: dict[str, str], max_len: int) -> None:
    """A word-level fast tokenizer (tokenizer.json) as `transformers` reads it from a hub snapshot."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(dict.fromkeys([*specials.values(), *WORDS]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    eos = specials["eos_token"]
    tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, vocab[eos])])
    tok.save(str(snap / "tokenizer.json"))
    (snap / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_len, **specials})
    )
    (snap / "special_tokens_map.json").write_text(json.dumps(specials))
    (snap / "config.json").write_text("{}")  # the repo's model config: transformers reads it before the tokenizer


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    """The tokenizers SigLIP and CLIPS fetch from the hub, in a cache laid out as huggingface_hub writes it."""
    cache = tmp_path_factory.mktemp("hf") / "hub"
    _tokenizer_files(
        _repo(cache, "timm/ViT-B-16-SigLIP"), {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}, 64
    )
    _tokenizer_files(
        _repo(cache, CLIPS_HUB),
        {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "bos_token": "<s>", "eos_token": "</s>"},
        80,
    )
    (_repo(cache, CLIPS_HUB) / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": CLIPS_CFG, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}})
    )
    return cache


@pytest.fixture
def offline(monkeypatch, hf_cache):
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return str(hf_cache)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    b = DatasetBuilder("two", root)
    for i, caps in enumerate(
        [
            ["a red cube above a blue sphere", "a blue cube above a red sphere"],
            ["a photo of a dog", "a photo of a cat without a dog"],
        ]
    ):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(root / f"{i}.png")
        b.add(f"{i}.png", caps)
    write_manifest(b.build(), root / "m.json")
    return root / "m.json"


def _model(arch: str, cache: str):
    """The architecture with seeded random weights, perturbed so a file's weights differ from a bare load's;
    weights rounded to fp16 so the OpenAI (fp16) format holds them exactly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        name = f"hf-hub:{CLIPS_HUB}" if arch == "clips" else arch
        model = open_clip.create_model(name, pretrained=None, pretrained_text=False, cache_dir=cache)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    return model.eval()


def _write(model, fmt: str, path: Path) -> Path:
    state = model.state_dict()
    if fmt == "open_clip":
        torch.save(state, path)
    elif fmt == "openai":  # CoN-CLIP: the `clip` package's fp16 model under "model", with training state
        torch.save({"model": {k: v.half() if v.is_floating_point() else v for k, v in state.items()}, "epoch": 5}, path)
    elif fmt == "negclip":  # an open_clip training checkpoint, DDP's `module.` prefix
        torch.save({"epoch": 10, "name": "negclip", "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = path.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _registry_weights(model, spec: str, cache: Path) -> None:
    """Put the model's weights where `arch.tag` / `hf-hub:` look for them in the hub cache."""
    from safetensors.torch import save_file

    if spec.startswith("hf-hub:"):
        snap = _repo(cache, spec[len("hf-hub:") :])
    else:
        arch, tag = spec.rsplit(".", 1)
        repo = open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/")
        snap = _repo(cache, repo)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snap / "open_clip_model.safetensors"))


def _check_store(out: Path, arch: str, spec: str) -> dict:
    n_tok, width, context, _ = REAL[arch]
    store = FeatureStore.open(out)
    assert store.image_tokens.shape == (2, n_tok, width)
    assert store.text_pooled.shape[1] == width and store.attrs["context_length"] == context
    a = store.attrs
    assert a["backbone"] == spec and a["identity"]["arch"] == (spec if spec.startswith("hf-hub:") else a["arch"])
    assert a["activation"] == a["identity"]["activation"]
    return a


def _extract(manifest: Path, spec: str, out: Path, cache: str) -> FeatureStore:
    return extract(manifest, spec, out, ExtractConfig(batch_size=2, device="cpu", progress=False, cache_dir=cache))


def _pooled_are_the_models_own(name: str, cache: str, model, manifest: Path, out: Path, seen: dict) -> None:
    """The store's pooled vectors are `model.encode_image` / `encode_text` of the same inputs, preprocessed
    as the store says (`name`: what open_clip knows the tokenizer by, the arch or the hub model). `seen` keeps
    this model's own vectors by tokenizer and preprocessing: another form of the same weights read the same
    way is checked against them without running the model again."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    store = FeatureStore.open(out)
    cfg = store.attrs["identity"]["preprocess"]
    key = (name, json.dumps(cfg, sort_keys=True))
    if key not in seen:
        preprocess = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
        pixels = torch.stack([preprocess(Image.open(manifest.parent / f"{i}.png").convert("RGB")) for i in (0, 1)])
        ids = open_clip.get_tokenizer(name, cache_dir=cache)(json.loads(manifest.read_text())["captions"][:2])
        with torch.no_grad():
            seen[key] = (
                torch.nn.functional.normalize(model.encode_image(pixels), dim=-1),
                torch.nn.functional.normalize(model.encode_text(ids), dim=-1),
            )
    img, txt = seen[key]
    got_img = torch.nn.functional.normalize(torch.from_numpy(store.image_pooled[:]).float(), dim=-1)
    got_txt = torch.nn.functional.normalize(torch.from_numpy(store.text_pooled[:2]).float(), dim=-1)
    torch.testing.assert_close(got_img, img, atol=3e-3, rtol=0)
    torch.testing.assert_close(got_txt, txt, atol=3e-3, rtol=0)


@pytest.mark.slow  # 20-50 s an architecture here
@pytest.mark.parametrize("arch", list(REAL))
def test_every_naming_form_extracts(arch, offline, manifest, tmp_path):
    n_tok, width, context, registry = REAL[arch]
    cache, seen = offline, {}
    forms = FORMS.get(arch, ALL_FORMS)
    # bare arch: seeded random weights
    if "bare" in forms:
        out = tmp_path / "bare.zarr"
        _extract(manifest, arch, out, cache)
        a = _check_store(out, arch, arch)
        assert a["identity"]["weights"] == "random:seed0"
        bare = load_backbone(arch, device="cpu", cache_dir=cache).model
        _pooled_are_the_models_own(arch, cache, bare, manifest, out, {})
        del bare
    model = _model(arch, cache)
    # arch@file, every checkpoint format the paper's baselines ship in
    if set(FORMATS) & set(forms):
        ids = set()
        for fmt in [f for f in FORMATS if f in forms]:
            path = _write(model, fmt, tmp_path / f"{fmt}.pt")
            spec = f"{arch}@{path}"
            out = tmp_path / f"{fmt}.zarr"
            _extract(manifest, spec, out, cache)
            a = _check_store(out, arch, spec)
            assert a["identity"]["weights"] == f"sha256:{backbones.sha256_file(path)}"
            ids.add(json.dumps({k: v for k, v in a["identity"].items() if k != "weights"}, sort_keys=True))
            if fmt == "openai":
                _pooled_are_the_models_own(arch, cache, model, manifest, out, seen)
            path.unlink()
        assert len(ids) == 1  # the same architecture, activation and preprocessing whatever the container
        # a local file gets the preprocessing the arch's pretrained weights share (SigLIP: mean 0.5, not OpenAI's)
        mean = json.loads(ids.pop())["preprocess"]["mean"]
        assert mean == ([0.5] * 3 if "SigLIP" in arch else [0.48145466, 0.4578275, 0.40821073])
    # arch.tag / hf-hub:org/name from the hub cache, offline
    _registry_weights(model, registry, Path(cache))
    out = tmp_path / "registry.zarr"
    _extract(manifest, registry, out, cache)
    a = _check_store(out, arch, registry)
    loaded = load_backbone(registry, device="cpu", cache_dir=cache)
    assert a["identity"]["weights"].startswith("sha256:")
    if not loaded.info.get("quick_gelu"):  # a forced QuickGELU is another function of the same weights
        _pooled_are_the_models_own(registry if arch == "clips" else arch, cache, model, manifest, out, seen)
    for k, v in model.state_dict().items():  # bit for bit; open_clip leaves some of CoCa's random weights
        # uninitialised (torch.empty), which now and then holds NaN bit patterns: equal NaNs are equal bits
        torch.testing.assert_close(loaded.model.state_dict()[k], v, rtol=0, atol=0, equal_nan=True)


def test_registry_weights_that_miss_a_tensor_are_refused_in_one_line(monkeypatch, tmp_path):
    """Registry weights are loaded into a model built without random init, so a file in the hub cache that lacks
    a tensor must stop the load, naming the backbone and the key, never run with that weight uninitialised."""
    import huggingface_hub.constants as hub
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    spec, cache = REAL["ViT-B-32"][3], tmp_path / "hub"
    state = _model("ViT-B-32", str(cache)).state_dict()
    repo = open_clip.get_pretrained_cfg(*spec.rsplit(".", 1))["hf_hub"].rstrip("/")
    save_file(
        {k: v.contiguous() for k, v in state.items() if k != "visual.proj"},
        str(_repo(cache, repo) / "open_clip_model.safetensors"),
    )
    with pytest.raises(BackboneLoadError) as err:
        load_backbone(spec, device="cpu", cache_dir=str(cache))
    msg = str(err.value)
    assert "\n" not in msg and repr(spec) in msg and "visual.proj" in msg


def test_openai_style_checkpoint_in_a_gelu_arch_warns(offline, tmp_path, caplog):
    """sugar-crepe #7: a fine-tune of OpenAI CLIP loaded into the GELU architecture runs and is silently wrong."""
    model = _model("ViT-B-32-quickgelu", offline)
    for fmt in ("openai", "negclip"):
        path = _write(model, fmt, tmp_path / f"{fmt}.pt")
        caplog.clear()
        bb = load_backbone(f"ViT-B-32@{path}", device="cpu")
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and "\n" not in warned[0] and f"ViT-B-32-quickgelu@{path}" in warned[0]
        assert bb.info["activation"] == "gelu"
        caplog.clear()
        bb = load_backbone(f"ViT-B-32-quickgelu@{path}", device="cpu")
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        assert bb.info["activation"] == "quick_gelu" and bb.identity["activation"] == "quick_gelu"


def test_extract_from_a_conclip_style_checkpoint_records_its_activation_and_weights(manifest, tmp_path):
    """`dcsm-cache extract --backbone ViT-B-32-quickgelu@ckpt.pt` on a CoN-CLIP-style file, as a user runs it."""
    path = _write(_model("ViT-B-32-quickgelu", ""), "openai", tmp_path / "ckpt.pt")
    out = tmp_path / "s.zarr"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dcsm_cache.cli import main; main()",
            "extract",
            "--items",
            str(manifest),
            "--backbone",
            f"ViT-B-32-quickgelu@{path}",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--set",
            "progress=false",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    a = FeatureStore.open(out).attrs
    assert a["activation"] == "quick_gelu" and a["identity"]["weights"] == f"sha256:{backbones.sha256_file(path)}"


def test_library_errors_are_one_line(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise TypeError("create_model() got multiple values for keyword argument 'force_preprocess_cfg'")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", boom)
    with pytest.raises(BackboneLoadError) as err:
        load_backbone("ViT-B-32", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "'ViT-B-32'" in msg and "TypeError" in msg


def test_missing_hf_package_is_one_line(monkeypatch, offline):
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    with pytest.raises(MissingPackageError) as err:
        load_backbone("ViT-B-16-SigLIP", device="cpu", cache_dir=offline)
    msg = str(err.value)
    assert "\n" not in msg and "'transformers'" in msg and "dcsm-cache[hf]" in msg
