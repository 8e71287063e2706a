"""pipeline/analysis and `dcsm-cache analyze` / `stats`: CKA against numpy, chunk budgets, UMAP, statistics.

Stores here are written directly (synthetic arrays over the manifest of a tiny rendered domains set),
so every expected value is computed from the same arrays in memory; one test reads a store extracted
with the tiny random backbone (conftest's `stores`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, DcsmCacheError
from dcsm_cache.pipeline.analysis import AnalysisConfig, StoreView, cka_domains, cka_numpy, cka_stores, compute
from dcsm_cache.pipeline.analysis.plots import read_matrix
from dcsm_cache.pipeline.analysis.stats import store_stats
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import read_manifest, write_manifest
from dcsm_cache.pipeline.world.domains import DomainsConfig, generate_domains
from dcsm_cache.stores.feature_store import FeatureStore, StoreShape

P, D, L = 4, 6, 5


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("domains")
    cfg = DomainsConfig(image_size=32, min_size=12, max_size=20, n_train=1, n_eval=5, domains=("real", "sketch"))
    generate_domains(cfg, root)
    path = root / "eval.json"
    write_manifest(load_benchmark("domainnet", str(root / "eval"), templates=["a {}"]), path)
    return path


def write_store(path: Path, manifest: Path, pooled: np.ndarray, tokens: np.ndarray, seed: int = 0) -> Path:
    """A complete store of these image arrays (float16) and random unit text tokens, over `manifest`."""
    from dcsm_cache.pipeline.items import manifest_fingerprint

    ds = read_manifest(manifest)
    rng = np.random.default_rng(seed)
    m = len(ds.captions)
    text = rng.standard_normal((m, L, tokens.shape[2])).astype(np.float32)
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    shape = StoreShape(len(pooled), tokens.shape[1], m, L, tokens.shape[2])
    attrs = {"manifest": str(manifest), "fingerprint": manifest_fingerprint(manifest), "backbone": "synthetic"}
    fs = FeatureStore.create(path, shape, attrs | {"backbone_id": "synthetic", "dataset": ds.name})
    fs.write("image/pooled", 0, pooled.astype(np.float16))
    fs.write("image/tokens", 0, tokens.astype(np.float16))
    fs.write("image/valid", 0, np.ones(len(pooled), bool))
    fs.write("text/tokens", 0, text.astype(np.float16))
    fs.write("text/pooled", 0, text[:, 0].astype(np.float16))
    fs.write("text/length", 0, rng.integers(1, L + 1, m).astype(np.int32))
    fs.write("text/ids", 0, np.ones((m, L), np.int32))
    fs.mark_done(0)
    return path


@pytest.fixture(scope="module")
def arrays(manifest) -> dict:
    n = len(read_manifest(manifest).images)
    rng = np.random.default_rng(1)
    tokens = rng.standard_normal((n, P, D)).astype(np.float16).astype(np.float32)
    other = (tokens @ rng.standard_normal((D, D + 2)) + 0.5 * rng.standard_normal((n, P, D + 2))).astype(np.float16)
    return {"a": tokens, "b": other.astype(np.float32)}


@pytest.fixture(scope="module")
def pair(tmp_path_factory, manifest, arrays) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("stores")
    a = write_store(out / "a.zarr", manifest, arrays["a"].mean(1), arrays["a"])
    b = write_store(out / "b.zarr", manifest, arrays["b"].mean(1), arrays["b"], seed=1)
    return a, b


def test_cka_matches_numpy_pooled_and_tokens(pair, arrays):
    a, b = arrays["a"], arrays["b"]
    names, m = cka_stores(pair, AnalysisConfig(progress=False))
    assert names == [str(p) for p in pair]
    want = cka_numpy(a.mean(1).astype(np.float16).astype(np.float32), b.mean(1).astype(np.float16).astype(np.float32))
    assert m[0, 1] == pytest.approx(want, rel=1e-9) and m[1, 0] == m[0, 1]
    assert 0.1 < want < 0.99  # related, not identical: a check that can fail
    _, t = cka_stores(pair, AnalysisConfig(features="tokens", progress=False))
    assert t[0, 1] == pytest.approx(cka_numpy(a.reshape(-1, D), b.reshape(-1, D + 2)), rel=1e-9)
    assert np.allclose(np.diag(t), 1.0)


def test_cka_is_one_with_itself_and_invariant_to_an_orthogonal_transform(tmp_path, pair, manifest, arrays):
    a = arrays["a"]
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((D, D)))
    rotated = write_store(tmp_path / "q.zarr", manifest, (a @ q).mean(1), a @ q)
    names, m = cka_stores([pair[0], pair[0], rotated], AnalysisConfig(features="tokens", progress=False))
    assert m[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert m[0, 2] == pytest.approx(1.0, abs=2e-3)  # float16 storage of the rotated copy
    x = np.random.default_rng(4).standard_normal((50, 7))
    assert cka_numpy(x, x @ np.linalg.qr(np.random.default_rng(5).standard_normal((7, 7)))[0]) == pytest.approx(1.0)


def test_a_chunk_budget_far_below_the_store_gives_the_in_memory_answer(pair):
    full = StoreView.open(pair[0], AnalysisConfig(progress=False))
    small_cfg = AnalysisConfig(features="tokens", chunk_bytes=2 * P * D * 2, progress=False)  # two image rows
    small = StoreView.open(pair[0], small_cfg)
    x = small.features("tokens", small.rows())
    store_bytes = full.store.image_tokens.nbytes
    assert small.array("image/tokens").numblocks[0] >= 10
    assert max(c * P * D * 2 for c in small.array("image/tokens").chunks[0]) <= small_cfg.chunk_bytes < store_bytes / 10
    (got,) = compute([x], small_cfg)
    assert np.array_equal(got, full.store.image_tokens[:].reshape(-1, D).astype(np.float32))
    _, low = cka_stores(pair, small_cfg)
    _, high = cka_stores(pair, AnalysisConfig(features="tokens", progress=False))
    assert np.allclose(low, high, rtol=1e-10)


def test_cka_across_domains_pairs_the_same_scenes(pair, arrays):
    view = StoreView.open(pair[1], AnalysisConfig(progress=False))
    domains, m = cka_domains(pair[1], AnalysisConfig(progress=False))
    assert domains == ["real", "sketch"]
    pooled = view.store.image_pooled[:].astype(np.float32)
    rows = {d: sorted(view.rows(d), key=lambda r: view.key[r]) for d in domains}
    assert [view.key[r] for r in rows["real"]] == [view.key[r] for r in rows["sketch"]]
    assert m[0, 1] == pytest.approx(cka_numpy(pooled[rows["real"]], pooled[rows["sketch"]]), rel=1e-9)


def test_cka_refuses_stores_of_other_images(tmp_path, pair):
    cfg = DomainsConfig(image_size=32, min_size=12, max_size=20, n_train=1, n_eval=3, domains=("real", "sketch"))
    generate_domains(cfg, tmp_path / "d")
    write_manifest(load_benchmark("domainnet", str(tmp_path / "d" / "eval"), templates=["a {}"]), tmp_path / "m.json")
    n = len(read_manifest(tmp_path / "m.json").images)
    tokens = np.random.default_rng(0).standard_normal((n, P, D))
    other = write_store(tmp_path / "o.zarr", tmp_path / "m.json", tokens.mean(1), tokens)
    with pytest.raises(BadInputError, match="different images"):
        cka_stores([pair[0], other], AnalysisConfig(progress=False))


def test_stats_counts_nonfinite_values_and_matches_numpy(tmp_path, manifest, arrays):
    tokens = arrays["a"].copy()
    tokens[0, 0, 0], tokens[1, 1, 1] = np.nan, np.inf
    path = write_store(tmp_path / "s.zarr", manifest, arrays["a"].mean(1), tokens)
    st = store_stats(path, AnalysisConfig(chunk_bytes=3 * P * D * 2, progress=False))
    assert st["nonfinite"]["image/tokens"] == {"nan": 1, "inf": 1}
    assert st["nonfinite"]["image/pooled"] == {"nan": 0, "inf": 0}
    fs = FeatureStore.open(path)
    pooled = fs.image_pooled[:].astype(np.float32)
    assert st["norms"]["image_pooled"]["mean"] == pytest.approx(np.linalg.norm(pooled, axis=1).mean(), rel=1e-5)
    ds, text, length = read_manifest(manifest), fs.text_tokens[:].astype(np.float32), fs.text_length[:]
    img = fs.image_tokens[:].astype(np.float32)
    img /= np.maximum(np.linalg.norm(img, axis=-1, keepdims=True), 1e-12)
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    ok = [img[it.image] @ text[it.candidates[it.correct], : length[it.candidates[it.correct]]].T for it in ds.items]
    ok = np.concatenate([v.ravel() for v in ok])
    got = st["dcsm"]["correct"]
    assert got["n"] + got["nonfinite"] == len(ok) == sum(P * length[it.candidates[it.correct]] for it in ds.items)
    assert got["nonfinite"] == (~np.isfinite(ok)).sum() > 0
    assert got["mean"] == pytest.approx(ok[np.isfinite(ok)].mean(), rel=1e-5)
    assert got["max"] == pytest.approx(ok[np.isfinite(ok)].max(), rel=1e-6)
    assert sum(got["hist"]) == got["n"]


@pytest.mark.slow
def test_stats_of_an_extracted_store(stores):
    st = store_stats(stores["shapes_spatial"], AnalysisConfig(chunk_bytes=20_000, progress=False))
    assert all(v == {"nan": 0, "inf": 0} for v in st["nonfinite"].values())
    assert (
        st["norms"]["image_tokens"]["n"]
        == st["n_valid_images"] * FeatureStore.open(stores["shapes_spatial"]).image_tokens.shape[1]
    )
    assert -1 <= st["dcsm"]["correct"]["min"] <= st["dcsm"]["correct"]["mean"] <= st["dcsm"]["correct"]["max"] <= 1


def test_cli_cka_writes_matrix_and_heatmap(tmp_path, pair):
    out = tmp_path / "cka.csv"
    args = ["analyze", "cka", *map(str, pair), "--labels", "a,b", "--out", str(out), "--png", str(tmp_path / "c.png")]
    res = CliRunner().invoke(main, [*args, "--set", "progress=false"])
    assert res.exit_code == 0, res.output
    names, m = read_matrix(out)
    assert names == ["a", "b"] and m[0, 0] == 1.0 and (tmp_path / "c.png").stat().st_size > 1000
    res = CliRunner().invoke(main, ["analyze", "cka", str(pair[0]), "--out", str(out)])
    assert res.exit_code == 2 and "two or more stores" in res.output


@pytest.mark.slow
def test_scheduler_address_runs_on_dask_distributed(pair):
    distributed = pytest.importorskip("distributed")
    cfg = AnalysisConfig(progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        _, far = cka_stores(pair, cfg, scheduler=c.scheduler_address)
    _, near = cka_stores(pair, cfg)
    assert np.allclose(far, near, rtol=1e-12)


def test_scheduler_without_distributed_is_one_line(pair, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DcsmCacheError, match="pip install distributed"):
        cka_stores(pair, AnalysisConfig(progress=False), scheduler="tcp://127.0.0.1:1")


@pytest.mark.slow
def test_umap_png_of_pooled_and_tokens(tmp_path, pair):
    pytest.importorskip("umap")
    for features in ("pooled", "tokens"):
        out = tmp_path / f"u-{features}.png"
        args = ["analyze", "umap", str(pair[1]), "--features", features, "--out", str(out)]
        res = CliRunner().invoke(
            main, [*args, "--set", "max_points=30", "--set", "n_neighbors=5", "--set", "progress=false"]
        )
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 1000
        assert ("30 patch tokens" if features == "tokens" else "pooled embeddings") in res.output


def test_cosine_neighbours_are_the_exact_ones():
    """The neighbours handed to UMAP are each point's exact nearest by cosine distance, itself first."""
    from sklearn.neighbors import NearestNeighbors

    from dcsm_cache.pipeline.analysis.embed import cosine_neighbours

    x = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx, dist = cosine_neighbours(x, 7)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=7, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(200)).all() and (dist[:, 0] == 0).all()
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-6)


def test_cli_stats_json(tmp_path, pair):
    out = tmp_path / "s.json"
    res = CliRunner().invoke(main, ["stats", str(pair[0]), "--out", str(out), "--set", "progress=false"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["n_images"] == FeatureStore.open(pair[0]).image_pooled.shape[0]
