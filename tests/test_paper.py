"""paper_compat: the reference DCSM evaluation (pipeline/paper/) against the reference's own formula.

Stores are written directly (P=197, D=8, no backbone run); the reference computation below is
written the way the DCSM reference code writes it (run_evals.py `evaluate_patch_model`,
models_and_dataloaders.py `CrossModalConvNetwork`/`standardize`), independently of pipeline/paper/.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

from dcsm_cache._openclip import open_clip
from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, ConfigError, InputNotFoundError, StoreMismatchError, UnknownNameError
from dcsm_cache.pipeline import paper
from dcsm_cache.pipeline.dcsm import CachedDataset, apply_functional_rows, column_mask, standardise
from dcsm_cache.pipeline.extract import tokenizer_record
from dcsm_cache.pipeline.items import DatasetBuilder, read_manifest, write_manifest
from dcsm_cache.pipeline.scorers import SCORERS
from dcsm_cache.pipeline.tasks.choice import EvalConfig, evaluate
from dcsm_cache.stores.feature_store import FeatureStore, StoreShape

TOKENIZER = open_clip.get_tokenizer("ViT-B-16")
WORDS = ["above", "below", "left", "right", "small", "big", "not", "no", "without", "but", "absent"]
BEER = "An image of A beer bottle above a armchair"
LONG = " ".join(["a"] * 31) + " above " + " ".join(["b"] * 3)  # "above" is word 31: past column 29
ITEMS = [  # (image, candidates): special words early and late, repeated, capitalised, with punctuation
    (
        0,
        [
            BEER,
            "An image of A beer bottle below a armchair",
            "An image of A beer bottle to the left of a armchair",
            "An image of A beer bottle to the right of a armchair",
        ],
    ),
    (
        1,
        [
            "This image features a cup, but not a fork",
            "This image features a fork, but not a cup",
            "This image features a fork",
            "This image does not feature a cup",
        ],
    ),
    (2, ["Not a dog left, of a cat", "no no dog left of a cat not", "a small dog without a big cat", "a red cube"]),
    (3, [LONG, "a b c", "schoolbus left of car", "a dog absent"]),
    (4, ["a red cube and a blue sphere", "a blue cube and a red sphere"]),
    (5, ["a cat above a dog", "a dog above a cat"]),
]


# ---------------------------------------------------------------- fixtures built in code


def unit(rng, *shape) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float16)


def make_store(tmp_path, items=ITEMS, name="whatsUp_A+paper", n_tokens=197, dim=8, width=32, seed=0):
    builder = DatasetBuilder(name, tmp_path / "data")
    for image, caps in items:
        builder.add(f"img{image}.png", caps)
    ds = builder.build()
    manifest = tmp_path / "manifest.json"
    fp = write_manifest(ds, manifest)
    rng = np.random.default_rng(seed)
    ids = TOKENIZER(list(ds.captions)).numpy()
    lengths = np.minimum((ids != 0).sum(1), width).astype(np.int32)
    n, m = len(ds.images), len(ds.captions)
    path = tmp_path / "store.zarr"
    store = FeatureStore.create(
        path,
        StoreShape(n, n_tokens, m, width, dim),
        {
            "backbone": "ViT-B-16",
            "manifest": str(manifest),
            "fingerprint": fp,
            "dataset": name,
            "backbone_id": "0" * 16,
            "tokenizer": tokenizer_record("ViT-B-16", TOKENIZER),
        },
    )
    store.write("image/tokens", 0, unit(rng, n, n_tokens, dim))
    store.write("image/pooled", 0, unit(rng, n, dim))
    store.write("image/valid", 0, np.ones(n, bool))
    store.write("text/tokens", 0, unit(rng, m, width, dim))
    store.write("text/ids", 0, ids[:, :width].astype(np.int32))
    store.write("text/length", 0, lengths)
    store.write("text/pooled", 0, unit(rng, m, dim))
    store.mark_done(0)
    return path, ds


def make_checkpoint(tmp_path, seed=0, words=None, **extra):
    """A checkpoint as the reference's `save_train_output` writes one (the keys eval reads, and more)."""
    torch.manual_seed(seed)
    net = ReferenceNet(14 * 14 + 1, 30)
    emb = nn.Embedding(len(words or WORDS), 14 * 14 + 1)
    with torch.no_grad():
        emb.weight = nn.Parameter((F.normalize(emb.weight, p=2, dim=1) + 1) / 3)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "model_state_dict": net.state_dict(),
            "external_logic_token_embeddings": emb,
            "learned_lookup": words,
            "clip_state_dict": {"logit_scale": torch.tensor(4.6)},
            **extra,
        },
        path,
    )
    return path, net.eval(), emb, list(words or WORDS)


# ---------------------------------------------------------------- the reference, as its code reads


class ReferenceNet(nn.Module):
    def __init__(self, img_seq, text_seq, hidden_dim=128, dropout_prob=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=hidden_dim // 32, kernel_size=(3, 3), padding=1)
        self.conv2 = nn.Conv2d(
            in_channels=hidden_dim // 32, out_channels=hidden_dim // 32, kernel_size=(3, 3), padding=1
        )
        self.dropout1 = nn.Dropout2d(p=dropout_prob)
        self.dropout2 = nn.Dropout2d(p=dropout_prob)
        self.dropout3 = nn.Dropout(p=dropout_prob)
        self.dropout4 = nn.Dropout(p=dropout_prob)
        self.fc1 = nn.Linear(hidden_dim // 32 * text_seq * img_seq, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, 1)

    def forward(self, x):
        batch_size1, batch_size2 = x.size(0), x.size(1)
        x = x.unsqueeze(2)
        x = x.reshape(batch_size1 * batch_size2, 1, x.size(3), x.size(4))
        x = self.dropout1(F.relu(self.conv1(x)))
        x = self.dropout2(F.relu(self.conv2(x)))
        x = x.view(batch_size1 * batch_size2, -1)
        x = self.dropout3(F.relu(self.fc1(x)))
        x = self.dropout4(self.fc2(x))
        return x.view(batch_size1, batch_size2, 1)


@torch.no_grad()
def reference_scores(image_tokens, text_tokens, texts, net, emb, words, text_seq=30):
    """One item: image [197, D], captions [K, L, D] (already cut to text_seq), texts [K]."""
    image_features = image_tokens.float().unsqueeze(0).unsqueeze(1)
    text_features = text_tokens.float().unsqueeze(0)
    cossim_mat = torch.einsum("bqie,lpte->bpit", image_features, text_features)
    new_cossim_mat = []
    for k, txt in enumerate(texts):
        sent = txt.split(" ")
        temp_k_cossim = cossim_mat[:, k, :, :]
        for sp_w in words:
            if sp_w in sent:
                idx = sent.index(sp_w)
                mid = emb(torch.tensor([words.index(sp_w)]))
                mid = mid.unsqueeze(2).repeat(1, 1, 1)
                temp_k_cossim = torch.cat([temp_k_cossim[:, :, :idx], mid, temp_k_cossim[:, :, idx + 1 :]], dim=-1)
                temp_k_cossim = temp_k_cossim[:, :, :text_seq]
        new_cossim_mat.append(temp_k_cossim)
    cossim_mat = torch.stack(new_cossim_mat, dim=1)
    cossim_mat = (cossim_mat - cossim_mat.mean()) / cossim_mat.std()
    return net(cossim_mat).squeeze()


# ---------------------------------------------------------------- (a) compat == the reference formula


def test_scores_match_the_reference_formula(tmp_path):
    store, ds = make_store(tmp_path)
    ckpt, net, emb, words = make_checkpoint(tmp_path)
    scorer = paper.load_reference_checkpoint(ckpt)
    data = CachedDataset.open(store, text_len=30)
    got = paper.score_items(data, list(ds.items), scorer, "cpu", batch_size=4)
    raw = FeatureStore.open(store)
    for it, scores in zip(ds.items, got):
        want = reference_scores(
            torch.from_numpy(raw.image_tokens[it.image]),
            torch.from_numpy(raw.text_tokens[list(it.candidates)])[:, :30],
            [ds.captions[c] for c in it.candidates],
            net,
            emb,
            words,
        )
        assert scores.shape == (len(it.candidates),)
        assert np.abs(scores - want.numpy()).max() <= 1e-5
    assert np.ptp(np.concatenate(got)) > 1e-3  # the scores are not degenerate


def test_evaluate_dcsm_paper_end_to_end(tmp_path):
    store, ds = make_store(tmp_path)
    ckpt, net, emb, words = make_checkpoint(tmp_path, seed=3)
    assert "dcsm-paper" in SCORERS
    result = evaluate(store, "dcsm-paper", EvalConfig(checkpoint=str(ckpt), device="cpu"))
    raw = FeatureStore.open(store)
    flags = [
        int(
            reference_scores(
                torch.from_numpy(raw.image_tokens[it.image]),
                torch.from_numpy(raw.text_tokens[list(it.candidates)])[:, :30],
                [ds.captions[c] for c in it.candidates],
                net,
                emb,
                words,
            ).argmax()
        )
        == 0
        for it in ds.items
    ]
    assert result["scorer"] == "dcsm-paper" and result["dataset"] == "whatsUp_A+paper"
    assert result["accuracy"] == pytest.approx(np.mean(flags)) and result["n_items"] == len(ITEMS)
    with pytest.raises(ConfigError):
        evaluate(store, "dcsm-paper", EvalConfig(device="cpu"))


def test_store_without_197_image_tokens_is_refused(tmp_path):
    store, _ = make_store(tmp_path, n_tokens=50)
    ckpt, *_ = make_checkpoint(tmp_path)
    with pytest.raises(StoreMismatchError, match="197"):
        evaluate(store, "dcsm-paper", EvalConfig(checkpoint=str(ckpt), device="cpu"))


# ---------------------------------------------------------------- (b) where default and compat differ


def test_functional_column_is_the_whitespace_index_not_the_token(tmp_path):
    store, ds = make_store(tmp_path)
    row = ds.captions.index(BEER)
    data = CachedDataset.open(store)  # default mode: real token positions
    cols = data.fr_columns[row].numpy()
    assert np.flatnonzero(cols >= 0).tolist() == [7] and data.fr_words[cols[7]] == "above"
    enc = TOKENIZER.encoder
    assert data.store.text_ids[row][6] == enc["bottle</w>"] and data.store.text_ids[row][7] == enc["above</w>"]
    src = paper.column_sources(BEER, WORDS)
    assert src[6] == -1 and [c for i, c in enumerate(src) if i != 6] == [i for i in range(30) if i != 6]
    # the maps: compat puts row "above" at column 6, default at column 7
    rng = np.random.default_rng(1)
    img, txt = torch.from_numpy(unit(rng, 1, 197, 8)), torch.from_numpy(unit(rng, 1, 1, 30, 8))
    fr = torch.rand(len(WORDS), 197)
    ref = paper.reference_maps(img, txt, torch.tensor(src).view(1, 1, 30), fr)
    default = apply_functional_rows(
        torch.einsum("bpd,bkld->bkpl", img.float(), txt.float()), data.fr_columns[row, :30].view(1, 1, 30), fr
    )
    assert torch.equal(ref[0, 0, :, 6], fr[0]) and torch.equal(default[0, 0, :, 7], fr[0])
    assert not torch.equal(ref[0, 0, :, 7], fr[0]) and not torch.equal(default[0, 0, :, 6], fr[0])


def test_caption_without_special_words_is_a_plain_cosine_map():
    caption = "a red cube and a blue sphere"
    assert paper.column_sources(caption, WORDS) == list(range(30))
    rng = np.random.default_rng(2)
    img, txt = torch.from_numpy(unit(rng, 1, 197, 8)), torch.from_numpy(unit(rng, 1, 2, 30, 8))
    src = torch.arange(30).expand(1, 2, 30)
    explicit = torch.einsum("bqie,lpte->bpit", img.float().unsqueeze(1), txt[0].float().unsqueeze(0))
    assert torch.equal(paper.reference_maps(img, txt, src, torch.rand(11, 197)), explicit)


def test_word_matching_rules_and_variants():
    src = paper.column_sources("This image features a cup, but not a fork", WORDS)
    assert src[5] == -(WORDS.index("but") + 1) and src[6] == -(WORDS.index("not") + 1)
    assert paper.column_sources("Not a dog left, of a cat", WORDS) == list(range(30))  # case and punctuation
    src = paper.column_sources("no no dog left of a cat not", WORDS)  # first occurrence
    assert src[0] == -(WORDS.index("no") + 1) and src[1] == 1 and src[3] == -(WORDS.index("left") + 1)
    assert paper.column_sources("schoolbus left of car", WORDS)[1] == -(WORDS.index("left") + 1)
    assert paper.column_sources(LONG, WORDS) == list(range(30))  # index >= 30
    assert paper.column_sources(LONG, WORDS, variant="insert") == list(range(30))
    # eval_simple.py inserts: later columns shift right and the last one drops
    assert paper.column_sources("a b above c", WORDS, variant="insert") == [0, 1, -1] + list(range(2, 29))
    assert paper.column_sources("a b above c", WORDS, variant="none") == list(range(30))
    with pytest.raises(ConfigError):
        paper.column_sources("a", WORDS, variant="shift")


def test_standardisation_spans_all_candidates_not_each_map():
    rng = np.random.default_rng(3)
    img, txt = torch.from_numpy(unit(rng, 2, 197, 8)), torch.from_numpy(unit(rng, 2, 4, 30, 8))
    txt[1, 2] *= 3  # one candidate on another scale: per-item statistics then differ from per-map ones
    maps = paper.reference_maps(img, txt, torch.arange(30).expand(2, 4, 30), torch.rand(11, 197))
    ref = paper.standardise_items(maps)
    for b in range(2):  # exactly the reference's whole-tensor formula, item by item
        assert torch.allclose(ref[b], (maps[b] - maps[b].mean()) / maps[b].std(), atol=1e-6)
    per_map = standardise(maps, torch.ones(2, 4, 30, dtype=torch.bool))
    assert per_map.mean(dim=(2, 3)).abs().max() < 1e-5
    assert ref.mean(dim=(2, 3)).abs().max() > 1e-3 and (ref - per_map).abs().max() > 1e-2
    # the default also masks pad columns to zero; the reference standardises them with the rest
    lengths = torch.full((2, 4), 10)
    assert standardise(maps, column_mask(lengths, 30))[..., 10:].abs().max() == 0 and ref[..., 10:].abs().max() > 0


# ---------------------------------------------------------------- (c) prefixes and rewrites on manifests


def _ds(name, captions):
    b = DatasetBuilder(name, "/nowhere")
    b.add("x.png", captions)
    return b.build()


def test_reference_captions_on_manifests(tmp_path):
    ds = paper.apply_reference_captions(_ds("whatsUp_A", ["A mug on a table", "A mug under a table"]), "whatsUp_A")
    write_manifest(ds, tmp_path / "m.json")
    back = read_manifest(tmp_path / "m.json")
    assert back.name == "whatsUp_A+paper"
    assert back.captions == ("An image of A mug above a table", "An image of A mug below a table")
    key = "clevr_bind_2obj_gen"
    clevr = paper.apply_reference_captions(_ds(key, ["red cube", "blue cube"]), key)
    assert clevr.captions == ("An image of a red cube", "An image of a blue cube")
    raw = _ds("coco_spatial1", ["a pizza topping", "a man in front of a bus"])
    assert paper.apply_reference_captions(raw, "coco_spatial1").captions == ("a pizza aboveping", "a man below a bus")
    base = paper.apply_reference_captions(raw, "coco_spatial1", dcsm=False)
    assert base.captions == raw.captions and base.name == "coco_spatial1+paper-baseline"
    assert paper.apply_reference_captions(_ds("vg_attr", ["the white plate"]), "vg_attr").captions == (
        "An image of the white plate",
    )


def test_captions_that_become_equal_are_stored_once():
    ds = paper.apply_reference_captions(_ds("vg_subset1", ["a dog behind a cat", "a dog above a cat"]), "vg_subset1")
    assert ds.captions == ("a dog above a cat",) and ds.items[0].candidates == (0, 0)


def test_reference_captions_errors():
    ds = paper.apply_reference_captions(_ds("whatsUp_B", ["a b"]), "whatsUp_B")
    with pytest.raises(BadInputError):
        paper.apply_reference_captions(ds, "whatsUp_B")
    with pytest.raises(UnknownNameError):
        paper.apply_reference_captions(_ds("x", ["a"]), "whatsup_a")


def test_items_command_paper_compat(tmp_path):
    root = tmp_path / "whatsup"
    (root / "controlled_images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "controlled_images" / "mug_on_table.jpeg", "JPEG")
    options = [
        "A mug on a table",
        "A mug under a table",
        "A mug to the left of a table",
        "A mug to the right of a table",
    ]
    (root / "controlled_images_dataset.json").write_text(
        json.dumps([{"image_path": "data/controlled_images/mug_on_table.jpeg", "caption_options": options}])
    )
    above = "An image of A mug above a table"
    for flag, name, first in (
        (["--paper-compat"], "whatsUp_A+paper", above),
        (["--paper-compat", "baseline"], "whatsUp_A+paper-baseline", above),
        ([], "whatsUp_A", "A mug on a table"),
    ):
        out = tmp_path / f"{name}.json"
        res = CliRunner().invoke(main, ["items", "whatsUp_A", "--root", str(root), "--out", str(out), *flag])
        assert res.exit_code == 0, res.output
        ds = read_manifest(out)
        assert ds.name == name and ds.captions[ds.items[0].candidates[0]] == first


# ---------------------------------------------------------------- (d) the reference's checkpoint


def test_loads_a_reference_checkpoint(tmp_path):
    path, net, emb, words = make_checkpoint(tmp_path)
    scorer = paper.load_reference_checkpoint(path)
    assert not scorer.training and scorer.words == tuple(WORDS) and (scorer.img_seq, scorer.text_seq) == (197, 30)
    assert torch.equal(scorer.fr_vectors, emb.weight.detach())
    for k, v in net.state_dict().items():
        assert torch.equal(scorer.net.state_dict()[k], v)


def test_learned_lookup_replaces_the_word_list(tmp_path):
    path, _, emb, _ = make_checkpoint(tmp_path, words=["left", "not"])
    scorer = paper.load_reference_checkpoint(path)
    assert scorer.words == ("left", "not") and scorer.fr_vectors.shape == (2, 197)
    assert scorer.sources(["a above b not c"])[0, 3].item() == -2 and scorer.sources(["a above b"])[0, 1] == 1


_RAN = []


def _would_run():
    _RAN.append(True)


class Pickled:
    """Stands in for the pickled CLIPTokenizer the reference saves; loading must not run its code."""

    def __reduce__(self):
        return (_would_run, ())


def test_foreign_objects_in_the_checkpoint_are_inert(tmp_path):
    path, *_ = make_checkpoint(
        tmp_path, clip_text_tokenizer=Pickled(), epoch=3, optimizer_state_dict={"state": {}, "param_groups": []}
    )
    paper.load_reference_checkpoint(path)
    assert not _RAN


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ConfigError):
        paper.load_reference_checkpoint(None)
    with pytest.raises(InputNotFoundError):
        paper.load_reference_checkpoint(tmp_path / "none.pt")
    torch.save({"model_state_dict": {}}, tmp_path / "a.pt")
    with pytest.raises(BadInputError, match="external_logic_token_embeddings"):
        paper.load_reference_checkpoint(tmp_path / "a.pt")
    torch.save(
        {
            "model_state_dict": {"fc2.weight": torch.zeros(1, 128)},
            "external_logic_token_embeddings": torch.zeros(11, 197),
        },
        tmp_path / "b.pt",
    )
    with pytest.raises(BadInputError, match="model_state_dict"):
        paper.load_reference_checkpoint(tmp_path / "b.pt")
    (tmp_path / "c.pt").write_text("not a checkpoint")
    with pytest.raises(BadInputError):
        paper.load_reference_checkpoint(tmp_path / "c.pt")


# ---------------------------------------------------------------- reference text tokens (pad columns)


def _tiny_clip():
    torch.manual_seed(0)
    return open_clip.model.CLIP(
        embed_dim=16,
        quick_gelu=True,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    ).eval()


@torch.no_grad()
def test_reference_text_tokens_keep_real_columns_and_mask_pads():
    model = _tiny_clip()
    texts = ["a dog above a cat", "a red cube"]
    ids = TOKENIZER(texts, context_length=30)
    lengths = (ids != 0).sum(1)
    tokens, pooled = paper.reference_text_tokens(model, ids, lengths)
    # real positions are what open_clip's own causal forward gives; pooled is encode_text
    x = (
        model.ln_final(
            model.transformer(
                model.token_embedding(TOKENIZER(texts)) + model.positional_embedding, attn_mask=model.attn_mask
            )
        )
        @ model.text_projection
    )
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(tokens[b, :n], x[b, :n], atol=1e-5)
        assert not torch.allclose(tokens[b, n:], x[b, n:30], atol=1e-3)  # open_clip's pads are another thing
    assert torch.allclose(pooled, model.encode_text(TOKENIZER(texts)), atol=1e-5)
    # a column depends on neither later positions nor how far the caption is padded
    longer, _ = paper.reference_text_tokens(model, TOKENIZER(texts, context_length=40), lengths)
    assert torch.allclose(longer[:, :30], tokens, atol=1e-5)


@pytest.mark.slow
@torch.no_grad()
def test_reference_text_tokens_equal_hf_clip_with_max_length_padding():
    """The reference's text path, HF `text_projection(text_model(**tok).last_hidden_state)` with
    `padding="max_length"`: same weights, every column (pads included) agrees."""
    transformers = pytest.importorskip("transformers")
    model = _tiny_clip()
    cfg = transformers.CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=16,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    hf = transformers.CLIPTextModelWithProjection(cfg).eval()
    t = hf.text_model
    model.token_embedding.weight.copy_(t.embeddings.token_embedding.weight)
    model.positional_embedding.copy_(t.embeddings.position_embedding.weight)
    for blk, lay in zip(model.transformer.resblocks, t.encoder.layers):
        a = lay.self_attn
        blk.ln_1.load_state_dict(lay.layer_norm1.state_dict())
        blk.ln_2.load_state_dict(lay.layer_norm2.state_dict())
        blk.attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        blk.attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        blk.attn.out_proj.load_state_dict(a.out_proj.state_dict())
        blk.mlp.c_fc.load_state_dict(lay.mlp.fc1.state_dict())
        blk.mlp.c_proj.load_state_dict(lay.mlp.fc2.state_dict())
    model.ln_final.load_state_dict(t.final_layer_norm.state_dict())
    model.text_projection.copy_(hf.text_projection.weight.T)
    texts = ["An image of A beer bottle above a armchair", "a red cube", " ".join(["dog"] * 40)]
    ids = TOKENIZER(texts, context_length=30)  # truncation keeps EOT last, as HF truncation=True does
    lengths = (ids != 0).sum(1)
    mask = torch.arange(30).unsqueeze(0) < lengths.unsqueeze(1)
    want = hf.text_projection(t(input_ids=ids.masked_fill(~mask, 49407), attention_mask=mask.long()).last_hidden_state)
    got, _ = paper.reference_text_tokens(model, ids, lengths)
    assert torch.allclose(got, want, atol=1e-5)
