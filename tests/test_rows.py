"""The work after the model: float16 unit rows bit for bit as normalising in float32 and rounding gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcsm_cache.pipeline.extract.rows import to_host, unit_fp16


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 197, 512), (2, 64, 128), (2, 257, 1024), (257, 512), (129, 512)])
@pytest.mark.parametrize("sliced", [False, True])
def test_unit_rows_equal_normalize_then_half(dtype, shape, sliced):
    """Whole and in cache-sized blocks (the larger shapes; the last block of one row or more), of rows
    laid out contiguously or not (a model's tokens without its class token)."""
    x = torch.randn((shape[0], shape[1] + 1, *shape[2:]), generator=torch.Generator().manual_seed(0)) * 30
    x = x[:, 1:] if sliced else x[:, :-1].contiguous()
    x[0, 0] = 0  # a zero row stays zero (F.normalize's eps)
    x[-1, -1] = 1e-30  # tiny values: float16 subnormals and zeros
    x = x.to(dtype)
    got, want = unit_fp16(x), F.normalize(x.float(), dim=-1).half()
    assert got.dtype == torch.float16 and torch.equal(got.view(torch.int16), want.view(torch.int16))


def test_cpu_rows_reach_the_host_as_they_are():
    t, ids = torch.ones(2, 3, dtype=torch.float16), np.arange(4, dtype=np.int32)
    host, ready = to_host({"a": t, "ids": ids})
    ready()
    assert isinstance(host["a"], np.ndarray) and np.shares_memory(host["a"], t.numpy()) and host["ids"] is ids


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rows_arrive_in_pinned_memory_once_ready():
    t = torch.randn(64, 197, 512, device="cuda").half()
    host, ready = to_host({"a": t})
    ready()
    np.testing.assert_array_equal(host["a"], t.cpu().numpy())
