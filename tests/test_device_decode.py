"""Decoding on the model's device: the preprocessing as tensor ops within one 8-bit level of PIL's, a batch's
rows in order with bad files isolated, and CUDA asked for."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dcsm_cache._openclip import open_clip
from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.extract import ExtractConfig, extract, image_batches
from dcsm_cache.pipeline.extract.device_decode import DeviceDecode, tensor_steps
from dcsm_cache.pipeline.items import DatasetBuilder

from conftest import TINY_BACKBONE


def jpeg(rng, width: int, height: int) -> bytes:
    low = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(low).resize((width, height), Image.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def pil_decoder(data, mode=None, device="cpu"):
    """torchvision's decode_jpeg as PIL would decode (this machine's torchvision has no image ops)."""
    one = lambda d: torch.from_numpy(np.asarray(Image.open(io.BytesIO(d.numpy().tobytes())).convert("RGB")).copy())
    try:
        out = [one(d).permute(2, 0, 1) for d in (data if isinstance(data, list) else [data])]
    except OSError as err:
        raise RuntimeError(f"decode failed: {err}") from err
    return out if isinstance(data, list) else out[0]


def test_tensor_steps_are_within_one_8_bit_level_of_pil():
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-16")
    steps, rng = tensor_steps(preprocess), np.random.default_rng(0)
    level = 1 / 255 / min(preprocess.transforms[-1].std)  # one 8-bit level in normalised units
    worst = []
    for size in ((256, 192), (500, 375), (224, 224)):
        image = Image.open(io.BytesIO(jpeg(rng, *size))).convert("RGB")
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        for step in steps:
            x = step(x)
        diff = (x - preprocess(image)).abs()
        worst.append(float(diff.max()))
        assert x.shape == (3, 224, 224) and float(diff.mean()) < 0.25 * level
    assert max(worst) <= level + 1e-6


def test_a_step_without_a_tensor_form_is_named():
    from torchvision.transforms import Compose, Lambda, RandomResizedCrop

    with pytest.raises(ConfigError, match="cannot run the preprocessing step Lambda"):
        tensor_steps(Compose([Lambda(lambda im: im)]))
    with pytest.raises(ConfigError, match="RandomResizedCrop"):
        tensor_steps(Compose([RandomResizedCrop(32)]))


def test_rows_in_order_with_other_formats_and_bad_files_kept_apart(tmp_path):
    rng = np.random.default_rng(1)
    b = DatasetBuilder("dd", tmp_path)
    for i in range(9):
        name = f"{i}.jpg"
        if i == 2:
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "2.png")
            name = "2.png"  # decoded by the worker
        elif i == 4:
            (tmp_path / name).write_bytes(b"\xff\xd8\xff\xe0 a JPEG's start, then nothing")  # fails on the device
        elif i != 6:  # 6 is missing
            (tmp_path / name).write_bytes(jpeg(rng, 48, 40))
        b.add(name, [f"caption {i}"])
    ds = b.build()
    _, _, preprocess = open_clip.create_model_and_transforms(TINY_BACKBONE)
    decode = DeviceDecode(preprocess, torch.device("cpu"), decoder=pil_decoder)
    got = list(image_batches(ds, preprocess, (0, 9), 4, 1, (3, 32, 32), decode=decode))
    assert [start for start, *_ in got] == [0, 4, 8]
    valid = np.concatenate([v for _, _, v, _ in got])
    assert valid.tolist() == [i not in (4, 6) for i in range(9)]
    errors = [e for *_, errs in got for e in errs]
    assert len(errors) == 2 and "4.jpg" in errors[0] and "cannot be read" in errors[0] and "6.jpg" in errors[1]
    pixels = torch.cat([p for _, p, _, _ in got])
    from dcsm_cache.pipeline.items import open_image

    level = 1 / 255 / min(preprocess.transforms[-1].std)
    for i in range(9):
        want = preprocess(open_image(ds, i)) if valid[i] else torch.zeros(3, 32, 32)
        assert float((pixels[i] - want).abs().max()) <= level + 1e-6, i  # the PNG exactly, the JPEGs within a level
    assert torch.equal(pixels[2], preprocess(open_image(ds, 2)))


def test_device_decoding_asks_for_cuda(manifests, tmp_path):
    with pytest.raises(ConfigError, match="decode=device needs a CUDA device"):
        cfg = ExtractConfig(device="cpu", decode="device")
        extract(manifests["shapes_spatial"], TINY_BACKBONE, tmp_path / "s.zarr", cfg)
    with pytest.raises(ConfigError, match="augmented views"):
        ExtractConfig(decode="device", views=2)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nvjpeg_pixels_are_close_to_the_workers(tmp_path):
    rng = np.random.default_rng(2)
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-16")
    decode = DeviceDecode(preprocess, torch.device("cuda"))
    data = [jpeg(rng, 256, 192) for _ in range(8)]
    pixels, valid, failed = decode([torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data], (3, 224, 224))
    want = torch.stack([preprocess(Image.open(io.BytesIO(d)).convert("RGB")) for d in data])
    assert all(valid) and not failed and float((pixels.cpu() - want).abs().mean()) < 0.05
