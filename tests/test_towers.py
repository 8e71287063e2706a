"""Token adapters: one conformance test per tower family, on tiny random-weight models of each family."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from dcsm_cache._openclip import open_clip
from dcsm_cache.errors import BadInputError, ConfigError
from dcsm_cache.pipeline.tokens.encoder import IMAGE_ADAPTERS, TEXT_ADAPTERS, token_encoder

import tiny_families as tiny

B = 3


@pytest.fixture(scope="module")
def has_hf(tmp_path_factory) -> bool:
    return tiny.register(tmp_path_factory.mktemp("tiny_configs"))


@pytest.fixture(scope="module")
def models(has_hf):
    cache = {}

    def get(fam: tiny.Family):
        if fam.hf and not has_hf:
            pytest.skip("transformers is not installed: the Hugging Face text tower cannot be built")
        if fam.name not in cache:
            cache[fam.name] = tiny.build(fam.name)
        return cache[fam.name]

    return get


def _pixels(model, seed=1):
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    return torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _ids(fam: tiny.Family, model, seed=2):
    """Token ids with a start token, words, an end token that is the largest id (CLIP's argmax pool),
    then padding (0, or the HF config's pad id)."""
    g = torch.Generator().manual_seed(seed)
    length = 16 if fam.hf else model.context_length
    vocab = 64
    pad = model.text.config.pad_token_id if fam.hf else 0
    ids = torch.full((B, length), pad, dtype=torch.long)
    for b, n in enumerate([5, 9, min(length, 16)]):
        ids[b, :n] = torch.randint(3, vocab - 1, (n,), generator=g)
        ids[b, 0] = 2 if fam.hf else 1
        ids[b, n - 1] = vocab - 1
    return ids


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fam", tiny.FAMILIES, ids=lambda f: f.name)
def test_family_conformance(fam, models):
    model = models(fam)
    enc = token_encoder(model)
    dim = model.encode_image(_pixels(model), normalize=False).shape[-1]

    pixels = _pixels(model)
    tokens, pooled = enc.image(pixels)
    _close(pooled, model.encode_image(pixels, normalize=False))
    assert tokens.shape == (B, fam.n_image, dim)
    if fam.image_pool == "first":
        _close(pooled, tokens[:, 0])
    elif fam.image_pool == "mean":
        _close(pooled, tokens.mean(1))

    ids = _ids(fam, model)
    ttokens, tpooled = enc.text(ids)
    _close(tpooled, model.encode_text(ids, normalize=False))
    assert ttokens.shape == (B, ids.shape[1], dim)
    rows = torch.arange(B)
    expect = {
        "argmax": lambda: ttokens[rows, ids.argmax(1)],
        "last": lambda: ttokens[:, -1],
        "first": lambda: ttokens[:, 0],
    }.get(fam.text_pool)
    if expect is not None:
        _close(tpooled, expect())

    d = enc.describe()
    assert d["image"]["family"] == fam.image and d["text"]["family"] == fam.text
    assert d["image"]["projected"] is (fam.uniform is None)
    assert d["image"]["token_path"] == ("direct" if fam.uniform is None else "value-path")
    assert d["text"]["projected"] is True
    if d["image"].get("grid"):
        g = d["image"]["grid"]
        assert g[0] * g[1] + int(d["image"]["cls_token"]) == fam.n_image


@pytest.mark.parametrize("fam", [f for f in tiny.FAMILIES if f.uniform], ids=lambda f: f.name)
def test_value_path_tokens_average_to_the_pooled_vector(fam, models):
    """With the attention made uniform (and the pool's non-linear pieces switched off), the model's own
    pooled embedding must be exactly the mean of the value-path tokens: the construction is the pool's."""
    model = tiny.copy_model(models(fam))
    fam.uniform(model)
    tokens, pooled = token_encoder(model).image(_pixels(model))
    _close(pooled, model.encode_image(_pixels(model), normalize=False))
    _close(pooled, tokens.mean(1))


def test_every_adapter_family_has_a_tiny_model():
    families = {f.image for f in tiny.FAMILIES} | {f.text for f in tiny.FAMILIES}
    families |= {"blip-image", "blip-text"}  # not open_clip models: tests/test_blip.py checks them against BLIP's heads
    adapters = {a.family for a in IMAGE_ADAPTERS} | {a.family for a in TEXT_ADAPTERS}
    assert adapters <= families, f"add a tiny model to tests/tiny_families.py for {adapters - families}"


def test_tokens_are_not_the_coca_pooler_queries(models):
    """CoCa's visual tower returns 255 (here 7) attention-pooled queries as its 'tokens'; ours are patches."""
    fam = next(f for f in tiny.FAMILIES if f.image == "vit-attnpool")
    model = models(fam)
    tokens, _ = token_encoder(model).image(_pixels(model))
    _, queries = model.visual(_pixels(model))
    assert queries.shape[1] == 7 and tokens.shape[1] == 1 + 4 * 4


def test_bf16_autocast_keeps_the_projection_in_fp32(models):
    fam = tiny.FAMILIES[0]
    model = models(fam)
    pixels = _pixels(model)
    ref_tokens, ref_pooled = token_encoder(model).image(pixels)
    tokens, pooled = token_encoder(model, precision="bf16").image(pixels)
    assert tokens.dtype == torch.float32 and pooled.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(tokens, ref_tokens, dim=-1)
    assert cos.min() > 0.99
    assert token_encoder(model, precision="bf16").describe()["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        token_encoder(model, precision="fp8").image(pixels)


def test_unsupported_tower_says_which(models):
    model = tiny.copy_model(models(tiny.FAMILIES[0]))
    model.visual.pool_type = "none"
    with pytest.raises(BadInputError, match="image tower VisionTransformer with pooling 'none'"):
        token_encoder(model)


_SIZE = (
    ("bigG", 9),
    ("E-14", 9),
    ("g-14", 8),
    ("gopt", 8),
    ("H-", 7),
    ("xxlarge", 7),
    ("XL", 6),
    ("SO400M", 6),
    ("xlarge", 6),
    ("S1", 6),
    ("L-", 5),
    ("large", 5),
    ("x64", 5),
    ("x16", 4),
    ("x4", 3),
)


def _signature(cfg: dict) -> str:
    """What decides which adapter a config gets (sizes stripped), to build one model per kind."""
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    sig = {k: v.get(k) for k in ("timm_pool", "timm_proj", "attentional_pool", "pool_type", "final_ln_after_pool")}
    sig["timm"] = re.sub(
        r"\d+|tiny|small|base|medium|x*large|huge|giant|gopt|so400m|_w\b|_d\b", "", v.get("timm_model_name") or ""
    )
    sig["resnet"] = isinstance(v.get("layers"), (list, tuple))
    sig.update({f"text_{k}": t.get(k) for k in ("embed_cls", "pool_type", "proj_type", "proj_bias", "no_causal_mask")})
    return json.dumps([sig, "multimodal_cfg" in cfg, cfg.get("custom_text", False)], sort_keys=True, default=str)


def _size(name: str) -> int:
    return max([r for k, r in _SIZE if k in name] or [2])


def _one_layer(cfg: dict) -> dict:
    """The config's towers with one transformer layer each (timm trunks keep their depth)."""
    towers = {k: copy.deepcopy(cfg[k]) for k in ("vision_cfg", "text_cfg", "multimodal_cfg") if k in cfg}
    for tower in towers.values():
        if isinstance(tower.get("layers"), int):
            tower["layers"] = 1
    return towers


@pytest.mark.slow
def test_every_open_clip_architecture_has_an_adapter():
    """Loop over open_clip's registry: one model of each kind (by config signature), built on the meta
    device (no memory, no compute) with one layer per open_clip tower, must dispatch to an adapter;
    all but the giant timm trunks also run, and their token and pooled shapes must agree with the
    model's own encode_image/encode_text. Hugging Face text towers need a download: skipped."""
    kinds: dict[str, list[str]] = {}
    for name in open_clip.list_models():
        cfg = open_clip.get_model_config(name) or {}
        if "hf_model_name" not in cfg.get("text_cfg", {}):
            kinds.setdefault(_signature(cfg), []).append(name)
    problems, built = [], 0
    for names in kinds.values():
        name = min(names, key=lambda n: (_size(n), len(n)))
        try:
            with torch.device("meta"):
                model = open_clip.create_model(
                    name, pretrained_text=False, device="meta", **_one_layer(open_clip.get_model_config(name))
                )
        except Exception:  # a timm trunk this timm version lacks: not ours to test
            continue
        built += 1
        try:
            enc = token_encoder(model)
            if _size(name) >= 6:
                continue
            size = model.visual.image_size
            pixels = torch.empty(1, 3, *((size, size) if isinstance(size, int) else size), device="meta")
            tokens, pooled = enc.image(pixels)
            ids = torch.zeros(1, model.context_length, dtype=torch.long, device="meta")
            ttokens, tpooled = enc.text(ids)
            dim = model.encode_image(pixels, normalize=False).shape[-1]
            assert pooled.shape == tpooled.shape == (1, dim) and tokens.shape[-1] == ttokens.shape[-1] == dim
            assert ttokens.shape[1] == ids.shape[1] and tokens.shape[1] > 1
        except (BadInputError, AssertionError, RuntimeError) as err:
            problems.append(f"{name} (and {len(names) - 1} like it): {type(err).__name__}: {err}")
    assert not problems, "\n".join(problems)
    assert built >= 15, f"only {built} of {len(kinds)} kinds of open_clip model could be built on meta"
