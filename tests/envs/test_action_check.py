"""ActionCheck, and the native batched envs that use it: at once on the CPU, deferred to the
next reset elsewhere (or when asked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from marl.envs.action_check import ActionCheck
from marl.envs.battle.env import BattleEnv
from marl.envs.matrix import MatrixEnv

CPU = torch.device("cpu")
LIVE = torch.tensor([True, False])  # copy 1 has ended
AVAIL = torch.tensor([[[True, True, False], [True, False, True]]] * 2)  # (B=2, N=2, A=3)


def test_default_is_at_once_on_the_cpu_and_deferred_elsewhere() -> None:
    assert not ActionCheck(3, CPU).deferred
    assert ActionCheck(3, torch.device("meta")).deferred
    assert ActionCheck(3, CPU, deferred=True).deferred


def test_at_once_names_the_bad_action() -> None:
    check = ActionCheck(3, CPU)
    good = torch.tensor([[1, 2], [2, 1]])  # copy 1's unavailable actions do not count
    assert torch.equal(check(good, LIVE, AVAIL), good)
    with pytest.raises(ValueError, match=r"Agent 1 of env copy 0 cannot perform action 1 "):
        check(torch.tensor([[0, 1], [0, 0]]), LIVE, AVAIL)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\), got \[\[0, 3\], \[0, 0\]\]"):
        check(torch.tensor([[0, 3], [0, 0]]), LIVE)  # out of range, even with all available


def test_deferred_raises_once_at_the_next_episode_and_clamps_meanwhile() -> None:
    check = ActionCheck(3, CPU, deferred=True)
    check.raise_pending()  # nothing pending
    safe = check(torch.tensor([[0, 5], [-1, 0]]), LIVE, AVAIL)
    assert safe.tolist() == [[0, 2], [0, 0]]  # indexable until reported
    check(torch.tensor([[0, 0], [0, 0]]), LIVE, AVAIL)  # a later good step keeps the flag
    with pytest.raises(ValueError, match="during the last episode; run the env with device=cpu"):
        check.raise_pending()
    check.raise_pending()  # reported once


def battle(defer: bool) -> BattleEnv:
    return BattleEnv("3m", batch_size=2, seed=0, defer_checks=defer)


def matrix(defer: bool) -> MatrixEnv:
    return MatrixEnv("two_step", batch_size=2, seed=0, defer_checks=defer)


NATIVE: dict[str, Callable[[bool], Any]] = {"battle": battle, "matrix": matrix}


def bad_actions(env: Any) -> torch.Tensor:
    """Every agent picks an action past the last one."""
    info = env.get_env_info()
    return torch.full((env.batch_size, info.n_agents), info.n_actions, dtype=torch.long)


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_env_raises_at_the_step(name: str) -> None:
    env = NATIVE[name](False)
    env.reset()
    with pytest.raises(ValueError, match="must lie in"):
        env.step(bad_actions(env))


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_env_deferred_raises_at_the_next_reset(name: str) -> None:
    env = NATIVE[name](True)
    env.reset()
    result = env.step(bad_actions(env))  # no host read, no index error
    assert result.reward.shape == (env.batch_size,)
    with pytest.raises(ValueError, match="during the last episode"):
        env.reset()
    env.reset()  # reported once; the env plays on
