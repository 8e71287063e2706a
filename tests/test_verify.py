"""`dcsm-cache verify` and the checksums under it: a flipped byte, a NaN, a missing part or chunk, a
non-zero invalid row and a changed manifest are each found with the array and rows; a good store
passes; `eval` and `train` refuse a store whose chunk fails its checksum, in one line, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import zarr
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.stores.feature_store import FeatureStore
from dcsm_cache.stores.verify import verify_store


def copy_store(stores, tmp_path, name="shapes_spatial") -> Path:
    out = tmp_path / f"{name}.zarr"
    shutil.copytree(stores[name], out)
    return out


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_a_good_store_passes(stores):
    counted, problems = verify_store(stores["shapes_spatial"])
    assert problems == [] and counted["parts"] == 1 and counted["rows"] > 0
    res = run("verify", stores["shapes_spatial"])
    assert res.exit_code == 0 and ": ok (" in res.stdout


def test_a_flipped_byte_is_found_and_eval_and_train_refuse_the_store(stores, tmp_path):
    store = copy_store(stores, tmp_path)
    chunk = store / "image" / "tokens" / "c" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    res = run("verify", store)
    assert res.exit_code == 1
    rows = FeatureStore.open(store).image_tokens.chunks[0]
    n = FeatureStore.open(store).image_tokens.shape[0]
    assert f"image/tokens rows 0-{min(rows, n) - 1}: chunk fails its crc32c checksum" in res.stdout
    out = tmp_path / "out"
    out.mkdir()
    for args in (
        ("eval", "--store", store, "--scorer", "cosine", "--out", out / "r.json", "--device", "cpu"),
        ("train", "--store", store, "--out", out / "m.pt", "--device", "cpu", "--set", "steps=1"),
    ):
        res = run(*args)
        assert res.exit_code == 2, res.output
        assert res.stderr.count("\n") == 1 and "fails its checksum" in res.stderr and str(store) in res.stderr
    assert list(out.iterdir()) == []


def test_a_cut_short_or_emptied_chunk_is_one_line_naming_it(stores, tmp_path):
    """The reader that evaluation goes through (`stores/raw_rows.py`) checks a chunk file's size before it maps it."""
    for cut in (lambda b: b[: len(b) // 2], lambda b: b""):
        store = copy_store(stores, tmp_path / str(len(list(tmp_path.iterdir()))))
        chunk = next(p for p in sorted((store / "image" / "tokens" / "c").rglob("*")) if p.is_file())
        chunk.write_bytes(cut(chunk.read_bytes()))
        res = run("eval", "--store", store, "--scorer", "maxsim", "--out", tmp_path / "r.json", "--device", "cpu")
        assert res.exit_code == 2, res.output
        assert res.stderr.count("\n") == 1 and str(chunk) in res.stderr and "re-extract the store" in res.stderr
        assert not (tmp_path / "r.json").exists()


def test_nan_nonzero_invalid_row_and_bad_norm_are_found(stores, tmp_path):
    store = copy_store(stores, tmp_path)
    g = zarr.open_group(store, mode="r+")
    valid = g["image/valid"][:]
    good, bad = int(np.flatnonzero(valid)[0]), int(np.flatnonzero(valid)[-1])
    row = g["image/tokens"][good]
    row[0, 0] = np.nan
    g["image/tokens"][good] = row
    g["image/tokens"][bad] = g["image/tokens"][bad] * 2
    g["image/valid"][bad] = False  # an invalid image whose row is not zero
    text = g["text/pooled"][3]
    text[1] = np.inf
    g["text/pooled"][3] = text
    found = [str(p) for p in verify_store(store)[1]]
    assert f"image/tokens rows {good}-{good}: NaN or inf in 1 row(s)" in found
    assert "text/pooled rows 3-3: NaN or inf in 1 row(s)" in found
    assert f"image/tokens rows {bad}-{bad}: rows of an invalid image not zero in 1 row(s)" in found
    assert f"image/pooled rows {bad}-{bad}: rows of an invalid image not zero in 1 row(s)" in found
    g["image/valid"][bad] = True
    found = [str(p) for p in verify_store(store)[1]]
    assert f"image/tokens rows {bad}-{bad}: token rows of a valid image not of unit norm in 1 row(s)" in found


def test_a_missing_part_a_missing_chunk_and_a_changed_manifest_are_found(stores, manifests, tmp_path):
    store = copy_store(stores, tmp_path)
    (store / "text" / "ids" / "c" / "0" / "0").unlink()
    found = [str(p) for p in verify_store(store)[1]]
    assert any(p.startswith("text/ids rows 0-") and p.endswith("chunk file missing") for p in found), found
    g = zarr.open_group(store, mode="r+")  # part 0 not finished: no `complete`, no `finished_parts`
    g.attrs.put({k: v for k, v in g.attrs.asdict().items() if k not in ("complete", "bad_images")})
    manifest = tmp_path / "m.json"
    doc = json.loads(Path(manifests["shapes_spatial"]).read_text())
    doc["fingerprint"] = "0" * 16
    manifest.write_text(json.dumps(doc))
    res = run("verify", store, "--items", manifest)
    assert res.exit_code == 1
    assert "part 0 of 1 not finished" in res.stdout and "fingerprint 0000000000000000" in res.stdout


def test_no_store_is_one_line(tmp_path):
    res = run("verify", tmp_path / "nothing.zarr")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "nothing.zarr" in res.stderr


def test_an_older_schema_is_refused_with_what_to_do(stores, tmp_path):
    store = copy_store(stores, tmp_path)
    zarr.open_group(store, mode="r+").attrs["schema_version"] = 2
    res = run("eval", "--store", store, "--scorer", "cosine", "--out", tmp_path / "r.json", "--device", "cpu")
    assert res.exit_code == 2 and "re-extract" in res.stderr and res.stderr.count("\n") == 1


def test_parts_written_in_any_order_verify_every_chunk(manifests, tmp_path):
    from dcsm_cache.pipeline.extract import ExtractConfig, extract

    from conftest import TINY_BACKBONE

    out, nparts = tmp_path / "s.zarr", 2
    for part in reversed(range(nparts)):
        cfg = ExtractConfig(batch_size=8, device="cpu", progress=False, part=part, nparts=nparts, chunk_rows=8)
        extract(manifests["shapes_spatial"], TINY_BACKBONE, out, cfg)
    counted, problems = verify_store(out)
    g = zarr.open_group(out, mode="r")
    n_chunks = sum(g[f"{grp}/{a}"].nchunks for grp in ("image", "text") for a in g[grp].array_keys())
    assert problems == [] and counted["parts"] == nparts and counted["chunks"] == n_chunks > 7
