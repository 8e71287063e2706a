"""Extraction options: the reference's text padding, bad settings, unknown names before any work; parts' batches."""

from __future__ import annotations

import numpy as np
import pytest

from dcsm_cache.errors import ConfigError, UnknownNameError
from dcsm_cache.pipeline.extract import ExtractConfig, extract, on_grid

from conftest import TINY_BACKBONE


def test_reference_padding_keeps_real_columns_and_fills_30(manifests, tmp_path):
    import zarr

    cfg = dict(device="cpu", progress=False)
    ref = extract(
        manifests["shapes_spatial"],
        "shapes-clip",
        tmp_path / "ref.zarr",
        ExtractConfig(**cfg, text_padding="reference"),
    )
    extract(manifests["shapes_spatial"], "shapes-clip", tmp_path / "longest.zarr", ExtractConfig(**cfg))
    longest = zarr.open_group(tmp_path / "longest.zarr", mode="r")
    assert ref.text_tokens.shape[1] == 30 and ref.attrs["text_padding"] == "reference"
    lengths = ref.text_length[:]
    np.testing.assert_array_equal(lengths, longest["text/length"][:])
    a, b = ref.text_tokens[:].astype(np.float32), longest["text/tokens"][:].astype(np.float32)
    for row, n in enumerate(lengths):  # causal attention, pads masked: real tokens are unchanged
        np.testing.assert_allclose(a[row, :n], b[row, :n], atol=3e-3)
        assert np.allclose(np.linalg.norm(a[row, n:], axis=-1), 1, atol=3e-3)  # pads hold real embeddings


def test_bad_padding_and_unknown_backbone_fail_before_work(manifests, tmp_path):
    with pytest.raises(ConfigError, match="text_padding"):
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "x.zarr",
            ExtractConfig(device="cpu", progress=False, text_padding="max"),
        )
    with pytest.raises(ConfigError, match="context length 24"):  # the reference pads to 30
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "z.zarr",
            ExtractConfig(device="cpu", progress=False, text_padding="reference"),
        )
    with pytest.raises(UnknownNameError, match="unknown backbone"):
        extract(tmp_path / "missing.json", "ViT-Q-1.openai", tmp_path / "y.zarr")
    assert not (tmp_path / "y.zarr").exists()


def test_on_grid_widens_a_span_to_whole_batches():
    assert on_grid((3, 12), 8, 22) == (0, 16)
    assert on_grid((18, 22), 8, 22) == (16, 22)  # the last batch is the one-part run's: rows 16..21
    assert on_grid((8, 16), 8, 22) == (8, 16) and on_grid((9, 9), 8, 22) == (9, 9)  # on the grid; empty


def test_parts_run_the_model_on_the_one_part_runs_batches(manifests, tmp_path, monkeypatch):
    """A model whose outputs depend on the whole batch (as some CPU kernels' last bits do: oneDNN's 1x1
    convolution on one thread, 2026-12-05) still gives a 3-part store equal to a 1-part one, bit for bit."""
    from dcsm_cache.pipeline.tokens.encoder import TokenEncoder
    from dcsm_cache.stores import FeatureStore

    image, text = TokenEncoder.image, TokenEncoder.text
    monkeypatch.setattr(TokenEncoder, "image", lambda self, x: [t + x.mean() for t in image(self, x)])
    monkeypatch.setattr(TokenEncoder, "text", lambda self, ids: [t + ids.float().mean() for t in text(self, ids)])
    cfg = dict(batch_size=8, text_batch_size=8, chunk_rows=3, device="cpu", progress=False)
    extract(manifests["shapes_spatial"], TINY_BACKBONE, tmp_path / "one.zarr", ExtractConfig(**cfg))
    for part in range(3):
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            tmp_path / "three.zarr",
            ExtractConfig(**cfg, part=part, nparts=3),
        )
    one, three = FeatureStore.open(tmp_path / "one.zarr"), FeatureStore.open(tmp_path / "three.zarr")
    assert three.part_rows(1)["image"][0] % 8 and three.part_rows(1)["text"][0] % 8  # parts start off the grid
    for name in (
        "image/tokens",
        "image/pooled",
        "image/valid",
        "text/tokens",
        "text/pooled",
        "text/ids",
        "text/length",
    ):
        assert one[name][:].tobytes() == three[name][:].tobytes(), name


def test_rows_normalised_where_the_model_ran_and_whole_chunk_files_give_the_old_stores_bytes(tmp_path, monkeypatch):
    """Tokens used to be normalised in float32, copied to the host and rounded to float16 there, written into a
    zero array at the readable rows and through zarr-python; now they are rounded where the model ran and written
    as whole chunk files. A store with unreadable images, edge chunks and batches off the chunk grid is the same
    bytes either way."""
    import torch.nn.functional as F
    from PIL import Image

    from dcsm_cache.pipeline.extract import run
    from dcsm_cache.pipeline.items import DatasetBuilder, write_manifest

    rng = np.random.default_rng(0)
    b = DatasetBuilder("old-new", tmp_path)
    for i in range(21):
        if i == 5:
            (tmp_path / f"{i}.png").write_bytes(b"\x89PNG not really")
        elif i != 13:  # missing
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        b.add(f"{i}.png", [f"a red circle number {i}", "a blue square"])
    write_manifest(b.build(), tmp_path / "m.json")
    cfg = ExtractConfig(batch_size=6, text_batch_size=5, chunk_rows=4, device="cpu", progress=False, workers=0)
    new = extract(tmp_path / "m.json", TINY_BACKBONE, tmp_path / "new.zarr", cfg)

    class ZarrPython:  # the old writes: zarr-python's slice assignment, on the calling thread
        def __init__(self, root, group, threads):
            self.group = group

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def write(self, name, start, values):
            self.group[name][start : start + len(values)] = values

    monkeypatch.setattr(run, "ChunkWriter", ZarrPython)
    monkeypatch.setattr(run, "unit_fp16", lambda x: F.normalize(x.float(), dim=-1).cpu().half())
    old = extract(tmp_path / "m.json", TINY_BACKBONE, tmp_path / "old.zarr", cfg)

    def files(folder):
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    assert new.image_valid[:].tolist() == [i not in (5, 13) for i in range(21)]
    assert len(files(new.path)) > 20 and files(new.path) == files(old.path)


def test_items_here_extract_and_eval_elsewhere_and_a_moved_dataset_keeps_its_store(world, tmp_path, monkeypatch):
    """The README's commands with a relative --root, run from other folders; then the images moved: the
    manifest written again has the same fingerprint, so the store is current and nothing is extracted again."""
    import json
    import shutil

    from click.testing import CliRunner

    from dcsm_cache.cli import main
    from dcsm_cache.pipeline.items import manifest_fingerprint
    from dcsm_cache.stores import FeatureStore

    def run(*args):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, (args, res.output)
        return res.output

    proj, other = tmp_path / "proj", tmp_path / "other"
    shutil.copytree(world, proj / "data" / "world")
    other.mkdir()
    monkeypatch.chdir(proj)
    run("items", "shapes_spatial", "--root", "data/world", "--out", "manifests/s.json")
    fp = manifest_fingerprint(proj / "manifests" / "s.json")
    monkeypatch.chdir(other)
    extract_args = ["--backbone", TINY_BACKBONE, "--device", "cpu", "--workers", "0", "--set", "progress=false"]
    run("extract", "--items", "../proj/manifests/s.json", "--out", "../proj/stores/s.zarr", *extract_args)
    run("eval", "--store", "../proj/stores/s.zarr", "--scorer", "cosine", "--out", "r.json", "--device", "cpu")
    accuracy = json.loads((other / "r.json").read_text())["accuracy"]
    chunk = next(p for p in sorted((proj / "stores" / "s.zarr" / "image" / "tokens").rglob("*")) if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in (chunk, proj / "stores" / "s.zarr" / "zarr.json")}

    shutil.move(proj / "data" / "world", tmp_path / "moved")  # (a move keeps the files' times; a copy may not)
    monkeypatch.chdir(proj)
    out = run("items", "shapes_spatial", "--root", tmp_path / "moved", "--out", "manifests/s.json")
    assert manifest_fingerprint(proj / "manifests" / "s.json") == fp and fp in out
    monkeypatch.chdir(tmp_path)
    out = run("extract", "--items", "proj/manifests/s.json", "--out", "proj/stores/s.zarr", *extract_args)
    assert "store complete" in out and {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing redone
    assert FeatureStore.open("proj/stores/s.zarr", fingerprint=fp).attrs["fingerprint"] == fp
    run("eval", "--store", "proj/stores/s.zarr", "--scorer", "cosine", "--out", "r2.json", "--device", "cpu")
    assert json.loads((tmp_path / "r2.json").read_text())["accuracy"] == accuracy
    run("verify", "proj/stores/s.zarr")
