"""Extraction: run a backbone once over a dataset and fill its Zarr feature store.

    extract("manifests/shapes_spatial.json", "shapes-clip@models/shapes-clip.pt",
            "stores/shapes-clip/shapes_spatial.zarr", ExtractConfig(batch_size=128))

Image tokens and text tokens are projected into the joint space by the family's adapter
(`tokens/`), L2-normalised and stored as float16. Captions are stored once each (the manifest
already deduplicates them). With `part`/`nparts` each process fills a chunk-aligned row range and
then writes its marker; a finished part is skipped, so rerunning after a crash redoes only what is
missing. A part runs the model on the batches a one-part run would (its first and last batch are
extended to the grid of `batch_size` rows, and only its own rows are written), so a store made in K
parts is the same bytes as one made in one, however the kernels' results depend on the batch's
make-up. With `views=K` the store also holds K-1 seeded augmented views of each image (`views.py`;
view 0, image/tokens, is the plain one evaluation reads). A corrupt image does not stop the run: its
row is marked invalid and named in a warning.
Images are decoded ahead of the model by DataLoader workers and written behind it by a thread
(`feeding.py`), so memory stays flat however large the dataset; text runs while the workers decode.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ..._openclip import open_clip
from ...config import at_least, one_of, require
from ...errors import BadInputError, ConfigError, DcsmCacheError
from ...progress import tqdm
from ...stores.chunk_writer import ChunkWriter
from ...stores.feature_store import FeatureStore, StoreShape
from ..dcsm import FUNCTIONAL_WORDS, FunctionalWords
from ..device import PRECISIONS, autocast, resolve_device, resolve_precision
from ..items import manifest_fingerprint, open_image, read_manifest
from ..paper.padding import TEXT_SEQ, reference_text_tokens
from ..tokens import load_backbone, parse_backbone, token_encoder
from .device_decode import DeviceDecode
from .feeding import StoreWriter, auto_workers, auto_write_threads, image_batches
from .rows import to_host, unit_fp16
from .views import ViewAugment

log = logging.getLogger(__name__)


TEXT_PADDINGS = ("longest", "reference")
BAD_IMAGE = ("skip", "fail")
DECODERS = ("workers", "device")


@dataclass(frozen=True)
class ExtractConfig:
    batch_size: int = 0  # images per forward pass; 0: 256 on CUDA, 32 on CPU
    text_batch_size: int = 256
    device: str = "auto"
    workers: int = -1  # processes decoding images ahead of the model; -1: auto (feeding.auto_workers)
    write_threads: int = 0  # threads writing whole chunk files; 0: auto (feeding.auto_write_threads)
    part: int = 0
    nparts: int = 1
    chunk_rows: int = 0  # rows per stored chunk, the unit parts split at; 0: ~1.5 MB chunks (feature_store)
    progress: bool = True
    precision: str = "auto"  # fp32, bf16 or fp16; auto: bf16 on CUDA, fp32 on CPU
    overwrite: bool = False  # replace a store made with other settings
    text_padding: str = "longest"  # "reference": 30 columns padded as the reference DCSM code does (paper/padding.py)
    cache_dir: str | None = None  # the Hugging Face cache of registry weights; default: HF_HOME's
    on_bad_image: str = "skip"  # skip: mark the row invalid and list it in the store's bad_images; fail: stop
    wait: bool = False  # another process writing this part: wait for it instead of stopping
    views: int = 1  # K views per image: view 0 plain, 1..K-1 augmented as the DCSM reference does (views.py)
    seed: int = 0  # seeds the augmented views, per (seed, image row, view); unused with views=1
    # workers: decoded and preprocessed by PIL in the DataLoader workers; device: JPEGs decoded by the model's
    # device (nvJPEG on CUDA) and preprocessed there as tensor ops, not the same pixels (device_decode.py)
    decode: str = "workers"

    def __post_init__(self):
        at_least(
            "extract",
            batch_size=(self.batch_size, 0),
            text_batch_size=(self.text_batch_size, 1),
            workers=(self.workers, -1),
            write_threads=(self.write_threads, 0),
            nparts=(self.nparts, 1),
            chunk_rows=(self.chunk_rows, 0),
            views=(self.views, 1),
        )
        require(
            0 <= self.part < self.nparts,
            "extract",
            f"part={self.part} is outside 0..{self.nparts - 1} (--part counts from 0 to --nparts - 1)",
        )
        one_of("extract", "precision", self.precision, ("auto", *PRECISIONS))
        one_of("extract", "text_padding", self.text_padding, TEXT_PADDINGS)
        one_of("extract", "on_bad_image", self.on_bad_image, BAD_IMAGE)
        one_of("extract", "decode", self.decode, DECODERS)
        require(
            self.decode == "workers" or self.views == 1,
            "extract",
            "decode=device does not make augmented views (views > 1): use decode=workers",
        )


def _pad_id(tokenizer) -> int:
    inner = getattr(tokenizer, "tokenizer", None)
    return int(getattr(inner, "pad_token_id", None) or 0)


def _lengths(ids: torch.Tensor, pad: int) -> torch.Tensor:
    """Real token count (start and end tokens included): one past the last non-pad position."""
    nonpad = ids != pad
    last = torch.where(nonpad, torch.arange(ids.shape[1]), -1).amax(dim=1)
    return (last + 1).to(torch.int32)


def _auto_batch(device: torch.device) -> int:
    return 256 if device.type == "cuda" else 32


def extract(
    items: str | os.PathLike, backbone: str, out: str | os.PathLike, cfg: ExtractConfig = ExtractConfig()
) -> FeatureStore:
    """Extract part `cfg.part` of `cfg.nparts` of the manifest `items` into the store at `out`."""
    parse_backbone(backbone)  # an unknown name fails before any work
    if cfg.decode == "device" and (device := resolve_device(cfg.device)).type != "cuda":
        raise ConfigError(f"extract: decode=device needs a CUDA device, not {device}: the workers decode on the CPU")
    manifest = Path(items)
    ds = read_manifest(manifest)
    fingerprint = manifest_fingerprint(manifest)
    bb = load_backbone(backbone, cfg.device, cache_dir=cfg.cache_dir)
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, bb.device))
    enc = token_encoder(bb.model)
    reference = cfg.text_padding == "reference"
    context = getattr(bb.model, "context_length", TEXT_SEQ)
    if reference and context < TEXT_SEQ:
        raise ConfigError(
            f"extract: text_padding=reference needs {TEXT_SEQ} text positions, "
            f"{bb.spec.arch} has context length {context}"
        )
    ids = bb.tokenizer(list(ds.captions), context_length=TEXT_SEQ) if reference else bb.tokenizer(list(ds.captions))
    lengths = _lengths(ids, _pad_id(bb.tokenizer))
    text_len = ids.shape[1] if reference else int(lengths.max())
    row = _first_readable(ds)
    if row is None:
        raise BadInputError(f"{manifest}: none of the first images can be read; check the dataset root {ds.root}")
    probe = bb.preprocess(open_image(ds, row)).unsqueeze(0).to(bb.device)
    with autocast(bb.device, cfg.precision):
        tok, pooled = enc.image(probe)
    shape = StoreShape(len(ds.images), tok.shape[1], len(ds.captions), text_len, pooled.shape[-1], cfg.views)
    augment = ViewAugment(cfg.views, tuple(probe.shape[-2:]), cfg.seed) if cfg.views > 1 else None
    attrs = {
        "backbone": bb.spec.spec,
        "backbone_id": bb.identity_key,
        "identity": bb.identity,
        "arch": bb.spec.arch,
        "weights": bb.spec.weights,
        "weights_sha256": bb.weights_sha256,
        "activation": bb.info["activation"],
        "open_clip_version": open_clip.__version__,
        "torch_version": torch.__version__,
        "dcsm_cache_version": __version__,
        "preprocess": repr(bb.preprocess),
        "tokens": enc.describe(),
        "dataset": ds.name,
        "fingerprint": fingerprint,
        "manifest": str(manifest.resolve()),
        "context_length": int(ids.shape[1]),
        "text_padding": cfg.text_padding,
        "tokenizer": tokenizer_record(bb.spec.hub or bb.spec.arch, bb.tokenizer),
    }
    if augment is not None:  # (a store of one view keeps the attrs it always had)
        attrs["views"] = augment.record()
    store = FeatureStore.create(
        out, shape, attrs, nparts=cfg.nparts, overwrite=cfg.overwrite, chunk_rows=cfg.chunk_rows
    )
    if store.part_done(cfg.part):
        log.info("%s: part %d of %d already done", out, cfg.part, cfg.nparts)
        store.finish()
        return store
    with store.hold_part(cfg.part, wait=cfg.wait):
        if not store.part_done(cfg.part):  # (done by the holder we waited for)
            _extract_part(store, ds, bb, enc, probe, ids, lengths, text_len, reference, cfg, augment)
    return store


def _extract_part(store, ds, bb, enc, probe, ids, lengths, text_len, reference, cfg, augment=None) -> None:
    ranges = store.part_rows(cfg.part)
    workers = auto_workers(bb.device) if cfg.workers < 0 else cfg.workers
    batch = cfg.batch_size or _auto_batch(bb.device)
    batches = image_batches(
        ds,
        bb.preprocess,
        on_grid(ranges["image"], batch, len(ds.images)),
        batch,
        workers,
        tuple(probe.shape[1:]),
        pin_memory=bb.device.type == "cuda",
        augment=augment,
        decode=DeviceDecode(bb.preprocess, bb.device) if cfg.decode == "device" else None,
    )  # decoding starts now...
    text_fn = (lambda x, n: reference_text_tokens(bb.model, x, n)) if reference else (lambda x, n: enc.text(x))
    threads = cfg.write_threads or auto_write_threads()
    with ChunkWriter(store.path, store.group, threads) as chunks, StoreWriter(chunks) as write:
        _extract_text(write, text_fn, ids, lengths, ranges["text"], text_len, bb.device, cfg)  # ...while text runs
        bad = _extract_images(store, write, enc, batches, ds, cfg)
    store.write_bad_images(cfg.part, bad)
    store.mark_done(cfg.part)


def on_grid(span: tuple[int, int], batch: int, n_rows: int) -> tuple[int, int]:
    """`span` widened to whole batches of the grid that starts at row 0: the rows a part runs the model on."""
    a, b = span
    return (a, b) if a >= b else (a - a % batch, min(n_rows, -(-b // batch) * batch))


def tokenizer_record(name: str, tokenizer) -> dict:
    """What training and evaluation need from the tokenizer, recorded in the store so that they never
    load it: its name and the single token id of each functional word (a superset of the reference's)."""
    fw = FunctionalWords.for_tokenizer(tokenizer, FUNCTIONAL_WORDS)
    return {"name": name, "words": dict(zip(fw.words, fw.token_ids))}


def _first_readable(ds, tries: int = 16) -> int | None:
    for row in range(min(tries, len(ds.images))):
        try:
            open_image(ds, row)
            return row
        except DcsmCacheError:
            continue
    return None


def _extract_text(write, text_fn, ids, lengths, span, text_len, device, cfg) -> None:
    a, b = span
    bar = tqdm(total=b - a, desc="text", unit="cap", disable=not cfg.progress)
    lo, hi = on_grid(span, cfg.text_batch_size, len(ids))
    for s in range(lo, hi, cfg.text_batch_size):
        e = min(hi, s + cfg.text_batch_size)
        with autocast(device, cfg.precision):
            tok, pooled = text_fn(ids[s:e].to(device), lengths[s:e].to(device))
        first, last = max(a, s), min(b, e)  # this part's rows of the batch
        own = slice(first - s, last - s)
        rows = {"text/tokens": unit_fp16(tok[own, :text_len]), "text/pooled": pooled[own].float().half()}
        rows["text/ids"] = ids[first:last, :text_len].numpy().astype(np.int32)
        rows["text/length"] = lengths[first:last].numpy()
        write(first, *to_host(rows))
        bar.update(last - first)
    bar.close()


def _encode(enc, pixels, valid, width, device, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm tokens [B, P, D] and pooled embeddings [B, D], float16 on the model's device, of the valid
    images; zeros elsewhere. The model sees the readable images only (all of a batch's, without a copy)."""
    pixels = pixels.to(device, non_blocking=True)
    if valid.all():
        with autocast(device, cfg.precision):
            tok, pooled = enc.image(pixels)
        return unit_fp16(tok), pooled.float().half()
    rows = torch.from_numpy(np.flatnonzero(valid)).to(device)
    tokens = torch.zeros((len(valid), *width[0]), dtype=torch.float16, device=device)
    pooled = torch.zeros((len(valid), width[1]), dtype=torch.float16, device=device)
    if len(rows):
        tokens[rows], pooled[rows] = _encode(enc, pixels[rows], np.ones(len(rows), bool), width, device, cfg)
    return tokens, pooled


def _extract_images(store, write, enc, batches, ds, cfg) -> list[dict]:
    """Consume decoded batches; the model sees only readable images, every row is written.

    Returns the unreadable images ({row, path, reason}); with on_bad_image=fail the first one stops the run."""
    bad: list[dict] = []
    (a, b), device = store.part_rows(cfg.part)["image"], next(enc.model.parameters()).device
    bar = tqdm(total=b - a, desc="images", unit="img", disable=not cfg.progress)
    width = (store.image_tokens.shape[1:], store.image_pooled.shape[1])
    for start, pixels, valid, errors in batches:
        own = slice(max(a, start) - start, min(b, start + len(valid)) - start)  # this part's rows of the batch
        for row, reason in zip(start + np.flatnonzero(~valid), errors):
            if not a <= row < b:  # a row of the next or previous part, decoded to complete the batch
                continue
            if cfg.on_bad_image == "fail":
                raise BadInputError(f"{reason} (row {row}): fix or remove it, or pass --on-bad-image skip")
            bad.append({"row": int(row), "path": ds.images[row].path, "reason": reason})
        if pixels.ndim == 5:  # [B, K, C, H, W]: view 0 plain, then the augmented views
            tokens, pooled = _encode(enc, pixels[:, 0], valid, width, device, cfg)
            views = [_encode(enc, pixels[:, v], valid, width, device, cfg) for v in range(1, pixels.shape[1])]
            arrays = {"image/views": torch.stack([t for t, _ in views], 1)}
            arrays["image/views_pooled"] = torch.stack([p for _, p in views], 1)
        else:
            (tokens, pooled), arrays = _encode(enc, pixels, valid, width, device, cfg), {}
        arrays = {"image/tokens": tokens, "image/pooled": pooled, "image/valid": valid, **arrays}
        write(start + own.start, *to_host({k: v[own] for k, v in arrays.items()}))
        bar.update(own.stop - own.start)
    bar.close()
    for rec in bad[:10]:
        log.warning("%s (row %d kept, marked invalid)", rec["reason"], rec["row"])
    if len(bad) > 10:
        log.warning("... and %d more unreadable images", len(bad) - 10)
    if bad:
        log.warning("%d unreadable image(s) listed in %s's bad_images attribute", len(bad), store.path)
    return bad
