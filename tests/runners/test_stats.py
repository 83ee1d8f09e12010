"""EpisodeStats: known summaries and a state that survives checkpoints at any moment."""

from __future__ import annotations

import pytest
import torch

from marl.runners.episode import RolloutStats
from marl.runners.stats import EpisodeStats


def rollout(returns: list[float], lengths: list[int], won: list[float]) -> RolloutStats:
    return RolloutStats(
        torch.tensor(returns), torch.tensor(lengths), {"battle_won": torch.tensor(won)}
    )


def test_summary_known_answer_and_reset() -> None:
    stats = EpisodeStats()
    stats.add(rollout([1.0, 3.0], [2, 4], [0.0, 1.0]))
    stats.add(rollout([5.0], [6], [1.0]))
    assert len(stats) == 3
    out = stats.summary("train")
    assert out["train/return_mean"] == pytest.approx(3.0)
    assert out["train/return_std"] == pytest.approx((8 / 3) ** 0.5)
    assert out["train/return_min"] == 1.0 and out["train/return_max"] == 5.0
    assert out["train/ep_length_mean"] == pytest.approx(4.0)
    assert out["train/battle_won_mean"] == pytest.approx(2 / 3)
    assert len(stats) == 0


@pytest.mark.parametrize("n_batches", [0, 1, 2])
def test_state_round_trip_at_any_moment(n_batches: int) -> None:
    """Saving right after a summary (or before any episode) must work too."""
    stats = EpisodeStats()
    stats.add(rollout([9.0], [1], [0.0]))
    stats.summary("train")
    len(stats)
    for i in range(n_batches):
        stats.add(rollout([float(i), 2.0], [1, 2], [0.0, 1.0]))
    restored = EpisodeStats()
    restored.load_state_dict(stats.state_dict())
    assert len(restored) == len(stats)
    if n_batches:
        assert restored.summary("x") == stats.summary("x")
