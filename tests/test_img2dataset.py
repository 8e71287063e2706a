"""img2dataset output: the `files` folders and webdataset shards, read as captioned sets, then extracted.

The layouts are written here the way img2dataset writes them (`{key}.jpg`, `{key}.txt`, `{key}.json`
per sample); expected items are the samples written, and the shards' store must equal the folders'.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_BACKBONE
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.formats import shards
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import ImageRef, open_image

# shard -> [(key, colour, caption)]; key 000000003 failed to download: img2dataset writes no image for it.
SAMPLES = {
    "00000": [
        ("000000000", (200, 20, 20), "a red square"),
        ("000000001", (20, 200, 20), "a green square"),
        ("000000002", (20, 20, 200), "a blue square"),
    ],
    "00001": [("000000004", (200, 200, 20), "a yellow square"), ("000000005", (20, 200, 20), "a green square")],
}


def jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def sample_files(key: str, colour, caption: str) -> dict[str, bytes]:
    meta = {
        "url": f"http://example.com/{key}.jpg",
        "key": key,
        "status": "success",
        "caption": f"JSON {caption}",
        "width": 48,
        "height": 40,
    }
    return {f"{key}.jpg": jpeg(colour), f"{key}.txt": caption.encode(), f"{key}.json": json.dumps(meta).encode()}


def failed(key: str) -> dict[str, bytes]:
    return {f"{key}.json": json.dumps({"key": key, "status": "failed_to_download"}).encode()}


def write_files_layout(root: Path) -> Path:
    for shard, samples in SAMPLES.items():
        (root / shard).mkdir(parents=True)
        files = {k: v for s in samples for k, v in sample_files(*s).items()}
        if shard == "00000":
            files |= failed("000000003")
        for name, data in files.items():
            (root / shard / name).write_bytes(data)
        (root / f"{shard}.parquet").write_bytes(b"PAR1")
        (root / f"{shard}_stats.json").write_text("{}")
    return root


def write_shards(root: Path, exts=(".tar", ".tar"), mode: str = "w") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for (shard, samples), ext in zip(SAMPLES.items(), exts):
        with tarfile.open(root / f"{shard}{ext}", mode) as tar:  # members of a sample in a row, as webdataset writes
            for s in samples:
                for name, data in sample_files(*s).items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), 1700000000
                    tar.addfile(info, io.BytesIO(data))
            if shard == "00000":
                for name, data in failed("000000003").items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        (root / f"{shard}.parquet").write_bytes(b"PAR1")
    return root


def captions_of(ds) -> list[str]:
    return [ds.captions[it.candidates[0]] for it in ds.items]


EXPECTED_CAPTIONS = [c for samples in SAMPLES.values() for _, _, c in samples]


def test_files_layout(tmp_path):
    ds = load_benchmark("img2dataset", str(write_files_layout(tmp_path / "cc")))
    assert ds.name == "cc" and captions_of(ds) == EXPECTED_CAPTIONS
    assert [ds.images[it.image] for it in ds.items] == [
        ImageRef(f"{shard}/{k}.jpg") for shard, samples in SAMPLES.items() for k, _, _ in samples
    ]
    assert all(len(it.candidates) == 1 and it.correct == 0 for it in ds.items)
    assert len(ds.captions) == 4  # "a green square" twice: one caption row
    by_json = load_benchmark("img2dataset", str(tmp_path / "cc"), caption_key="caption", name="cc_json")
    assert by_json.name == "cc_json" and captions_of(by_json) == [f"JSON {c}" for c in EXPECTED_CAPTIONS]


def test_webdataset_shards_are_read_as_streams_in_order(tmp_path):
    ds = load_benchmark("webdataset", str(write_shards(tmp_path / "wds")))
    assert ds.name == "wds" and captions_of(ds) == EXPECTED_CAPTIONS
    refs = [ds.images[it.image] for it in ds.items]
    assert refs == [
        ImageRef(f"{shard}.tar", member=f"{k}.jpg") for shard, samples in SAMPLES.items() for k, _, _ in samples
    ]
    assert [it.image for it in ds.items] == list(range(5))  # rows of one shard are consecutive
    by_json = load_benchmark("webdataset", str(tmp_path / "wds"), caption_key="caption")
    assert captions_of(by_json) == [f"JSON {c}" for c in EXPECTED_CAPTIONS]


def test_gzipped_shards_read_like_plain_ones(tmp_path, monkeypatch):
    """Shards written by tarfile's "w:gz", named as webdataset reads them (.tar.gz, .tgz): the same items and pixels."""
    plain = load_benchmark("webdataset", str(write_shards(tmp_path / "wds")))
    monkeypatch.setattr(shards, "_open", type(shards._open)())
    gz = write_shards(tmp_path / "gz", exts=(".tar.gz", ".tgz"), mode="w:gz")
    assert (gz / "00000.tar.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic
    r = run("items", "webdataset", "--root", gz, "--out", tmp_path / "gz.json")
    assert r.exit_code == 0 and "5 items, 5 images, 4 captions" in r.output, r.output
    ds = load_benchmark("webdataset", str(gz))
    assert captions_of(ds) == EXPECTED_CAPTIONS and ds.images[0] == ImageRef("00000.tar.gz", member="000000000.jpg")
    assert ds.images[3] == ImageRef("00001.tgz", member="000000004.jpg")
    for row in (4, 0, 2, 1):  # a step back decompresses again from the start: still the same pixels
        assert np.array_equal(np.asarray(open_image(ds, row)), np.asarray(open_image(plain, row))), row
    (gz / "00000.tar.gz").rename(gz / "00000.tar.zst")
    (gz / "00001.tgz").unlink()
    with pytest.raises(InputNotFoundError, match=r"00000.tar.zst use another compression: decompress them to .tar"):
        load_benchmark("webdataset", str(gz))


def test_layout_errors_name_the_shard_or_sample(tmp_path):
    with pytest.raises(InputNotFoundError, match="expected webdataset shards 00000.tar"):
        load_benchmark("webdataset", str(tmp_path))
    with pytest.raises(InputNotFoundError, match="expected numbered folders 00000/"):
        load_benchmark("img2dataset", str(tmp_path))
    root = write_shards(tmp_path / "wds")
    data = (root / "00001.tar").read_bytes()
    (root / "00001.tar").write_bytes(data[:1500])
    with pytest.raises(BadInputError, match=r"shard .*00001.tar is truncated"):
        load_benchmark("webdataset", str(root))
    with tarfile.open(root / "00001.tar", "w") as tar:
        info = tarfile.TarInfo("000000009.jpg")
        body = jpeg((0, 0, 0))
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    with pytest.raises(BadInputError, match=r"00001.tar:000000009 has no .txt caption"):
        load_benchmark("webdataset", str(root))
    with pytest.raises(BadInputError, match=r"000000000.json has no text under 'text'"):
        load_benchmark("webdataset", str(root), caption_key="text")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def extract_cli(manifest: Path, store: Path):
    """Decoding in this process (--workers 0), so a spy on tarfile.open sees every shard opened."""
    r = run(
        "extract",
        "--items",
        manifest,
        "--backbone",
        TINY_BACKBONE,
        "--out",
        store,
        "--device",
        "cpu",
        "--set",
        "batch_size=8",
        "--set",
        "progress=false",
        "--workers",
        "0",
    )
    assert r.exit_code == 0 and "store complete" in r.output, r.output


def test_cli_shards_extract_like_the_files_each_shard_read_once(tmp_path, monkeypatch):
    import zarr

    files, wds = write_files_layout(tmp_path / "files"), write_shards(tmp_path / "wds")
    for bench, root in (("img2dataset", files), ("webdataset", wds)):
        r = run("items", bench, "--root", root, "--out", tmp_path / f"{bench}.json")
        assert r.exit_code == 0 and "5 items, 5 images, 4 captions" in r.output, r.output
    opened, real_open = [], tarfile.open

    def spy(path, mode="r", *a, **kw):
        opened.append((os.path.basename(path), mode))
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(shards.tarfile, "open", spy)
    monkeypatch.setattr(shards, "_open", type(shards._open)())
    extract_cli(tmp_path / "webdataset.json", tmp_path / "wds.zarr")
    assert sorted(opened) == [("00000.tar", "r:"), ("00001.tar", "r:")]  # each shard opened once
    extract_cli(tmp_path / "img2dataset.json", tmp_path / "files.zarr")
    a, b = zarr.open_group(tmp_path / "wds.zarr", mode="r"), zarr.open_group(tmp_path / "files.zarr", mode="r")
    assert a["image/valid"][:].all()
    for key in ("image/tokens", "image/pooled", "text/tokens", "text/ids"):
        np.testing.assert_array_equal(a[key][:], b[key][:])  # same pixels, same captions, same rows
    assert len({a["image/pooled"][i].tobytes() for i in range(5)}) == 4  # two green squares, the rest differ
    r = run(
        "eval", "--store", tmp_path / "wds.zarr", "--scorer", "cosine", "--out", tmp_path / "r.json", "--device", "cpu"
    )
    result = json.loads((tmp_path / "r.json").read_text())
    assert r.exit_code == 0 and result["n_items"] == 5 and result["dataset"] == "wds", r.output
