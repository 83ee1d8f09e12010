"""Bootstrapped return targets and advantages for MARL.

Shape legend: ``B`` episodes, ``T`` time steps, ``K`` value heads (``K = 1`` for mixed/joint
values, ``K = N`` for per-agent values). Time is always dim 1. All inputs are broadcast
against each other, so ``rewards``/``terminated``/``valid`` of shape ``(B, T, 1)`` work with
``next_values`` of shape ``(B, T, N)``.

``next_values[:, t]`` holds ``V_{t+1}``, the (target) value of the state reached after step
``t``. Gradients are not touched here: callers pass detached target values if they want them.

Bootstrap terms are selected with ``torch.where`` rather than multiplied by ``1 - d``, so a
non-finite ``V_{t+1}`` after a terminal step (e.g. ``-inf`` from a max over a padded step whose
actions are all unavailable) yields a finite target instead of ``NaN``.

Episode ends, as the runner writes them (``valid`` is ``valid_transitions(batch)`` of
:mod:`marl.learners.common`): a *terminated* step has ``terminated = 1`` and never
bootstraps; a *truncated* one (time limit) has ``terminated = 0`` and is the last valid step
of its episode, so it bootstraps from ``V_{t+1}``, the state after it, which is stored.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gae", "nstep_targets", "one_step_targets", "td_lambda_targets"]


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


def gae(
    rewards: Tensor,
    terminated: Tensor,
    valid: Tensor,
    values: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates (Schulman et al. 2016) and the returns they imply.

    ``A_t = delta_t + gamma * lam * (1 - d_t) * A_{t+1}`` with
    ``delta_t = r_t + gamma * (1 - d_t) * V_{t+1} - V_t`` and ``A_{t+1} = 0`` past the last
    valid step. Unrolled, ``A_t + V_t`` is exactly the lambda-return of
    :func:`td_lambda_targets` on the same values, so this is that function minus ``V_t``:
    one recursion serves both. ``lam = 1`` gives the discounted Monte-Carlo return minus
    ``V_t`` on a terminated episode, ``lam = 0`` the one-step TD error ``delta_t``.

    Args:
        rewards: ``(B, T, 1)`` or ``(B, T, K)`` rewards ``r_t``.
        terminated: ``(B, T, 1)`` or ``(B, T, K)`` bool/float termination flags ``d_t``.
        valid: ``(B, T, 1)`` or ``(B, T, K)`` bool/float mask of real transitions.
        values: ``(B, T + 1, K)`` values ``V_0 .. V_T`` of every stored state, the one after
            the last transition included.
        gamma: Discount factor.
        lam: Lambda in ``[0, 1]``.

    Returns:
        ``(advantages, returns)``, each ``(B, T, K)``; both exactly ``0`` at invalid steps.
    """
    returns = td_lambda_targets(rewards, terminated, valid, values[:, 1:], gamma, lam)  # (B, T, K)
    is_valid = valid != 0  # (B, T, 1) or (B, T, K) bool
    advantages = torch.where(is_valid, returns - values[:, :-1], 0.0)  # (B, T, K)
    return advantages, torch.where(is_valid, returns, 0.0)  # (B, T, K) each


def nstep_targets(
    rewards: Tensor,
    terminated: Tensor,
    valid: Tensor,
    values: Tensor,
    gamma: float,
    n: int,
) -> Tensor:
    """n-step return targets (EPyMARL's A2C critic), cut at the end of the episode.

    ``y_t = r_t + gamma r_{t+1} + ... + gamma^{m-1} r_{t+m-1} + gamma^m V_{t+m}``, with
    ``m = n`` unless the episode ends sooner: on termination the sum stops with no
    bootstrap; on a truncation or the batch's last step ``t+m-1`` it bootstraps from the
    state after that step. Computed as ``n`` backward passes of
    ``G^(k)_t = r_t + gamma (1 - d_t) G'^(k-1)_{t+1}``, ``G'`` being ``V`` where step
    ``t + 1`` is not valid, as in :func:`td_lambda_targets`. ``n = 1`` gives
    :func:`one_step_targets`.

    Unlike EPyMARL's ``nstep_returns``, a truncation before the batch's last step
    bootstraps too. Targets at invalid (padding) steps are meaningless and must be masked
    by the caller.

    Args:
        rewards: ``(B, T, 1)`` or ``(B, T, K)`` rewards ``r_t``.
        terminated: ``(B, T, 1)`` or ``(B, T, K)`` bool/float termination flags ``d_t``.
        valid: ``(B, T, 1)`` or ``(B, T, K)`` bool/float mask of real transitions.
        values: ``(B, T + 1, K)`` values ``V_0 .. V_T`` (``V_0`` is not used).
        gamma: Discount factor.
        n: Number of rewards summed, at least 1.

    Returns:
        ``(B, T, K)`` targets (broadcast shape of the inputs).
    """
    if n < 1:
        raise ValueError(f"n-step targets need n >= 1, got {n}")
    shape = torch.broadcast_shapes(
        rewards.shape, terminated.shape, valid.shape, values[:, 1:].shape
    )
    next_values = values[:, 1:].expand(shape)  # (B, T, K) = V_{t+1}
    g = one_step_targets(rewards, terminated, next_values, gamma)  # (B, T, K) = G^(1)
    is_valid_next = valid[:, 1:] != 0  # (B, T - 1, 1) or (B, T - 1, K) bool
    for _ in range(n - 1):
        g_next = torch.cat(
            [torch.where(is_valid_next, g[:, 1:], next_values[:, :-1]), next_values[:, -1:]],
            dim=1,
        )  # (B, T, K) = G'_{t+1}
        g = rewards + _bootstrap(terminated, g_next, gamma)  # (B, T, K)
    return g
