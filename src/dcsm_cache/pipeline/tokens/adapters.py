"""Shared pieces of the token adapters: the adapter records and the fp32 projection.

    tokens = project(x, visual.proj)          # x @ proj, in fp32 even inside a bf16/fp16 autocast

Every adapter ends by putting tokens and the pooled vector through the model's own final maps.
`project` does that step in fp32 with autocast switched off, so that under mixed precision the
last (and most precision-sensitive) matrix product is exact; in fp32 it is the same arithmetic as
the model's own forward, so pooled outputs equal `encode_image`/`encode_text`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class ImageAdapter:
    """How to get tokens out of one image-tower family. `when` narrows a type match (e.g. by pool)."""

    family: str
    tower: type
    fn: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]  # (visual, pixels) -> (tokens, pooled)
    describe: Callable[[nn.Module], dict]
    when: Callable[[nn.Module], bool] = lambda tower: True


@dataclass(frozen=True)
class TextAdapter:
    """How to get tokens out of one text-tower family; the tower is `model.text`, or the model itself
    for open_clip.CLIP, whose text transformer is inlined."""

    family: str
    tower: type
    fn: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]  # (tower, ids) -> (tokens, pooled)
    describe: Callable[[nn.Module], dict]
    when: Callable[[nn.Module], bool] = lambda tower: True


def _no_autocast(x: Tensor):
    try:
        active = torch.is_autocast_enabled(x.device.type)
    except RuntimeError:  # a device type autocast does not know (meta, in shape-only tests)
        active = False
    return torch.autocast(device_type=x.device.type, enabled=False) if active else contextlib.nullcontext()


def project(x: Tensor, *maps) -> Tensor:
    """Apply each map in turn (a [in, out] matrix, an nn.Linear or any per-token module), in fp32.

    A map of None is skipped. A module whose weights are not fp32 (a model cast to half on purpose)
    runs as it is, in its own dtype.
    """
    for m in maps:
        if m is None:
            continue
        if isinstance(m, nn.Module):
            params = list(m.parameters())
            if params and params[0].dtype != torch.float32:
                x = m(x.to(params[0].dtype))
                continue
            with _no_autocast(x):
                x = m(x.float())
        elif m.dtype != torch.float32:
            x = x.to(m.dtype) @ m
        else:
            with _no_autocast(x):
                x = x.float() @ m
    return x


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear in fp32 (for attention value projections stored as raw weights)."""
    with _no_autocast(x):
        return F.linear(x.float(), weight.float(), None if bias is None else bias.float())
