"""Sampling from a masked softmax policy, for the actor-critic learners.

The agents output logits; an action is drawn from the softmax over the available actions
only, so an unavailable action has probability exactly 0. PyMARL's COMA adds an optional
epsilon floor: the policy mixed with the uniform distribution over the available actions,
``(1 - eps) * pi + eps / n_available``, with eps annealed over env steps.

Shapes: B env copies, N agents, A actions (``...`` any leading dims, e.g. B, T, N).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from marl.exploration.schedules import LinearSchedule
from marl.ops.masked import masked_fill_unavailable
from marl.validation import bounds


@dataclass
class SoftmaxConfig:
    """Schema for masked softmax sampling (`algo.action_selector`)."""

    _target_: str = "marl.exploration.softmax.SoftmaxSelector"
    epsilon_start: float = field(default=0.0, metadata=bounds(0, 1))
    """Weight of the uniform floor over available actions at t_env = 0 (0: no floor)."""
    epsilon_finish: float = field(default=0.0, metadata=bounds(0, 1))
    """Weight of the uniform floor after the anneal (PyMARL's COMA: 0.01)."""
    epsilon_anneal_time: int = field(default=0, metadata=bounds(0))
    """Environment steps of the linear anneal (0: epsilon_finish from the start)."""


def masked_policy(logits: torch.Tensor, avail: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Action probabilities ``(..., A)`` from logits ``(..., A)`` and avail ``(..., A)`` bool.

    The softmax over available actions, mixed with weight ``epsilon`` with the uniform
    distribution over them. Unavailable actions get exactly 0. A row with no available
    action (padding) gets the uniform distribution over all A, so it stays finite; callers
    mask it out. The one function both acting and learning use, so the log-probs a learner
    computes are those of the policy that acted.

    Taking logs: ``log(probs)`` is ``-inf`` at unavailable actions, and ``0 * -inf`` is NaN
    in an entropy's forward or backward pass; use `log_policy`.
    """
    available = avail if avail.dtype == torch.bool else avail != 0  # (..., A) bool
    has_any = available.any(dim=-1, keepdim=True)  # (..., 1)
    masked = masked_fill_unavailable(logits, available)  # (..., A), -inf where unavailable
    probs = torch.softmax(torch.where(has_any, masked, 0.0), dim=-1)  # (..., A)
    if epsilon > 0:
        support = available | ~has_any  # (..., A): padding rows spread over all actions
        n_support = support.sum(dim=-1, keepdim=True)  # (..., 1) >= 1
        uniform = support.to(probs.dtype) / n_support  # (..., A)
        probs = (1.0 - epsilon) * probs + epsilon * uniform  # (..., A)
    return probs


def log_policy(probs: torch.Tensor) -> torch.Tensor:
    """Logs of policy probabilities ``(..., A)``, floored at the smallest positive float:
    finite at unavailable actions (probability 0), so entropies and their gradients are
    too."""
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()  # (..., A)


class SoftmaxSelector:
    """Samples each agent's action from its masked softmax policy; argmax in test mode.

    Stateless like `EpsilonGreedy`: the floor is a function of ``t_env``, and the draws
    come from the runner's generator, so resuming restores both. On-policy learners get
    this selector too and compute the policy that acted with `policy`.
    """

    def __init__(
        self,
        epsilon_start: float = SoftmaxConfig.epsilon_start,
        epsilon_finish: float = SoftmaxConfig.epsilon_finish,
        epsilon_anneal_time: int = SoftmaxConfig.epsilon_anneal_time,
    ) -> None:
        self.schedule = LinearSchedule(epsilon_start, epsilon_finish, epsilon_anneal_time)
        self.has_floor = epsilon_start > 0 or epsilon_finish > 0

    def stats(self, t_env: int) -> dict[str, float]:
        return {"train/epsilon": self.schedule(t_env)} if self.has_floor else {}

    def policy(self, logits: torch.Tensor, avail: torch.Tensor, t_env: int) -> torch.Tensor:
        """The training policy at ``t_env``: probs (..., A) from logits and avail (..., A)."""
        return masked_policy(logits, avail, self.schedule(t_env))  # (..., A)

    def select(
        self,
        logits: torch.Tensor,
        avail: torch.Tensor,
        t_env: int,
        test_mode: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """logits (B, N, A), avail (B, N, A) bool -> actions (B, N) long.

        Training draws one action per agent from `masked_policy` with ``generator``; test
        mode takes the most likely available action (the floor does not change it).
        """
        if test_mode:
            return masked_fill_unavailable(logits, avail).argmax(dim=-1)  # (B, N)
        probs = self.policy(logits, avail, t_env)  # (B, N, A)
        flat = probs.reshape(-1, probs.shape[-1])  # (B * N, A)
        drawn = torch.multinomial(flat, 1, generator=generator)  # (B * N, 1)
        return drawn.view(probs.shape[:-1])  # (B, N)
