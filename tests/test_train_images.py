"""world.train_images: the train transform's images decoded in workers equal the one-process loop, bit for bit."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from dcsm_cache._openclip import open_clip
from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.items import DatasetBuilder, ImageRef, image_size, open_image
from dcsm_cache.pipeline.world import tinyclip  # noqa: F401  (registers shapes-clip)
from dcsm_cache.pipeline.world.train_images import _split, train_images
from torchvision import transforms as T


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Images of several sizes, read whole, through a box (float, rounded as PIL rounds) and on a canvas."""
    root = tmp_path_factory.mktemp("mixed")
    b = DatasetBuilder("mixed", root)
    for i, (w, h) in enumerate([(64, 64), (90, 50), (40, 120), (33, 33)] * 4):
        Image.effect_noise((w, h), 40 + i).convert("RGB").save(root / f"{i}.png")
        b.add(f"{i}.png", [f"image {i}"])
        b.add(ImageRef(f"{i}.png", box=(2.5, 3.4, w / 2 + 0.5, h / 3)), [f"box of {i}"])
        b.add(ImageRef(f"{i}.png", box=(1, 1, w / 2, h / 2), canvas=72), [f"canvas of {i}"])
    return b.build()


def _loop(ds, rows, preprocess):
    return torch.stack([preprocess(open_image(ds, r)) for r in rows]).half()


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_give_the_loops_images_and_leave_the_generator_where_it_does(mixed, workers):
    _, preprocess, _ = open_clip.create_model_and_transforms("shapes-clip")
    assert _split(preprocess) is not None  # open_clip's train transform takes the parallel path
    rows = list(range(len(mixed.images)))
    torch.manual_seed(3)
    expected, after = _loop(mixed, rows, preprocess), torch.get_rng_state()
    torch.manual_seed(3)
    got = train_images(mixed, rows, preprocess, workers=workers, batch=5)
    assert torch.equal(got, expected)
    assert torch.equal(torch.get_rng_state(), after)
    torch.manual_seed(4)  # the crops are drawn, not fixed: another seed, other pixels
    assert not torch.equal(train_images(mixed, rows, preprocess, workers=workers, batch=5), expected)


def test_a_transform_with_another_random_step_runs_in_the_loop(mixed):
    _, preprocess, _ = open_clip.create_model_and_transforms("shapes-clip")
    jittered = T.Compose([*preprocess.transforms[:1], T.ColorJitter(0.4), *preprocess.transforms[1:]])
    assert _split(jittered) is None
    rows = list(range(len(mixed.images)))
    torch.manual_seed(5)
    expected = _loop(mixed, rows, jittered)
    torch.manual_seed(5)
    assert torch.equal(train_images(mixed, rows, jittered, workers=2, batch=5), expected)


def test_a_missing_or_corrupt_image_is_the_loops_one_line_error(tmp_path):
    _, preprocess, _ = open_clip.create_model_and_transforms("shapes-clip")
    b = DatasetBuilder("gappy", tmp_path)
    for i in range(12):
        Image.new("RGB", (64, 64), (i, 0, 0)).save(tmp_path / f"{i}.png")
        b.add(f"{i}.png", [f"image {i}"])
    ds = b.build()
    (tmp_path / "7.png").unlink()  # found while the crops are drawn, in this process
    with pytest.raises(InputNotFoundError, match=r"^image .*7\.png is missing$"):
        train_images(ds, list(range(12)), preprocess, workers=2, batch=3)
    Image.new("RGB", (64, 64), (7, 0, 0)).save(tmp_path / "7.png")
    data = (tmp_path / "9.png").read_bytes()
    (tmp_path / "9.png").write_bytes(data[: len(data) // 2])  # its header reads, its pixels do not: in a worker
    assert image_size(ds, 9) == (64, 64)
    with pytest.raises(BadInputError, match=r"^image .*9\.png cannot be read \(OSError\)$"):
        train_images(ds, list(range(12)), preprocess, workers=2, batch=3)
