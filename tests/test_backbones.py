"""Backbone names, local checkpoints in the formats the paper's baselines ship, device and precision."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml

from dcsm_cache._openclip import open_clip
from dcsm_cache.errors import BadInputError, ConfigError, DeviceError, InputNotFoundError, UnknownNameError
from dcsm_cache.pipeline.tokens import backbones
from dcsm_cache.pipeline.device import autocast, resolve_device
from dcsm_cache.pipeline.items import read_manifest
from dcsm_cache.pipeline.tokens import load_backbone, parse_backbone, read_state_dict, weights_cached
from dcsm_cache.pipeline.tokens.encoder import token_encoder

import tiny_families as tiny

ROOT = Path(__file__).resolve().parents[1]
ARCH = "dcsmtest-vit-quickgelu"  # OpenAI layout (CLIP class, QuickGELU), as NegCLIP and CoN-CLIP


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory):
    tiny.register(tmp_path_factory.mktemp("tiny_configs"))


@pytest.fixture(scope="module")
def source():
    """A tiny OpenAI-layout CLIP whose weights are fp16-exact (OpenAI checkpoints are stored in fp16)."""
    model = tiny.build(ARCH, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 60, (2, 16), generator=g)
    ids[:, 6] = 63
    return torch.randn(2, 3, 32, 32, generator=g), ids


def _assert_same_outputs(model, reference):
    pixels, ids = _inputs()
    torch.testing.assert_close(model.encode_image(pixels), reference.encode_image(pixels), rtol=0, atol=0)
    torch.testing.assert_close(model.encode_text(ids), reference.encode_text(ids), rtol=0, atol=0)
    got, want = token_encoder(model).image(pixels), token_encoder(reference).image(pixels)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- names ----------------------------------------------------------------------------------------


def test_naming_forms():
    assert parse_backbone("ViT-B-16.openai").tag == "openai"
    assert parse_backbone("coca_ViT-B-32.mscoco_finetuned_laion2b_s13b_b90k").arch == "coca_ViT-B-32"
    bs = parse_backbone("ViT-B-32-quickgelu@~/weights/negclip.pth")
    assert bs.arch == "ViT-B-32-quickgelu" and bs.path == os.path.expanduser("~/weights/negclip.pth")
    assert parse_backbone("hf-hub:UCSC-VLAA/ViT-L-14-CLIPS-224-Recap-DataComp-1B").hub
    assert parse_backbone("ViT-B-16").weights == "random"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("ViT-B-99.openai", "not an open_clip model"),
        ("ViT-B-16.nosuchtag", "no pretrained tag 'nosuchtag' (tags: openai"),
        ("hf-hub:just-a-name", "hf-hub:org/name"),
        ("ViT-B-16@", "no weights file"),
    ],
)
def test_bad_names_say_what_to_write(spec, words):
    with pytest.raises(UnknownNameError) as err:
        parse_backbone(spec)
    assert words in _one_line(err)


def test_paper_backbones_parse():
    """config/paper.yaml names the paper's backbones; every name parses and every key is a folder name."""
    entries = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["backbones"]
    assert {
        "vit-b-16-openai",
        "negclip-vit-b-32",
        "siglip-vit-b-16",
        "coca-vit-b-32",
        "clips-vit-l-14",
        "conclip-vit-b-32",
        "conclip-vit-b-16",
        "conclip-vit-l-14",
    } <= set(entries)
    for key, entry in entries.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", key), key
        parse_backbone(entry["model"])


# -- registry weights: offline, and the QuickGELU of OpenAI tags -------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "ViT-B-32.openai",
        "coca_ViT-B-32.mscoco_finetuned_laion2b_s13b_b90k",
        "hf-hub:UCSC-VLAA/ViT-L-14-CLIPS-224-Recap-DataComp-1B",
    ],
)
def test_offline_and_not_cached_is_one_line(spec, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputNotFoundError) as err:
        load_backbone(spec, device="cpu", cache_dir=str(tmp_path))
    msg = _one_line(err)
    assert "not cached" in msg and spec in msg and "@/path" in msg
    if spec == "ViT-B-32.openai":  # OpenAI weights go with the QuickGELU arch
        assert "ViT-B-32-quickgelu@/path" in msg


def test_cached_weights_are_found_without_network(tmp_path):
    """A file in the Hugging Face cache layout (open_clip prefers its safetensors twin) counts as cached."""
    bs = parse_backbone("ViT-B-32.openai")
    assert not weights_cached(bs, str(tmp_path))
    repo = tmp_path / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "open_clip_model.safetensors").write_bytes(b"x")
    assert weights_cached(bs, str(tmp_path))


# -- tokenizers and text towers read from the Hugging Face hub, offline ----------------------------------

HUB_TOKENIZED = [
    ("ViT-B-16-SigLIP", "timm/ViT-B-16-SigLIP"),
    ("ViT-B-16-SigLIP2", "timm/ViT-B-16-SigLIP2"),
    ("xlm-roberta-base-ViT-B-32", "xlm-roberta-base"),
    ("nllb-clip-base", "facebook/nllb-200-distilled-600M"),
]


@pytest.mark.parametrize("spec, repo", HUB_TOKENIZED)
def test_offline_without_the_hub_tokenizer_is_one_line_saying_which_files_go_where(spec, repo, monkeypatch, tmp_path):
    """Even with random weights (a bare arch), before any model is built."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputNotFoundError) as err:
        load_backbone(spec, device="cpu", cache_dir=str(tmp_path))
    msg = _one_line(err)
    folder = tmp_path / ("models--" + repo.replace("/", "--"))
    assert "reads its " in msg and f"({repo})" in msg and "HF_HUB_OFFLINE" in msg
    assert f"{folder}/snapshots/COMMIT/" in msg and f"{folder}/refs/main" in msg
    assert "tokenizer.json" in msg and "config.json" in msg and f"`hf download {repo} --include" in msg


def _hub_tokenizer(snapshot: Path) -> "Tokenizer":  # noqa: F821
    """A word-level tokenizer of the shapes world's words, saved as a hub repo's tokenizer files."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = "a an the of to and not is on in left right above below behind front red green blue yellow"
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *words.split()])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    snapshot.mkdir(parents=True)
    tok.save(str(snapshot / "tokenizer.json"))
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    (snapshot / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", **special})
    )
    (snapshot / "special_tokens_map.json").write_text(json.dumps(special))
    (snapshot / "config.json").write_text(json.dumps({"architecture": "vit_base_patch16_siglip_224"}))  # timm's
    return tok


def test_extract_through_a_hub_tokenizer_placed_where_the_line_says(manifests, monkeypatch, tmp_path):
    """A tiny model whose tokenizer is SigLIP's hub repo: offline and uncached, `extract` stops in one line
    naming the repo, its files and their folder; with them there (a tokenizer built here), it extracts."""
    import huggingface_hub.constants
    import zarr
    from click.testing import CliRunner

    from dcsm_cache.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # (read once, when imported)
    (tmp_path / "cfg").mkdir()
    text = {**tiny.TEXT, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP", "tokenizer_kwargs": {"clean": "canonicalize"}}
    config = {"embed_dim": 24, "vision_cfg": tiny.VIT, "text_cfg": text}
    (tmp_path / "cfg" / "dcsmtest-hubtok.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "cfg")
    cache, out = tmp_path / "hf", tmp_path / "s.zarr"
    args = ["extract", "--items", manifests["shapes_spatial"], "--backbone", "dcsmtest-hubtok", "--out", out]
    args += ["--device", "cpu", "--workers", "0", "--set", "progress=false", "--set", f"cache_dir={cache}"]
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, (res.output, res.exception)
    repo = cache / "models--timm--ViT-B-16-SigLIP"
    assert f"{repo}/snapshots/COMMIT/" in res.stderr and f"{repo}/refs/main" in res.stderr and not out.exists()
    tok = _hub_tokenizer(repo / "snapshots" / "c0ffee")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0 and "store complete" in res.output, (res.output, res.exception)
    g = zarr.open_group(out, mode="r")
    caption = read_manifest(manifests["shapes_spatial"]).captions[0]
    ids = tok.encode(open_clip.tokenizer.canonicalize_text(caption)).ids
    assert g["text/ids"][0].tolist() == ids + [0] * (g["text/ids"].shape[1] - len(ids))
    assert g["text/length"][0] == len(ids) and g.attrs["tokenizer"]["name"] == "dcsmtest-hubtok"


@pytest.mark.parametrize(
    "spec, forced",
    [("ViT-B-16.openai", True), ("ViT-B-16-quickgelu.openai", False), ("ViT-B-16.datacomp_xl_s13b_b90k", False)],
)
def test_openai_tags_get_quickgelu(spec, forced, monkeypatch, source):
    seen = {}

    def fake_create(name, **kwargs):
        seen.update(kwargs, name=name)
        return source, None, (lambda im: im)

    monkeypatch.setattr(backbones, "weights_cached", lambda *a, **k: True)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    bb = load_backbone(spec, device="cpu")
    assert seen.get("force_quick_gelu", False) is forced
    assert ("quick_gelu" in bb.info) is forced


# -- local checkpoints ----------------------------------------------------------------------------


def test_conclip_format(source, tmp_path):
    """CoN-CLIP: {"model": OpenAI-CLIP state dict, ...} as saved from the `clip` package, plus training state."""
    path = tmp_path / "conclip_b32.pt"
    state = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    torch.save(
        {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-6, "params": [0, 1]}]}, "epoch": 5}, path
    )
    bb = load_backbone(f"{ARCH}@{path}", device="cpu")
    _assert_same_outputs(bb.model, source)
    assert bb.weights_sha256 == backbones.sha256_file(path) and bb.spec.weights == str(path)


def test_negclip_format(source, tmp_path):
    """NegCLIP (negclip.pth): an open_clip training checkpoint, state dict under "state_dict" with
    DistributedDataParallel's `module.` prefix."""
    path = tmp_path / "negclip.pth"
    torch.save(
        {
            "epoch": 10,
            "name": "negclip",
            "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
            "optimizer": {"state": {}, "param_groups": []},
        },
        path,
    )
    _assert_same_outputs(load_backbone(f"{ARCH}@{path}", device="cpu").model, source)


def test_torchscript_is_refused_and_safetensors_load(source, tmp_path):
    from safetensors.torch import save_file

    jit = tmp_path / "openai.pt"
    torch.jit.script(tiny.copy_model(source)).save(str(jit))
    with pytest.raises(BadInputError, match="TorchScript archive, which holds code"):
        load_backbone(f"{ARCH}@{jit}", device="cpu")
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st))
    _assert_same_outputs(load_backbone(f"{ARCH}@{st}", device="cpu").model, source)


def test_openai_extras_dropped_and_logit_scale_optional(source, tmp_path):
    state = {k: v for k, v in source.state_dict().items() if k != "logit_scale"}
    state.update(input_resolution=torch.tensor(32), context_length=torch.tensor(16), vocab_size=torch.tensor(64))
    path = tmp_path / "plain.bin"
    torch.save(state, path)
    bb = load_backbone(f"{ARCH}@{path}", device="cpu")
    _assert_same_outputs(bb.model, source)
    assert bb.info["kept_initial"] == ["logit_scale"]


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("as_zip", [True, False])
def test_pickle_that_runs_code_is_refused(as_zip, tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"state_dict": {"w": torch.zeros(1)}, "hook": _RunsCode(marker)}
    if as_zip:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(BadInputError) as err:
        load_backbone(f"{ARCH}@{path}", device="cpu")
    assert str(path) in _one_line(err) and "cannot be read safely" in str(err.value)
    assert not marker.exists()


def test_truncated_and_missing_files_name_the_path(source, tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadInputError) as err:
        load_backbone(f"{ARCH}@{path}", device="cpu")
    assert str(path) in _one_line(err)
    with pytest.raises(InputNotFoundError) as err:
        read_state_dict(tmp_path / "absent.pt")
    assert str(tmp_path / "absent.pt") in _one_line(err)


def test_wrong_architecture_names_the_keys(source, tmp_path):
    path = tmp_path / "vit.pt"
    torch.save(source.state_dict(), path)
    with pytest.raises(BadInputError) as err:
        load_backbone(f"dcsmtest-rn@{path}", device="cpu")
    msg = _one_line(err)
    assert "does not fit" in msg and "missing visual.attnpool" in msg and "unexpected visual.class_embedding" in msg
    with pytest.raises(BadInputError, match=r"wrong shape .*token_embedding"):
        state = dict(source.state_dict(), **{"token_embedding.weight": torch.zeros(10, 32)})
        torch.save(state, path)
        load_backbone(f"{ARCH}@{path}", device="cpu")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(BadInputError, match="no state dict of tensors"):
        read_state_dict(path)


# -- device and precision -------------------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="not a device name"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_autocast_contexts():
    x = torch.randn(4, 4)
    with autocast("cpu", "fp32"):
        assert (x @ x).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="fp8"):
        autocast("cpu", "fp8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_tokens_close_to_fp32(precision, source):
    model = tiny.copy_model(source).cuda()
    pixels, ids = _inputs()
    ref, ref_pooled = token_encoder(model).image(pixels)
    tok, pooled = token_encoder(model, precision=precision).image(pixels)
    assert tok.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(tok, ref, dim=-1).min() > 0.99


# -- a real architecture --------------------------------------------------------------------------


@pytest.mark.slow
def test_vit_b_16_random_weights_token_shapes():
    bb = load_backbone("ViT-B-16", device="cpu")
    enc = token_encoder(bb.model)
    tokens, pooled = enc.image(torch.randn(1, 3, 224, 224))
    assert tokens.shape == (1, 197, 512) and pooled.shape == (1, 512)
    ids = bb.tokenizer(["a red cube above a blue sphere"])
    ttokens, tpooled = enc.text(ids)
    assert ttokens.shape == (1, 77, 512) and tpooled.shape == (1, 512)
    torch.testing.assert_close(tpooled, bb.model.encode_text(ids), rtol=1e-4, atol=1e-5)
    assert enc.describe()["image"]["cls_token"] is True and enc.describe()["image"]["grid"] == [14, 14]
