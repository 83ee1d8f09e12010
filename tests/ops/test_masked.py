"""Tests for :mod:`marl.ops.masked`."""

from __future__ import annotations

import torch

from marl.ops.masked import masked_fill_unavailable, masked_mean


def test_masked_mean_broadcast_mask() -> None:
    x = torch.arange(12.0).view(2, 2, 3)  # rows [0,1,2], [3,4,5], [6,7,8], [9,10,11]
    mask = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]]])  # (B, T, 1): rows 0 and 3
    # (0+1+2 + 9+10+11) / 6 = 33 / 6 = 5.5 (count is over the expanded mask)
    assert masked_mean(x, mask).item() == 5.5
    assert masked_mean(x, mask.bool()).item() == 5.5
    assert masked_mean(x, torch.ones(2, 2, 1)).item() == 5.5  # plain mean of 0..11


def test_masked_mean_all_zero_mask() -> None:
    x = torch.randn(2, 3, 4)
    out = masked_mean(x, torch.zeros(2, 3, 1))
    assert out.item() == 0.0
    assert not torch.isnan(out)


def test_masked_mean_ignores_nan_at_masked_positions_and_grads() -> None:
    x = torch.tensor([[1.0, float("nan")], [3.0, float("inf")]], requires_grad=True)
    mask = torch.tensor([[True, False], [True, False]])
    out = masked_mean(x, mask)
    assert out.item() == 2.0
    out.backward()
    assert torch.equal(x.grad, torch.tensor([[0.5, 0.0], [0.5, 0.0]]))


def test_masked_fill_unavailable() -> None:
    q = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    avail = torch.tensor([[True, False, True], [False, False, True]])
    out = masked_fill_unavailable(q, avail)
    inf = float("-inf")
    assert torch.equal(out, torch.tensor([[1.0, inf, 3.0], [inf, inf, 6.0]]))
    assert torch.equal(q, torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))  # not in place
    out2 = masked_fill_unavailable(q, avail.long(), fill=-1e9)
    assert torch.equal(out2, torch.tensor([[1.0, -1e9, 3.0], [-1e9, -1e9, 6.0]]))
    assert out2.argmax(-1).tolist() == [2, 2]
