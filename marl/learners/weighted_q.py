"""Weighted QMIX: OW-QMIX and CW-QMIX.

Rashid et al., 2020, "Weighted QMIX: Expanding Monotonic Value Function Factorisation"
(NeurIPS). QMIX regresses its monotonic ``Q_tot`` on every joint action's target with
equal weight, and that projection can lose the optimal joint action (the QTRAN game).
Weighted QMIX learns beside it an unrestricted ``Q*`` (a second controller, ``central_mac``,
and a feed-forward mixer of its per-agent values and the state, ``central_mixer``),
bootstraps both from the target ``Q*`` at the QMIX agents' greedy joint action, and
weights QMIX's squared errors: 1 where the joint action may be the best, ``alpha``
elsewhere:

- OW (optimistic): 1 where ``Q_tot < y`` (QMIX underestimates the target);
- CW (central): 1 at the greedy joint action, or where ``y > Q*(s, greedy)``.

    loss = mean(w * (Q_tot - y)^2) + mean((Q* - y)^2)   over real transitions

Everything else (masks, double Q, TD(lambda), standardised rewards, targets, optimiser,
state) is `QLearner`'s; this file overrides the loss. With double Q the live QMIX agents
pick the greedy actions, else the target agents (for the bootstrap and CW's weights).

Shapes: B episodes, T steps (transitions; the batch holds T + 1 states), N agents,
A actions, S state size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from marl.controllers.mac import MultiAgentController
from marl.learners.q_learning import QLearner, QLearnerConfig, next_action_values
from marl.ops.masked import masked_mean
from marl.validation import bounds, choices

WEIGHTINGS = ("ow", "cw")


@dataclass
class WeightedQLearnerConfig(QLearnerConfig):
    """Schema for `learner=weighted_q`: QLearner's settings and the weighting."""

    _target_: str = "marl.learners.weighted_q.WeightedQLearner"
    weighting: str = field(default="ow", metadata=choices(*WEIGHTINGS))
    """ow: full weight where Q_tot < target | cw: full weight at the greedy joint action
    or where the target exceeds Q*(s, greedy)."""
    alpha: float = field(default=0.1, metadata=bounds(0, 1, low_open=True))
    """Weight of the other transitions' squared errors (1 gives QMIX's loss). 0.1: the
    authors' released configs (oxwhirl/wqmix, also PyMARL2's)."""


class WeightedQLearner(QLearner):
    """QMIX's update with a weighted loss and an unrestricted central Q*."""

    mixer: nn.Module  # always given: the weighting is of a mixed Q_tot

    def __init__(
        self,
        mac: MultiAgentController,
        mixer: nn.Module,
        central_mac: MultiAgentController,
        central_mixer: nn.Module,
        generator: torch.Generator | None = None,
        *,
        weighting: str = WeightedQLearnerConfig.weighting,
        alpha: float = WeightedQLearnerConfig.alpha,
        gamma: float = WeightedQLearnerConfig.gamma,
        lr: float = WeightedQLearnerConfig.lr,
        optimizer: str = WeightedQLearnerConfig.optimizer,
        optim_alpha: float = WeightedQLearnerConfig.optim_alpha,
        optim_eps: float = WeightedQLearnerConfig.optim_eps,
        grad_norm_clip: float = WeightedQLearnerConfig.grad_norm_clip,
        double_q: bool = WeightedQLearnerConfig.double_q,
        td_lambda: float = WeightedQLearnerConfig.td_lambda,
        target_update_interval: int = WeightedQLearnerConfig.target_update_interval,
        tau: float | None = WeightedQLearnerConfig.tau,
        standardise_rewards: bool = WeightedQLearnerConfig.standardise_rewards,
        compile: str | None = WeightedQLearnerConfig.compile,
    ) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"learner.weighting must be 'ow' or 'cw', got {weighting!r}")
        self.central_mac = central_mac
        self.central_mixer = central_mixer
        self.weighting = weighting
        self.alpha = alpha
        super().__init__(
            mac,
            mixer,
            generator,
            gamma=gamma,
            lr=lr,
            optimizer=optimizer,
            optim_alpha=optim_alpha,
            optim_eps=optim_eps,
            grad_norm_clip=grad_norm_clip,
            double_q=double_q,
            td_lambda=td_lambda,
            target_update_interval=target_update_interval,
            tau=tau,
            standardise_rewards=standardise_rewards,
            compile=compile,
        )

    def networks(self) -> dict[str, nn.Module]:
        return super().networks() | {
            "central_mac": self.central_mac,
            "central_mixer": self.central_mixer,
        }

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        avail: torch.Tensor,
        states: torch.Tensor,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted QMIX loss plus Q*'s, from tensors only (as `QLearner.loss`).

        Returns the loss, QMIX's TD errors, Q_tot and the targets (B, T, 1), and the
        stats ``learner/qmix_loss``, ``learner/central_loss`` and ``learner/weight_mean``.
        """
        # 2. Q-VALUES OF THE TAKEN ACTIONS: the QMIX agents' and Q*'s
        q = self.mac.unroll_steps(obs, actions)  # (B, T + 1, N, A)
        taken = actions[:, :-1].long()  # (B, T, N, 1)
        chosen = q[:, :-1].gather(-1, taken).squeeze(-1)  # (B, T, N)
        central_q = self.central_mac.unroll_steps(obs, actions)  # (B, T + 1, N, A)
        central_chosen = central_q[:, :-1].gather(-1, taken).squeeze(-1)  # (B, T, N)

        # 3. TARGETS: the target Q* at each step's greedy joint action of the QMIX agents
        with torch.no_grad():
            if self.double_q:
                picker = q.detach()  # (B, T + 1, N, A)
            else:
                picker = cast(MultiAgentController, self.targets["mac"]).unroll_steps(obs, actions)
            target_central = cast(MultiAgentController, self.targets["central_mac"])
            target_central_q = target_central.unroll_steps(obs, actions)  # (B, T + 1, N, A)
            greedy = next_action_values(target_central_q, picker, avail)  # steps 0..T
            greedy_q_star = self.targets["central_mixer"](greedy.values, states)  # (B, T + 1, 1)
            targets = self.td_targets(rewards, terminated, mask, greedy_q_star[:, 1:])

        # 4. MIX
        q_tot = self.mixer(chosen, states[:, :-1])  # (B, T, 1)
        q_star = self.central_mixer(central_chosen, states[:, :-1])  # (B, T, 1)

        # 5. WEIGHTS AND LOSS
        td_error = q_tot - targets  # (B, T, 1)
        with torch.no_grad():
            if self.weighting == "ow":
                full = td_error < 0  # (B, T, 1) Q_tot underestimates the target
            else:
                at_greedy = (taken == greedy.actions[:, :-1]).all(dim=2)  # (B, T, 1)
                full = at_greedy | (targets > greedy_q_star[:, :-1])  # (B, T, 1)
            weights = torch.where(full, 1.0, self.alpha)  # (B, T, 1)
        qmix_loss = masked_mean(weights * td_error.pow(2), mask)
        central_loss = masked_mean((q_star - targets).pow(2), mask)
        stats = {
            "learner/qmix_loss": qmix_loss.detach(),
            "learner/central_loss": central_loss.detach(),
            "learner/weight_mean": masked_mean(weights, mask),
        }
        return qmix_loss + central_loss, td_error, q_tot, targets, stats
