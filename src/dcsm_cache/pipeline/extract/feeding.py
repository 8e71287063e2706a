"""Feeding the model in flat memory: decoding runs ahead in DataLoader workers, writes trail behind in a thread.

    with ChunkWriter(store.path, store.group) as chunks, StoreWriter(chunks) as write:
        for start, pixels, valid, errors in image_batches(ds, preprocess, (0, n), batch_size=64, workers=4):
            write(start, *to_host({"image/tokens": ..., "image/pooled": ..., "image/valid": valid}))

Peak memory does not grow with the dataset: at most `workers × prefetch` decoded batches wait for the
model, and at most `depth` computed batches wait for the disk. Unreadable images (missing, corrupt)
come back as zero pixels with `valid` false and their error message, so a row is never lost or shifted.
With `augment` (`views.ViewAugment`), the workers also make each image's augmented views: pixels are
then [B, K, C, H, W], view 0 the plain preprocessing. With `decode` (`device_decode.DeviceDecode`), the
workers read JPEG files' bytes only and the batch is decoded and preprocessed on the model's device.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ...cores import cpu_cores
from ...errors import ConfigError, DcsmCacheError
from ..items import Dataset, jpeg_bytes, open_image

__all__ = ["StoreWriter", "auto_workers", "auto_write_threads", "image_batches"]


def auto_workers(device: torch.device) -> int:
    """Decoding processes. Beside a GPU decoding is the pipeline's limit: one per core but the one that
    feeds the GPU (at most 32); on a CPU the model needs the cores: up to 4, one fewer than there are."""
    cores = cpu_cores()
    return max(1, min(32, cores - 1)) if device.type == "cuda" else max(0, min(4, cores - 1))


def auto_write_threads() -> int:
    """Threads writing chunk files: a few, so that a chunk's checksum and its write to the page cache
    overlap the next (the disk, not the threads, is the limit)."""
    return max(2, min(4, cpu_cores()))


class _Rows(TorchDataset):
    """Rows [a, b) of a dataset's images, decoded and preprocessed; (pixels, ok, error message) each.

    With `augment`, pixels are [K, C, H, W]: the plain view, then `augment(image, row)`'s, each preprocessed."""

    def __init__(
        self,
        ds: Dataset,
        preprocess: Callable,
        span: tuple[int, int],
        shape: tuple[int, ...],
        augment: Callable | None = None,
        raw: bool = False,
    ):
        self.ds, self.preprocess, self.span, self.shape, self.augment = ds, preprocess, span, shape, augment
        self.raw = raw  # a JPEG file's bytes, as a uint8 tensor, for the device to decode
        if augment is not None:
            self.shape = (augment.views, *shape)

    def __len__(self) -> int:
        return self.span[1] - self.span[0]

    def __getitem__(self, i: int):
        row = self.span[0] + i
        try:
            if self.raw and (data := jpeg_bytes(self.ds, row)) is not None:
                return torch.frombuffer(bytearray(data), dtype=torch.uint8), True, ""
            image = open_image(self.ds, row)
            if self.augment is None:
                return self.preprocess(image), True, ""
            return torch.stack([self.preprocess(v) for v in [image, *self.augment(image, row)]]), True, ""
        except DcsmCacheError as err:  # missing or corrupt image: keep the row, mark it invalid
            return torch.zeros(self.shape), False, str(err)


def _collate(batch):
    pixels, ok, errors = zip(*batch)
    return torch.stack(pixels), torch.tensor(ok), [e for e in errors if e]


def _collate_list(batch):
    """For the device to decode: per row a JPEG's bytes or pixels (not stacked), ok, error messages."""
    rows, ok, errors = zip(*batch)
    return list(rows), torch.tensor(ok), [e for e in errors if e]


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode; the model's threads keep the cores


def image_batches(
    ds: Dataset,
    preprocess: Callable,
    span: tuple[int, int],
    batch_size: int,
    workers: int,
    pixel_shape: tuple[int, ...],
    pin_memory: bool = False,
    prefetch: int = 2,
    augment: Callable | None = None,
    decode: Callable | None = None,
) -> Iterator[tuple[int, torch.Tensor, np.ndarray, list[str]]]:
    """(first row, pixels [B, C, H, W], valid [B] bool, error messages) for consecutive batches of `span`;
    with `augment` (`views.ViewAugment`), pixels [B, K, C, H, W]; with `decode`
    (`device_decode.DeviceDecode`), pixels on its device, its JPEGs decoded there.

    Workers start decoding when iteration starts, so creating the iterator before other work (the
    text side) overlaps the two.
    """
    if decode is not None and augment is not None:
        raise ConfigError("extract: decode=device does not make augmented views (views > 1): use decode=workers")
    loader = DataLoader(
        _Rows(ds, preprocess, span, pixel_shape, augment, raw=decode is not None),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate if decode is None else _collate_list,
        pin_memory=pin_memory,
        prefetch_factor=prefetch if workers else None,
        worker_init_fn=_one_thread if workers else None,
    )
    batches = _numbered(iter(loader), span[0])  # iter() starts the workers now
    return batches if decode is None else _decoded(batches, decode, ds, pixel_shape)


def _numbered(batches, start: int):
    for pixels, ok, errors in batches:
        yield start, pixels, ok.numpy(), errors
        start += len(ok)


def _decoded(batches, decode: Callable, ds: Dataset, shape: tuple[int, ...]):
    """The workers' batches with their JPEGs decoded by `decode`; its failures join the workers' errors,
    in row order."""
    for start, rows, ok, errors in batches:
        failed = dict(zip(np.flatnonzero(~ok).tolist(), errors))
        pixels, valid, bad = decode([r if k else None for r, k in zip(rows, ok)], shape)
        failed |= {i: f"image {ds.image_path(start + i)} cannot be read ({why})" for i, why in bad}
        yield start, pixels, np.asarray(valid, bool), [failed[i] for i in sorted(failed)]


class StoreWriter:
    """Hands batches of rows to a store's writer from one thread behind a bounded queue, so the thread that
    runs the model never waits for the bytes: each batch's `ready` (`rows.to_host`: its copies from the
    device) is waited for here, then its arrays go to `sink.write(name, start, values)` (a `ChunkWriter`).

    An error in the writer is raised in the caller at its next write or at exit; nothing is dropped.
    """

    def __init__(self, sink, depth: int = 2):
        self.sink = sink
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def __enter__(self) -> Callable[..., None]:
        self._thread.start()
        return self.write

    def write(self, start: int, arrays: dict[str, np.ndarray], ready: Callable[[], None] | None = None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((start, arrays, ready))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                start, arrays, ready = job
                try:
                    if ready is not None:
                        ready()
                    for name, values in arrays.items():
                        self.sink.write(name, start, values)
                except BaseException as err:  # noqa: BLE001  (handed to the caller)
                    self._error = err

    def __exit__(self, *exc) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error
