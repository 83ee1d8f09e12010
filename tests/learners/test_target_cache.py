"""The target cache (`learner.cache_targets`): the same updates, fewer target forwards."""

from __future__ import annotations

import pytest
import torch

from marl.errors import UsageError
from marl.learners.q_learning import QLearner
from tests.learners.test_q_learning import make_batch, make_mac, make_mixer

LENGTHS = [5, 3, 4, 2, 5, 4]  # stored steps; episode_limit 4 gives 5 steps
TERMINAL = [None, 1, 2, 0, 3, None]


def make_learner(cache: bool) -> QLearner:
    learner = QLearner(
        make_mac(0),
        make_mixer("qmix", 1),
        lr=0.01,
        target_update_interval=3,
        cache_targets=cache,
    )
    learner.use_target_cache(capacity=len(LENGTHS), max_seq_length=5)
    return learner


def count_target_rows(learner: QLearner) -> list[int]:
    """Wrap the target controller's unroll to count the episodes it runs on."""
    rows: list[int] = []
    unroll = learner.target_mac.unroll_steps

    def counting(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        rows.append(obs.shape[0])
        return unroll(obs, actions)

    learner.target_mac.unroll_steps = counting  # type: ignore[method-assign]
    return rows


def test_cached_targets_give_the_same_updates() -> None:
    buffer = make_batch(LENGTHS, TERMINAL, seed=2)
    plain, cached = make_learner(False), make_learner(True)
    plain_rows, cached_rows = count_target_rows(plain), count_target_rows(cached)
    picks = [[0, 1, 2], [1, 2, 3], [0, 2, 4], [2, 4, 5], [1, 3, 5], [0, 4, 5], [2, 3, 4]]
    g = torch.Generator().manual_seed(0)
    for episode, pick in enumerate(picks):
        if episode == 4:  # the buffer overwrites slot 2 with another episode
            new = make_batch([5], [None], seed=9)
            for name, tensor in new.data.items():
                buffer.data[name][2] = tensor[0]
            cached.forget(torch.tensor([2]))
        slots = torch.tensor(pick)[torch.randperm(3, generator=g)]
        sample = buffer.index(slots)
        sample = sample.slice_time(sample.max_t_filled())
        plain.train(sample, t_env=0, episode=episode)
        cached.train(sample, t_env=0, episode=episode, slots=slots)
        for a, b in zip(plain.params, cached.params, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Target updates at episodes 3 and 6: each period computes a slot once.
    assert sum(plain_rows) == 3 * len(picks)
    assert sum(cached_rows) < sum(plain_rows)


def test_a_longer_sample_recomputes_the_missing_steps() -> None:
    learner = make_learner(True)
    batch = make_batch(LENGTHS, TERMINAL, seed=3)
    slots = torch.tensor([1, 3])  # lengths 3 and 2: a 3-step sample
    short = batch.index(slots)
    learner.train(short.slice_time(short.max_t_filled()), 0, 0, slots=slots)
    assert learner.target_cache is not None
    assert learner.target_cache.steps[slots].tolist() == [3, 3]
    longer = batch.index(torch.tensor([1, 0]))  # slot 0 has 5 steps
    learner.train(longer, 0, 0, slots=torch.tensor([1, 0]))
    assert learner.target_cache.steps[torch.tensor([1, 0])].tolist() == [5, 5]
    with torch.no_grad():
        expected = learner.target_mac.unroll_steps(longer.float("obs"), longer["actions"])
    torch.testing.assert_close(learner.target_cache.values[torch.tensor([1, 0])], expected)


def test_cache_targets_needs_hard_target_updates() -> None:
    with pytest.raises(UsageError, match="hard target updates"):
        QLearner(make_mac(), None, tau=0.01, cache_targets=True)
