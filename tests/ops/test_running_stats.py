"""Tests for marl.ops.running_stats."""

from __future__ import annotations

import torch

from marl.ops.running_stats import RunningMeanStd


def test_matches_moments_of_all_values() -> None:
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randn(n, generator=g) * 3 + 2 for n in (1, 7, 40, 0, 13)]
    stats = RunningMeanStd()
    for c in chunks:
        stats.update(c)
    everything = torch.cat(chunks).double()
    assert stats.count == everything.numel()
    torch.testing.assert_close(stats.mean, everything.mean())
    torch.testing.assert_close(stats.var, everything.var(unbiased=False))


def test_standardise_and_round_trip() -> None:
    stats = RunningMeanStd()
    stats.update(torch.tensor([1.0, 3.0]))  # mean 2, std 1
    out = stats.standardise(torch.tensor([[2.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 2.0]]))
    assert out.dtype == torch.float32
    copy = RunningMeanStd()
    copy.load_state_dict(stats.state_dict())
    assert copy.state_dict() == stats.state_dict()


def test_constant_values_do_not_divide_by_zero() -> None:
    stats = RunningMeanStd()
    stats.update(torch.zeros(5))
    torch.testing.assert_close(stats.standardise(torch.ones(3)), torch.ones(3))
