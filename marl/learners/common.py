"""What every learner is and shares: the `Learner` protocol, target networks, the optimiser,
the mask of real transitions.

A learner's constructor names the modules it trains (``mac``, ``mixer``, ``critic``, ...)
and takes its own random stream (``generator``), which its ``state_dict`` saves. An
on-policy learner also takes the runner's ``action_selector``: it learns the policy that
acted, so it computes that policy as the selector does.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from marl.data.episode_batch import EpisodeBatch
from marl.errors import UsageError
from marl.exploration.softmax import SoftmaxSelector
from marl.learners import optim


@runtime_checkable
class Learner(Protocol):
    """Trains the networks of one algorithm on batches of episodes."""

    on_policy: ClassVar[bool]
    """True: train() gets each rollout once, as played (no replay)."""

    def train(
        self, batch: EpisodeBatch, t_env: int, episode: int, stats: bool = True
    ) -> dict[str, float]: ...  # its stats (learner/...), none with stats=False

    def networks(self) -> dict[str, nn.Module]: ...  # the live networks by module name

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def load_weights(self, state: dict[str, Any]) -> None: ...  # networks only (fine-tuning)


class TargetNetworks:
    """Frozen copies of live networks, for bootstrapped targets.

    Hard updates copy the live weights every ``interval`` episodes; with ``tau`` every
    update moves each target weight a fraction ``tau`` towards the live one instead.
    """

    def __init__(self, live: dict[str, nn.Module], interval: int, tau: float | None) -> None:
        self.live = live
        self.targets = {n: copy.deepcopy(net).requires_grad_(False) for n, net in live.items()}
        self.interval, self.tau = interval, tau
        self.last_update_episode = 0

    def __getitem__(self, name: str) -> nn.Module:
        return self.targets[name]

    def update(self, episode: int) -> bool:
        """Soft update, or a hard copy when due; True when a hard copy happened."""
        if self.tau is not None:
            with torch.no_grad():
                for name, live in self.live.items():
                    target = self.targets[name]
                    for tp, p in zip(target.parameters(), live.parameters(), strict=True):
                        tp.lerp_(p, self.tau)  # tp += tau * (p - tp)
            return False
        if episode - self.last_update_episode < self.interval:
            return False
        for name, live in self.live.items():
            self.targets[name].load_state_dict(live.state_dict())
        self.last_update_episode = episode
        return True

    def state_dict(self) -> dict[str, Any]:
        """``target_<name>`` per network and ``last_target_update_episode``: flat keys
        that a learner merges into its own state."""
        state: dict[str, Any] = {f"target_{n}": t.state_dict() for n, t in self.targets.items()}
        return state | {"last_target_update_episode": self.last_update_episode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """From a learner's state (other keys are ignored)."""
        for name, target in self.targets.items():
            target.load_state_dict(state[f"target_{name}"])
        self.last_update_episode = int(state["last_target_update_episode"])


def make_optimiser(
    params: list[nn.Parameter], name: str, lr: float, alpha: float, eps: float
) -> torch.optim.Optimizer:
    """RMSprop (smoothing ``alpha``) or Adam, one kernel per step over all parameters
    (fused Adam; RMSprop has no fused version, its foreach one batches the per-tensor
    ops): several times faster than the per-tensor loop torch defaults to on the CPU.
    torch's optimisers without their Dynamo import (`marl.learners.optim`)."""
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, foreach=True)
    if name == "adam":
        return optim.Adam(params, lr=lr, eps=eps, fused=True)
    raise ValueError(f"learner.optimizer must be 'rmsprop' or 'adam', got {name!r}")


def gradient_step(
    optimiser: torch.optim.Optimizer,
    loss: torch.Tensor,
    params: list[nn.Parameter],
    max_norm: float,
) -> torch.Tensor:
    """Backpropagate ``loss``, clip the gradient norm of ``params`` to ``max_norm`` and
    step ``optimiser``; returns the norm before clipping (a tensor, for the stats)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(params, max_norm)
    optimiser.step()
    return grad_norm


def valid_transitions(batch: EpisodeBatch) -> torch.Tensor:
    """Mask of real transitions, (B, T, 1) bool.

    Transition t is real when steps t and t + 1 were both written (t + 1 holds the
    next state) and no earlier step of the episode terminated.
    """
    filled = batch["filled"]  # (B, T + 1, 1)
    terminated = batch["terminated"][:, :-1].bool()  # (B, T, 1)
    ended_before = torch.cumsum(terminated.int(), dim=1) - terminated.int()  # (B, T, 1)
    return filled[:, :-1] & filled[:, 1:] & (ended_before == 0)  # (B, T, 1)


def played_at(t_env: int, valid: torch.Tensor) -> int:
    """The ``t_env`` at which an on-policy rollout was played, from the ``t_env`` after it
    and its mask of real transitions ``valid`` (B, T, 1): the runner acts a whole rollout
    at the step count it started from, so schedules (COMA's epsilon floor) are read there."""
    return t_env - int(valid.sum())


def softmax_selector(selector: object | None, learner: str) -> SoftmaxSelector:
    """The acting selector of an on-policy learner (no floor when none is given); one
    clear error when the algorithm acts with a selector that has no softmax policy."""
    if selector is None:
        return SoftmaxSelector()
    if not isinstance(selector, SoftmaxSelector):
        raise UsageError(
            f"learner {learner} learns the softmax policy that acted, but "
            f"algo.action_selector is {type(selector).__name__}; use the softmax selector."
        )
    return selector
