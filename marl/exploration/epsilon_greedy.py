"""Epsilon-greedy action selection over available actions.

Shapes: B env copies, N agents, A actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from marl.exploration.schedules import LinearSchedule
from marl.ops.masked import masked_fill_unavailable
from marl.validation import bounds


@dataclass
class EpsilonGreedyConfig:
    """Schema for epsilon-greedy exploration (`algo.action_selector`)."""

    _target_: str = "marl.exploration.epsilon_greedy.EpsilonGreedy"
    epsilon_start: float = field(default=1.0, metadata=bounds(0, 1))
    """Exploration rate at t_env = 0."""
    epsilon_finish: float = field(default=0.05, metadata=bounds(0, 1))
    """Exploration rate after the anneal."""
    epsilon_anneal_time: int = field(default=50000, metadata=bounds(0))
    """Environment steps of the linear anneal (0: epsilon_finish from the start)."""


class EpsilonGreedy:
    """Greedy over available actions, uniform over available ones with probability epsilon.

    Stateless: epsilon is a function of ``t_env``, so the schedule's position is
    restored with the env step counter.
    """

    def __init__(
        self,
        epsilon_start: float = EpsilonGreedyConfig.epsilon_start,
        epsilon_finish: float = EpsilonGreedyConfig.epsilon_finish,
        epsilon_anneal_time: int = EpsilonGreedyConfig.epsilon_anneal_time,
    ) -> None:
        self.schedule = LinearSchedule(epsilon_start, epsilon_finish, epsilon_anneal_time)

    def stats(self, t_env: int) -> dict[str, float]:
        return {"train/epsilon": self.schedule(t_env)}

    def select(
        self,
        q: torch.Tensor,
        avail: torch.Tensor,
        t_env: int,
        test_mode: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """q (B, N, A), avail (B, N, A) bool -> actions (B, N) long; greedy in test mode.

        Every agent needs at least one available action (the runner checks each
        episode's masks once, not every step: on a GPU a check is a host-device sync).
        """
        if not test_mode:
            # One draw per agent: a coin (explore with probability epsilon) and A uniform
            # scores. An exploring agent ranks its actions by the scores instead of q, so
            # one masked argmax gives the greedy action or a uniform available one.
            shape = (*q.shape[:-1], q.shape[-1] + 1)
            draws = torch.rand(shape, generator=generator, device=q.device)  # (B, N, 1 + A)
            explore = draws[..., :1] < self.schedule(t_env)  # (B, N, 1)
            q = torch.where(explore, draws[..., 1:], q)  # (B, N, A)
        return masked_fill_unavailable(q, avail).argmax(dim=-1)  # (B, N)
