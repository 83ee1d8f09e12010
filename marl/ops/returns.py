"""Bootstrapped return targets for value-based MARL.

Shape legend: ``B`` episodes, ``T`` time steps, ``K`` value heads (``K = 1`` for mixed/joint
values, ``K = N`` for per-agent values). Time is always dim 1. All inputs are broadcast
against each other, so ``rewards``/``terminated``/``valid`` of shape ``(B, T, 1)`` work with
``next_values`` of shape ``(B, T, N)``.

``next_values[:, t]`` holds ``V_{t+1}``, the (target) value of the state reached after step
``t``. Gradients are not touched here: callers pass detached target values if they want them.

Bootstrap terms are selected with ``torch.where`` rather than multiplied by ``1 - d``, so a
non-finite ``V_{t+1}`` after a terminal step (e.g. ``-inf`` from a max over a padded step whose
actions are all unavailable) yields a finite target instead of ``NaN``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["one_step_targets", "td_lambda_targets"]


def _bootstrap(terminated: Tensor, values: Tensor, gamma: float) -> Tensor:
    """Return ``gamma * (1 - d) * values``, exactly ``0`` where ``d == 1`` even if ``values``
    is non-finite there."""
    not_done = 1.0 - terminated.to(values.dtype)  # same shape as terminated
    return torch.where(not_done != 0, gamma * not_done * values, 0.0)  # broadcast shape


def one_step_targets(
    rewards: Tensor, terminated: Tensor, next_values: Tensor, gamma: float
) -> Tensor:
    """One-step TD targets ``y_t = r_t + gamma * (1 - d_t) * V_{t+1}``.

    Args:
        rewards: ``(B, T, 1)`` or ``(B, T, K)`` rewards ``r_t``.
        terminated: ``(B, T, 1)`` or ``(B, T, K)`` bool/float termination flags ``d_t``.
        next_values: ``(B, T, K)`` values ``V_{t+1}``.
        gamma: Discount factor.

    Returns:
        ``(B, T, K)`` targets (broadcast shape of the inputs).
    """
    return rewards + _bootstrap(terminated, next_values, gamma)  # (B, T, K)


def td_lambda_targets(
    rewards: Tensor,
    terminated: Tensor,
    valid: Tensor,
    next_values: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """TD(lambda) (lambda-return) targets, computed backwards in time.

    ``G_t = r_t + gamma * (1 - d_t) * [(1 - lam) * V_{t+1} + lam * G'_{t+1}]`` where
    ``G'_{t+1} = G_{t+1}`` if ``valid_{t+1}`` else ``V_{t+1}``, and ``G'_T = V_T`` for the last
    time step. So the last valid step of an episode (or any step followed by padding)
    bootstraps purely from ``V_{t+1}``. ``lam = 0`` gives exactly :func:`one_step_targets`;
    ``lam = 1`` on a terminated episode gives the discounted Monte-Carlo return.

    Targets at invalid (padding) steps are meaningless and must be masked by the caller.

    Args:
        rewards: ``(B, T, 1)`` or ``(B, T, K)`` rewards ``r_t``.
        terminated: ``(B, T, 1)`` or ``(B, T, K)`` bool/float termination flags ``d_t``.
        valid: ``(B, T, 1)`` or ``(B, T, K)`` bool/float mask of real transitions.
        next_values: ``(B, T, K)`` values ``V_{t+1}``.
        gamma: Discount factor.
        lam: Lambda in ``[0, 1]``.

    Returns:
        ``(B, T, K)`` targets (broadcast shape of the inputs).
    """
    if lam == 0.0:
        return one_step_targets(rewards, terminated, next_values, gamma)  # (B, T, K)
    shape = torch.broadcast_shapes(rewards.shape, terminated.shape, valid.shape, next_values.shape)
    rewards = rewards.expand(shape)  # (B, T, K)
    terminated = terminated.expand(shape)  # (B, T, K)
    is_valid = valid.expand(shape) != 0  # (B, T, K) bool
    next_values = next_values.expand(shape)  # (B, T, K)
    n_steps = shape[1]

    g = one_step_targets(rewards[:, -1], terminated[:, -1], next_values[:, -1], gamma)  # (B, K)
    out = [g]
    for t in range(n_steps - 2, -1, -1):
        v_next = next_values[:, t]  # (B, K) = V_{t+1}
        g_next = torch.where(is_valid[:, t + 1], g, v_next)  # (B, K) = G'_{t+1}
        mixed = (1.0 - lam) * v_next + lam * g_next  # (B, K)
        g = rewards[:, t] + _bootstrap(terminated[:, t], mixed, gamma)  # (B, K)
        out.append(g)
    out.reverse()
    return torch.stack(out, dim=1)  # (B, T, K)
