"""DCSM assembly from the cache against a direct computation, functional columns, standardisation."""

from __future__ import annotations

import numpy as np
import torch

from dcsm_cache._openclip import open_clip
from dcsm_cache.pipeline.dcsm import (
    CachedDataset,
    FunctionalWords,
    apply_functional_rows,
    column_mask,
    similarity_maps,
    standardise,
)


def test_maps_from_cache_equal_direct_cosines(stores):
    """S[b, k] = I_b @ T_c.T, computed here with plain numpy loops from the raw store arrays."""
    data = CachedDataset.open(stores["shapes_spatial"])
    it = data.dataset.items[3]
    tok, _ = data.image_rows(np.array([it.image]))
    txt = data.text_tokens[list(it.candidates)]
    s = similarity_maps(tok, txt.unsqueeze(0))[0].numpy()
    img = data.store.image_tokens[it.image].astype(np.float64)
    for k, c in enumerate(it.candidates):
        t = data.store.text_tokens[c].astype(np.float64)
        direct = np.array([[img[p] @ t[l] for l in range(t.shape[0])] for p in range(img.shape[0])])
        np.testing.assert_allclose(s[k][:, : t.shape[0]], direct, atol=1e-4)
        assert np.abs(direct).max() <= 1.0 + 1e-2  # cosines of unit vectors


def test_functional_columns_are_the_words_real_token_positions():
    tok = open_clip.get_tokenizer("ViT-B-16")
    fw = FunctionalWords.for_tokenizer(tok)
    assert "above" in fw.words and "without" in fw.words
    caption = "An image of A beer bottle above a armchair"
    ids = tok([caption]).numpy()
    cols = fw.columns(ids)[0]
    (pos,) = np.nonzero(cols >= 0)
    # decode the token at that position: it is "above" (the reference's whitespace index, 6, is one early)
    assert pos.tolist() == [7]
    assert fw.words[cols[7]] == "above"
    assert tok.decode([int(ids[0, 7])]).strip() == "above"


def test_apply_functional_rows_replaces_only_marked_columns():
    maps = torch.randn(2, 3, 5, 4)
    cols = torch.full((2, 3, 4), -1)
    cols[1, 2, 3] = 1
    vectors = torch.arange(10.0).view(2, 5)
    out = apply_functional_rows(maps, cols, vectors)
    assert torch.equal(out[1, 2, :, 3], vectors[1])
    mask = torch.ones_like(maps, dtype=torch.bool)
    mask[1, 2, :, 3] = False
    assert torch.equal(out[mask], maps[mask])


def test_standardise_over_valid_columns_only():
    maps = torch.randn(1, 2, 6, 5) * 3 + 1
    lengths = torch.tensor([[5, 3]])
    out = standardise(maps, column_mask(lengths, 5))
    valid = out[0, 1, :, :3]
    assert abs(valid.mean().item()) < 1e-5 and abs(valid.std(unbiased=False).item() - 1) < 1e-3
    assert torch.all(out[0, 1, :, 3:] == 0)
    ref = maps[0, 0]
    np.testing.assert_allclose(out[0, 0].numpy(), ((ref - ref.mean()) / ref.std(unbiased=False)).numpy(), atol=1e-4)


def test_an_untrained_maxsim_residual_scorer_is_maxsim_and_its_maxsim_is_the_scorers(stores):
    """`maxsim_residual` with the last fc zero-initialised: the scorer's scores are exactly `maxsim_scale` ×
    the `maxsim` scorer's, item for item; and a trained correction moves them."""
    from dcsm_cache.pipeline.dcsm import DCSMScorer, ScorerConfig
    from dcsm_cache.pipeline.tasks.scoring import maxsim_scores

    data = CachedDataset.open(stores["shapes_spatial"], text_len=16)
    cfg = ScorerConfig(global_cosine=False, maxsim_residual=True, maxsim_scale=7.0)
    scorer = DCSMScorer(cfg, data.n_tokens, 16, len(data.fr_words)).eval()
    items = data.dataset.items
    fn = maxsim_scores(data)
    with torch.no_grad():
        for _, tok, pooled, rows in data.item_batches(items, 8):
            got = data.score(scorer, tok, pooled, rows, "cpu")
            torch.testing.assert_close(got, 7.0 * fn(tok, pooled, rows), rtol=0, atol=1e-5)
            torch.nn.init.constant_(scorer.fc[-1].bias, 1.0)
            torch.nn.init.normal_(scorer.fc[-1].weight)
            assert not torch.allclose(data.score(scorer, tok, pooled, rows, "cpu"), got)
            break
