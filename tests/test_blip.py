"""BLIP as a backbone (tokens/blip.py) and the blip-itm scorer (tasks/itm.py), on a tiny random
`BlipForImageTextRetrieval` saved the way `save_pretrained` saves it, with a BERT word-piece vocabulary
written here; and the same files laid out as a Hugging Face hub cache, loaded under HF_HUB_OFFLINE=1.
Every check compares against the model's own heads and its own processor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcsm_cache.errors import ConfigError, DcsmCacheError, InputNotFoundError
from dcsm_cache.pipeline.dcsm import FUNCTIONAL_WORDS
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.tasks import EvalConfig, evaluate
from dcsm_cache.pipeline.tokens import load_backbone, parse_backbone, token_encoder, weights_cached
from dcsm_cache.workflow.plan import _requests
from dcsm_cache.pipeline.tokens.blip import BlipCLIP, itm_scores

transformers = pytest.importorskip("transformers")

WORDS = (
    "a an the of to and picture photo image drawing red green blue yellow purple orange black pink brown "
    "circle square triangle star cross diamond"
).split()
CAPTIONS = ["a red circle above a blue square", "a blue circle above a red square", "a star without a cross"]
REV = "0" * 40


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory) -> Path:
    """A tiny BLIP retrieval model, its BERT tokenizer and its image processor, as save_pretrained writes them."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor

    out = tmp_path_factory.mktemp("blip-itm-tiny")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys([*WORDS, *FUNCTIONAL_WORDS])]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True).save_pretrained(out)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        encoder_hidden_size=32,
        intermediate_size=37,
        num_attention_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=32, intermediate_size=37, num_attention_heads=2, num_hidden_layers=2, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    cfg = BlipConfig(text_config=text, vision_config=vision, projection_dim=16, image_text_hidden_size=16)
    BlipForImageTextRetrieval(cfg).eval().save_pretrained(out)
    BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def bb(blip_dir):
    return load_backbone(f"blip@{blip_dir}", "cpu")


@pytest.fixture(scope="module")
def hf_model(blip_dir):
    from transformers import BlipForImageTextRetrieval

    return BlipForImageTextRetrieval.from_pretrained(blip_dir).eval()


def _inputs(bb, blip_dir):
    from transformers import BlipProcessor

    images = [_image(i) for i in range(len(CAPTIONS))]
    proc = BlipProcessor.from_pretrained(blip_dir)
    ref = proc(images=images, text=CAPTIONS, padding="max_length", max_length=35, return_tensors="pt")
    pixels = torch.stack([bb.preprocess(im) for im in images])
    ids = bb.tokenizer(CAPTIONS)
    return pixels, ids, ref


def test_preprocessing_and_tokenizer_equal_blips_own_processor(bb, blip_dir):
    pixels, ids, ref = _inputs(bb, blip_dir)
    torch.testing.assert_close(pixels, ref["pixel_values"], atol=1e-5, rtol=0)
    assert torch.equal(ids, ref["input_ids"])
    assert isinstance(bb.model, BlipCLIP) and bb.identity["arch"] == "blip"


def test_itc_pooled_embeddings_and_token_shapes(bb, hf_model, blip_dir):
    pixels, ids, ref = _inputs(bb, blip_dir)
    enc = token_encoder(bb.model)
    img_tok, img_pooled = enc.image(pixels)
    txt_tok, txt_pooled = enc.text(ids)
    with torch.no_grad():
        own = hf_model(
            input_ids=ids, attention_mask=ref["attention_mask"], pixel_values=pixels, use_itm_head=False
        ).itm_score
    ours = torch.nn.functional.normalize(img_pooled, dim=-1) @ torch.nn.functional.normalize(txt_pooled, dim=-1).T
    torch.testing.assert_close(ours, own, atol=1e-5, rtol=0)
    assert img_tok.shape == (3, 16, 16)  # (32 / 8)^2 patches, [CLS] left out, in the 16-d ITC space
    assert txt_tok.shape == (3, 35, 16)
    torch.testing.assert_close(txt_tok[:, 0], txt_pooled)  # the text [CLS] is token 0, as CLIP's start token
    d = enc.describe()
    assert (d["image"]["family"], d["text"]["family"], d["image"]["grid"]) == ("blip-image", "blip-text", [4, 4])


def test_itm_scores_equal_the_models_own_head(bb, hf_model, blip_dir):
    pixels, ids, ref = _inputs(bb, blip_dir)
    with torch.no_grad():
        own = hf_model(input_ids=ids, attention_mask=ref["attention_mask"], pixel_values=pixels).itm_score
    torch.testing.assert_close(itm_scores(bb.model, pixels, ids), own.softmax(-1)[:, 1], atol=1e-5, rtol=0)


def test_hub_id_from_a_laid_out_cache_offline(blip_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    base = cache / "models--dcsmtest--blip-itm-tiny"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(REV)
    shutil.copytree(blip_dir, base / "snapshots" / REV)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    assert weights_cached(parse_backbone("hf-hub:dcsmtest/blip-itm-tiny"), str(cache))  # what the plan checks
    from_hub = load_backbone("hf-hub:dcsmtest/blip-itm-tiny", "cpu", cache_dir=str(cache))
    from_dir = load_backbone(f"blip@{blip_dir}", "cpu")
    assert from_hub.weights_sha256 == from_dir.weights_sha256 and from_hub.weights_sha256
    pix = from_dir.preprocess(_image(5)).unsqueeze(0)
    torch.testing.assert_close(from_hub.model.encode_image(pix), from_dir.model.encode_image(pix))
    (base / "snapshots" / REV / "config.json").unlink()  # a repo this machine does not have
    with pytest.raises(InputNotFoundError, match="not cached"):
        load_backbone("hf-hub:dcsmtest/blip-itm-tiny", "cpu", cache_dir=str(cache))


def test_a_folder_without_weights_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "blip"}))
    with pytest.raises(InputNotFoundError, match="model.safetensors") as err:
        load_backbone(f"blip@{tmp_path}", "cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(DcsmCacheError, match="not a folder"):
        load_backbone(f"blip@{tmp_path / 'nothing'}", "cpu")
    assert parse_backbone(f"blip@{tmp_path}").arch == "blip"


@pytest.mark.slow
def test_extract_and_score_with_cosine_dcsm_and_itm(blip_dir, manifests, stores, tmp_path):
    """The whole path: a shapes manifest extracted with BLIP, scored by its ITC cosine and its ITM head."""
    store = tmp_path / "blip.zarr"
    extract(manifests["shapes_spatial"], f"blip@{blip_dir}", store, ExtractConfig(device="cpu", progress=False))
    cos = evaluate(store, "cosine", EvalConfig(device="cpu"))
    itm = evaluate(store, "blip-itm", EvalConfig(device="cpu"))
    assert cos["n_items"] == itm["n_items"] > 0
    assert 0 <= itm["accuracy"] <= 1 and itm["scorer"] == "blip-itm"
    with pytest.raises(ConfigError, match="needs a BLIP backbone"):
        evaluate(stores["shapes_spatial"], "blip-itm", EvalConfig(device="cpu"))


def test_a_backbones_own_scorers_join_its_cosine():
    config = {
        "backbones": {"clip": {"model": "ViT-B-32"}, "blip": {"model": "blip@weights/blip", "scorers": ["blip-itm"]}},
        "evaluate": {
            "backbones": ["clip", "blip"],
            "benchmarks": {"a": {"scorers": ["cosine"]}, "a+paper": {"scorers": ["dcsm-paper"]}},
        },
    }
    expected = [("blip", "a", "blip-itm", ()), ("blip", "a", "cosine", ()), ("clip", "a", "cosine", ())]
    assert sorted(_requests(config, {})) == expected  # no training recipes; no other dataset read
