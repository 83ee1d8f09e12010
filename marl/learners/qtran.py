"""QTRAN: value factorisation by transformation, QTRAN-base and QTRAN-alt.

Son et al., 2019, "QTRAN: Learning to Factorize with Transformation for Cooperative
Multi-Agent Reinforcement Learning" (ICML). Next to the agents' Q_i, QTRAN learns an
unrestricted joint Q_jt and a state value V_jt (``modules/mixers/qtran.py``), and asks of
Q'_jt = sum_i Q_i only that it pick the same greedy joint action ū as Q_jt. Three losses
do it, weighted ``L_td + opt_loss * L_opt + nopt_min_loss * L_nopt``:

- L_td: Q_jt(τ, u) regresses on r + γ Q_jt^-(τ', ū') (target networks; ū' the agents'
  greedy next actions, picked by the live agents with ``double_q``, as in PyMARL).
- L_opt: Q'_jt(τ, ū) - Q̂_jt(τ, ū) + V_jt(τ) = 0 at the greedy joint action.
- L_nopt (base): Q'_jt(τ, u) - Q̂_jt(τ, u) + V_jt(τ) >= 0 at the taken joint action u,
  penalised only where negative.
- L_nopt-min (alt): min over u_i of Q'_jt(τ, u_i, u_-i) - Q̂_jt(τ, u_i, u_-i) + V_jt(τ) = 0
  for every agent i, its actions varied against the others' taken ones (Theorem 2; no
  clamp: the minimum must be 0). The counterfactual joint network gives Q_jt(τ, ., u_-i)
  for all of agent i's actions at once, and L_td and L_opt then hold for every agent's
  row (PyMARL's ``qtran_alt``).

Q̂_jt is Q_jt with its gradient stopped: L_opt and L_nopt train the agents and V_jt, L_td
trains Q_jt (and, through the agents' hidden states it reads, the agents too). The variant
is the mixer's (``algo.modules.mixer.variant=alt``): it is what shapes the joint network.

Shapes: B episodes, T steps (transitions; the batch holds T + 1 steps), N agents,
A actions, S state size, H agent hidden size, K value heads (1 base, N alt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import torch
from torch import Tensor
from torch.nn import functional as F

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.errors import UsageError
from marl.learners.q_learning import QLearner, QLearnerConfig, max_available
from marl.modules.mixers.qtran import QTranMixer
from marl.ops.masked import masked_fill_unavailable, masked_mean
from marl.validation import bounds


@dataclass
class QTranLearnerConfig(QLearnerConfig):
    """Schema for `learner=qtran`: the Q-learning settings and the weights of the two
    constraint losses (PyMARL's qtran.yaml)."""

    _target_: str = "marl.learners.qtran.QTranLearner"
    opt_loss: float = field(default=1.0, metadata=bounds(0))
    """Weight lambda_opt of L_opt (at the greedy joint action)."""
    nopt_min_loss: float = field(default=0.1, metadata=bounds(0))
    """Weight lambda_nopt of L_nopt (base) or L_nopt-min (alt)."""


class QTranTerms(NamedTuple):
    """The three losses of one batch and what the stats read."""

    td: Tensor  # () L_td
    opt: Tensor  # () L_opt
    nopt: Tensor  # () L_nopt (base) or L_nopt-min (alt)
    td_error: Tensor  # (B, T, K) Q_jt(τ, u) - y
    joint_taken: Tensor  # (B, T, K) Q_jt(τ, u)


def base_terms(
    joint: Tensor,
    joint_greedy: Tensor,
    v: Tensor,
    targets: Tensor,
    q_taken: Tensor,
    q_best: Tensor,
    mask: Tensor,
) -> QTranTerms:
    """QTRAN-base's losses.

    joint Q_jt(τ, u) (B, T, 1), joint_greedy Q̂_jt(τ, ū) (B, T, 1, no gradient),
    v V_jt(τ) (B, T, 1), targets y (B, T, 1), the agents' Q_i(τ_i, u_i) q_taken and
    max_a Q_i(τ_i, a) q_best (B, T, N), mask (B, T, 1) of real transitions.
    """
    td_error = joint - targets  # (B, T, 1)
    opt_error = q_best.sum(dim=-1, keepdim=True) - joint_greedy + v  # (B, T, 1)
    nopt_error = q_taken.sum(dim=-1, keepdim=True) - joint.detach() + v  # (B, T, 1)
    return QTranTerms(
        td=masked_mean(td_error.pow(2), mask),
        opt=masked_mean(opt_error.pow(2), mask),
        nopt=masked_mean(nopt_error.clamp(max=0).pow(2), mask),
        td_error=td_error,
        joint_taken=joint,
    )


def alt_terms(
    joint: Tensor,
    joint_greedy: Tensor,
    v: Tensor,
    targets: Tensor,
    q: Tensor,
    actions: Tensor,
    q_best: Tensor,
    avail: Tensor,
    mask: Tensor,
) -> QTranTerms:
    """QTRAN-alt's losses, one row per agent i.

    joint Q_jt(τ, ., u_-i) (B, T, N, A) at the taken u_-i, joint_greedy Q̂_jt(τ, ū_i, ū_-i)
    (B, T, N, no gradient), v (B, T, 1), targets (B, T, N), the agents' Q_i q (B, T, N, A),
    taken actions (B, T, N, 1), q_best (B, T, N), avail (B, T, N, A) bool, mask (B, T, 1).
    """
    joint_taken = joint.gather(-1, actions).squeeze(-1)  # (B, T, N)
    td_error = joint_taken - targets  # (B, T, N)
    opt_error = q_best.sum(dim=-1, keepdim=True) - joint_greedy + v  # (B, T, N)
    # Q'_jt(τ, a, u_-i) = Q_i(τ_i, a) + sum_{j != i} Q_j(τ_j, u_j), for every action a of i.
    q_taken = q.gather(-1, actions).squeeze(-1)  # (B, T, N)
    q_others = q_taken.sum(dim=-1, keepdim=True) - q_taken  # (B, T, N)
    gap = q + q_others.unsqueeze(-1) - joint.detach() + v.unsqueeze(-1)  # (B, T, N, A)
    gap_min = masked_fill_unavailable(gap, avail, float("inf")).amin(dim=-1)  # (B, T, N)
    gap_min = torch.where(avail.any(dim=-1), gap_min, torch.zeros_like(gap_min))  # (B, T, N)
    return QTranTerms(
        td=masked_mean(td_error.pow(2), mask),
        opt=masked_mean(opt_error.pow(2), mask),
        nopt=masked_mean(gap_min.pow(2), mask),
        td_error=td_error,
        joint_taken=joint_taken,
    )


def one_hot(actions: Tensor, n_actions: int) -> Tensor:
    """Action indices (B, T, N, 1) -> one-hot float (B, T, N, A)."""
    return F.one_hot(actions.squeeze(-1), n_actions).float()  # (B, T, N, A)


class QTranLearner(QLearner):
    """Trains the agents and QTRAN's joint networks; Q-learning's settings, its own loss.

    From `QLearner` it keeps the construction (targets, optimiser, reward standardisation,
    ``compile``) and the state it saves; the update is its own.
    """

    def __init__(
        self,
        mac: MultiAgentController,
        mixer: QTranMixer,
        generator: torch.Generator | None = None,
        *,
        gamma: float = QTranLearnerConfig.gamma,
        lr: float = QTranLearnerConfig.lr,
        optimizer: str = QTranLearnerConfig.optimizer,
        optim_alpha: float = QTranLearnerConfig.optim_alpha,
        optim_eps: float = QTranLearnerConfig.optim_eps,
        grad_norm_clip: float = QTranLearnerConfig.grad_norm_clip,
        double_q: bool = QTranLearnerConfig.double_q,
        td_lambda: float = QTranLearnerConfig.td_lambda,
        target_update_interval: int = QTranLearnerConfig.target_update_interval,
        tau: float | None = QTranLearnerConfig.tau,
        standardise_rewards: bool = QTranLearnerConfig.standardise_rewards,
        compile: str | None = QTranLearnerConfig.compile,
        opt_loss: float = QTranLearnerConfig.opt_loss,
        nopt_min_loss: float = QTranLearnerConfig.nopt_min_loss,
    ) -> None:
        if not isinstance(mixer, QTranMixer):
            raise UsageError(
                f"learner qtran needs QTRAN's joint networks as algo.modules.mixer, got "
                f"{type(mixer).__name__}; use algo=qtran."
            )
        hidden_dim = mac.initial_hidden(1).shape[-1]
        if hidden_dim != mixer.agent_hidden_dim:
            raise UsageError(
                f"QTRAN's joint networks read the agents' hidden state of size {hidden_dim}, "
                f"but algo.modules.mixer.agent_hidden_dim is {mixer.agent_hidden_dim}; "
                f"set it to {hidden_dim}."
            )
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
        self.qtran = mixer
        self.opt_loss = opt_loss
        self.nopt_min_loss = nopt_min_loss

    def train(
        self, batch: EpisodeBatch, t_env: int, episode: int, stats: bool = True
    ) -> dict[str, float]:
        """One gradient step on a batch of episodes; returns the update's stats, or
        nothing with ``stats=False`` (each stat reads a value back from the device)."""
        # 1. MASKS AND DATA
        inputs = self._loss_inputs(batch)
        mask = inputs[-1]  # (B, T, 1)

        # 2-5. AGENTS, TARGETS, JOINT VALUES AND LOSSES (compiled with `compile`)
        loss_fn = cast(Callable[..., tuple[QTranTerms, Tensor, Tensor]], self._loss_fn)
        terms, targets, v = loss_fn(*inputs)
        loss = terms.td + self.opt_loss * terms.opt + self.nopt_min_loss * terms.nopt

        # 6-7. OPTIMISE, TARGET NETWORKS
        grad_norm = self._optimise(loss, episode)

        if not stats:
            return {}
        with torch.no_grad():
            return {
                "learner/loss": loss.item(),
                "learner/td_loss": terms.td.item(),
                "learner/opt_loss": terms.opt.item(),
                "learner/nopt_loss": terms.nopt.item(),
                "learner/grad_norm": grad_norm.item(),
                "learner/td_error_abs": masked_mean(terms.td_error.abs(), mask).item(),
                "learner/q_taken_mean": masked_mean(terms.joint_taken, mask).item(),
                "learner/target_mean": masked_mean(targets, mask).item(),
                "learner/v_mean": masked_mean(v, mask).item(),
            }

    def loss(  # type: ignore[override]  # every step's avail in, the three terms out
        self,
        obs: Tensor,
        actions: Tensor,
        avail: Tensor,
        states: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        mask: Tensor,
    ) -> tuple[QTranTerms, Tensor, Tensor]:
        """QTRAN's losses of a batch, from tensors only (what `compile` compiles).

        obs (B, T + 1, N, O), actions (B, T + 1, N, 1), avail (B, T + 1, N, A) bool,
        states (B, T + 1, S), rewards, terminated and mask (B, T, 1) float. Returns the
        terms, the targets y (B, T, K) and V_jt (B, T, 1).
        """
        n_actions = avail.shape[-1]
        taken = actions[:, :-1].long()  # (B, T, N, 1)

        # 2. AGENT Q-VALUES, HIDDEN STATES AND GREEDY ACTIONS
        q, hidden = self.mac.unroll_hidden(obs, actions)  # (B, T + 1, N, A), (B, T + 1, N, H)
        q_best, greedy = max_available(q, avail)  # (B, T + 1, N), (B, T + 1, N, 1)

        # 3. TARGETS: Q_jt^- at the next steps' greedy joint actions
        with torch.no_grad():
            target_mac = cast(MultiAgentController, self.targets["mac"])
            target_q, target_hidden = target_mac.unroll_hidden(obs, actions)  # (B, T + 1, ...)
            if self.double_q:
                next_greedy = greedy[:, 1:]  # (B, T, N, 1)
            else:
                next_greedy = max_available(target_q[:, 1:], avail[:, 1:])[1]  # (B, T, N, 1)
            next_onehot = one_hot(next_greedy, n_actions)  # (B, T, N, A)
            next_joint = self.targets["mixer"](states[:, 1:], target_hidden[:, 1:], next_onehot)
            if self.qtran.variant == "alt":  # (B, T, N, A): each agent's row at its greedy action
                next_joint = next_joint.gather(-1, next_greedy).squeeze(-1)  # (B, T, N)
            targets = self.td_targets(rewards, terminated, mask, next_joint)  # (B, T, K)

        # 4. JOINT VALUES: Q_jt at the taken and (fixed) at the greedy joint actions, V_jt
        h = hidden[:, :-1]  # (B, T, N, H)
        joint = self.qtran(states[:, :-1], h, one_hot(taken, n_actions))  # (B, T, 1) | (B, T, N, A)
        v = self.qtran.value(states[:, :-1])  # (B, T, 1)
        greedy_now = greedy[:, :-1]  # (B, T, N, 1)
        with torch.no_grad():
            joint_greedy = self.qtran(states[:, :-1], h, one_hot(greedy_now, n_actions))

        # 5. LOSSES
        if self.qtran.variant == "base":
            q_taken = q[:, :-1].gather(-1, taken).squeeze(-1)  # (B, T, N)
            terms = base_terms(joint, joint_greedy, v, targets, q_taken, q_best[:, :-1], mask)
        else:
            joint_greedy = joint_greedy.gather(-1, greedy_now).squeeze(-1)  # (B, T, N)
            q_now, best_now, avail_now = q[:, :-1], q_best[:, :-1], avail[:, :-1]
            terms = alt_terms(
                joint, joint_greedy, v, targets, q_now, taken, best_now, avail_now, mask
            )
        return terms, targets, v
