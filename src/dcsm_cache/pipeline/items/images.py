"""Opening an item's image: a file, a crop of one, a crop on a canvas, or a member of a tar shard.

    im = open_image(ds, row)        # RGB PIL image, cropped; a missing or corrupt file is one clear error
    w, h = image_size(ds, row)      # from the header alone
    data = jpeg_bytes(ds, row)      # a whole JPEG file's bytes, for a decoder of its own; else None

A member of a tar shard is read through `formats/shards.py`; a missing or unreadable file is a one-line
error naming it, never a PIL traceback.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

from ...errors import BadInputError, InputNotFoundError
from .form import Dataset


@contextmanager
def _opened(ds: Dataset, row: int):
    """(the image file at `row` opened lazily by PIL, its name for errors); missing or unreadable: our errors."""
    from PIL import Image, UnidentifiedImageError

    ref, path = ds.images[row], ds.image_path(row)
    source = path
    if ref.member:  # its own errors name the shard and the member
        from ..formats.shards import read_member

        source, path = io.BytesIO(read_member(path, ref.member)), f"{path}:{ref.member}"
    try:
        im = Image.open(source)
    except FileNotFoundError as err:
        raise InputNotFoundError(f"image {path} is missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise BadInputError(f"image {path} cannot be read ({err.__class__.__name__})") from err
    with im:
        yield im, path


def _crop_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """An (x, y, w, h) box as PIL's (left, upper, right, lower) in whole pixels, rounded as PIL rounds."""
    x, y, w, h = box
    return round(x), round(y), round(x + w), round(y + h)


def image_size(ds: Dataset, row: int) -> tuple[int, int]:
    """(width, height) of `open_image(ds, row)`, from the file's header alone: nothing is decoded."""
    ref = ds.images[row]
    if ref.canvas:
        return ref.canvas, ref.canvas
    if ref.box:
        left, upper, right, lower = _crop_box(ref.box)
        return right - left, lower - upper
    with _opened(ds, row) as (im, _):
        return im.size


def jpeg_bytes(ds: Dataset, row: int) -> bytes | None:
    """The bytes of the image at `row` when it is a whole JPEG file (no crop box, no canvas), else None;
    a missing file is an InputNotFoundError."""
    ref = ds.images[row]
    if ref.box or ref.canvas:
        return None
    path = ds.image_path(row)
    try:
        if ref.member:
            from ..formats.shards import read_member

            data = read_member(path, ref.member)
        else:
            with open(path, "rb") as f:
                data = f.read()
    except FileNotFoundError as err:
        raise InputNotFoundError(f"image {path} is missing") from err
    return data if data[:3] == b"\xff\xd8\xff" else None


def open_image(ds: Dataset, row: int):
    """The image at `row` as RGB PIL, cropped to its box; a missing or corrupt file is a BadInputError.

    A member of a tar shard is read through `shards.read_member` (each shard opened once per process)."""
    ref = ds.images[row]
    with _opened(ds, row) as (im, path):
        try:
            im = im.convert("RGB")
        except (OSError, SyntaxError) as err:
            raise BadInputError(f"image {path} cannot be read ({err.__class__.__name__})") from err
    if ref.box:
        im = im.crop(_crop_box(ref.box))
    if ref.canvas:
        import numpy as np
        from PIL import Image

        px = np.asarray(im)
        ring = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
        canvas = Image.new("RGB", (ref.canvas, ref.canvas), tuple(int(v) for v in np.median(ring, axis=0)))
        canvas.paste(im, ((ref.canvas - im.width) // 2, (ref.canvas - im.height) // 2))
        im = canvas
    return im
