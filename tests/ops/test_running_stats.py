"""Tests for marl.ops.running_stats."""

from __future__ import annotations

import pytest
import torch

from marl.ops.running_stats import RunningMeanStd
from tests.conftest import count_host_reads


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


def test_a_mask_counts_only_its_values() -> None:
    g = torch.Generator().manual_seed(1)
    values = torch.randn(4, 6, 1, generator=g)  # (B, T, 1)
    mask = torch.rand(4, 6, 1, generator=g) > 0.4  # (B, T, 1)
    masked, picked = RunningMeanStd(), RunningMeanStd()
    for _ in range(2):
        masked.update(values, mask)
        picked.update(values[mask])
    assert masked.count == picked.count == 2 * int(mask.sum())
    torch.testing.assert_close(masked.mean, picked.mean)
    torch.testing.assert_close(masked.var, picked.var)


def test_an_empty_mask_changes_nothing() -> None:
    stats = RunningMeanStd()
    none = torch.zeros(3, dtype=torch.bool)
    stats.update(torch.tensor([5.0, 6.0, 7.0]), none)  # before any value: still the identity
    assert stats.count == 0
    torch.testing.assert_close(stats.standardise(torch.tensor([2.0])), torch.tensor([2.0]))
    stats.update(torch.tensor([1.0, 3.0]))
    before = stats.state_dict()
    stats.update(torch.tensor([9.0, 9.0, 9.0]), none)
    assert stats.state_dict() == before


def test_update_and_standardise_never_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host read per learner update, so a GPU learner does not wait for the device."""
    stats = RunningMeanStd()
    stats.load_state_dict({"count": 2, "mean": 2.0, "var": 1.0})
    count_host_reads(monkeypatch, fail=True)
    stats.update(torch.tensor([[1.0, 3.0]]), torch.tensor([[True, False]]))
    out = stats.standardise(torch.tensor([1.0]))
    monkeypatch.undo()
    assert stats.count == 3 and torch.isfinite(out).all()
