"""Tests for marl.exploration (epsilon-greedy selection and the linear schedule)."""

from __future__ import annotations

import pytest
import torch

from marl.exploration.base import ActionSelector
from marl.exploration.epsilon_greedy import EpsilonGreedy, EpsilonGreedyConfig
from marl.exploration.schedules import LinearSchedule

B, N, A = 64, 3, 5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_avail(seed: int, b: int = B) -> torch.Tensor:
    """(b, N, A) bool with at least one available action per agent."""
    avail = torch.rand(b, N, A, generator=gen(seed)) < 0.4
    avail[..., 2] |= ~avail.any(-1)
    return avail


# ----------------------------------------------------------------------------- schedule
def test_linear_schedule_known_answers() -> None:
    s = LinearSchedule(start=1.0, finish=0.05, duration=100)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.525)  # 1 + 0.5 * (0.05 - 1)
    assert s(25) == pytest.approx(0.7625)  # 1 + 0.25 * (-0.95)
    assert s(100) == pytest.approx(0.05)
    assert s(10_000) == pytest.approx(0.05)  # stays after the anneal
    assert s(-5) == 1.0  # clamped before the start
    assert LinearSchedule(0.2, 0.8, 10)(5) == pytest.approx(0.5)  # increasing works too
    assert LinearSchedule(1.0, 0.1, 0)(0) == 0.1  # zero duration: finish at once


def test_stats_report_epsilon_on_the_schedule() -> None:
    sel = EpsilonGreedy(epsilon_start=0.9, epsilon_finish=0.1, epsilon_anneal_time=1000)
    assert isinstance(sel, ActionSelector)
    assert sel.stats(0) == {"train/epsilon": pytest.approx(0.9)}
    assert sel.stats(500) == {"train/epsilon": pytest.approx(0.5)}  # 0.9 + 0.5 * (0.1 - 0.9)
    assert sel.stats(1000) == {"train/epsilon": pytest.approx(0.1)}
    assert sel.stats(5000) == {"train/epsilon": pytest.approx(0.1)}


def test_config_defaults() -> None:
    cfg = EpsilonGreedyConfig()
    assert cfg._target_ == "marl.exploration.epsilon_greedy.EpsilonGreedy"
    sel = EpsilonGreedy()
    assert sel.stats(0)["train/epsilon"] == 1.0
    assert sel.stats(25_000)["train/epsilon"] == pytest.approx(0.525)
    assert sel.stats(50_000)["train/epsilon"] == pytest.approx(0.05)


# ----------------------------------------------------------------------------- selection
@pytest.mark.parametrize("t_env", [0, 50, 100])  # epsilon 1.0, 0.5, 0.0
def test_never_picks_unavailable(t_env: int) -> None:
    sel = EpsilonGreedy(1.0, 0.0, 100)
    g = gen(1)
    for draw in range(20):
        avail = random_avail(draw)
        q = torch.randn(B, N, A, generator=g) * 10
        q[~avail] += 100.0  # unavailable actions look best
        actions = sel.select(q, avail, t_env, test_mode=False, generator=g)
        assert actions.shape == (B, N) and actions.dtype == torch.long
        assert avail.gather(-1, actions.unsqueeze(-1)).all()


def test_greedy_in_test_mode_over_available_only() -> None:
    sel = EpsilonGreedy(1.0, 1.0, 100)  # epsilon 1 everywhere: ignored in test mode
    q = torch.tensor([[[9.0, 1.0, 3.0, 2.0, 0.0], [0.0, 5.0, -1.0, 7.0, 6.0]]])  # (1, 2, 5)
    avail = torch.tensor([[[False, True, True, True, False], [True, True, True, False, True]]])
    # agent0: best available is action 2 (3.0; 9.0 unavailable)
    # agent1: best available is action 4 (6.0; 7.0 unavailable)
    for seed in range(5):
        actions = sel.select(q, avail, t_env=0, test_mode=True, generator=gen(seed))
        assert actions.tolist() == [[2, 4]]


def test_epsilon_zero_is_greedy_in_training() -> None:
    sel = EpsilonGreedy(1.0, 0.0, 10)
    avail = random_avail(3)
    q = torch.randn(B, N, A, generator=gen(4))
    greedy = q.masked_fill(~avail, float("-inf")).argmax(-1)
    actions = sel.select(q, avail, t_env=10, test_mode=False, generator=gen(5))
    assert torch.equal(actions, greedy)


def test_same_seed_same_actions() -> None:
    sel = EpsilonGreedy(0.5, 0.5, 1)
    avail = random_avail(6)
    q = torch.randn(B, N, A, generator=gen(7))
    a1 = sel.select(q, avail, 0, False, gen(42))
    a2 = sel.select(q, avail, 0, False, gen(42))
    a3 = sel.select(q, avail, 0, False, gen(43))
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, a3)


def test_epsilon_one_covers_all_available_actions() -> None:
    sel = EpsilonGreedy(1.0, 1.0, 1)
    avail = torch.tensor([[True, False, True, True, False]]).expand(2000, 1, A)
    q = torch.zeros(2000, 1, A)
    q[..., 0] = 100.0  # greedy would always pick 0
    actions = sel.select(q, avail, 0, False, gen(8)).flatten()
    counts = torch.bincount(actions, minlength=A)
    assert counts[1] == 0 and counts[4] == 0
    # each available action gets roughly a third of 2000 draws
    for a in (0, 2, 3):
        assert 500 < counts[a] < 830, counts.tolist()
