"""Value-decomposition Q-learning: IQL (no mixer), VDN, QMIX and QPLEX.

- IQL: independent Q-learners with a shared network (Tan 1993).
- VDN: Q_tot is the sum of agent Qs (Sunehag et al. 2018).
- QMIX: Q_tot is a monotonic, state-conditioned mix of agent Qs (Rashid et al. 2018).
- QPLEX: Q_tot is a duplex dueling mix of agent values and advantages (Wang et al. 2021).

All four share one update, PyMARL's ``QLearner.train``: unroll the agents over
the episodes, take the Q-values of the chosen actions, value the next steps with
the target networks (the live network picks the action with ``double_q``), mix
both sides, and regress on r + gamma * (1 - terminated) * next value (or
TD(lambda) returns) under a mask of real transitions. The mixer sees, besides the
agents' Qs and the state, the joint action and each agent's max Q on both sides
(QPLEX's advantages need them; VDN and QMIX ignore them).

Shapes: B episodes, T steps (transitions; the batch holds T + 1 states),
N agents, A actions, S state size, K = 1 with a mixer, N without.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, cast

import torch
from torch import nn

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.errors import UsageError
from marl.learners.common import (
    TargetNetworks,
    gradient_step,
    make_optimiser,
    valid_transitions,
)
from marl.ops.masked import masked_fill_unavailable, masked_mean
from marl.ops.returns import one_step_targets, td_lambda_targets
from marl.ops.running_stats import RunningMeanStd
from marl.validation import bounds, choices

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class QLearnerConfig:
    """Schema for `learner=q_learning`."""

    _target_: str = "marl.learners.q_learning.QLearner"
    gamma: float = field(default=0.99, metadata=bounds(0, 1))
    """Discount factor."""
    lr: float = field(default=0.0005, metadata=bounds(0, low_open=True))
    """Learning rate."""
    optimizer: str = field(default="rmsprop", metadata=choices("rmsprop", "adam"))
    """rmsprop | adam."""
    optim_alpha: float = field(default=0.99, metadata=bounds(0, 1, high_open=True))
    """RMSprop smoothing constant."""
    optim_eps: float = field(default=0.00001, metadata=bounds(0, low_open=True))
    """Optimiser epsilon."""
    grad_norm_clip: float = field(default=10.0, metadata=bounds(0, low_open=True))
    """Clip the global gradient norm to this value."""
    double_q: bool = True
    """Choose next actions with the live network, value them with the target network."""
    td_lambda: float = field(default=0.0, metadata=bounds(0, 1))
    """Lambda of TD(lambda) targets; 0 gives 1-step targets."""
    target_update_interval: int = field(default=200, metadata=bounds(1))
    """Episodes between hard target-network copies (used when tau is null)."""
    tau: float | None = field(default=None, metadata=bounds(0, 1, low_open=True))
    """Soft target update rate per training step; null for hard copies."""
    standardise_rewards: bool = False
    """Train on (r - mean) / std, the running moments of every real transition's
    reward sampled so far (EPyMARL's ``standardise_rewards``)."""
    compile: str | None = field(default=None, metadata=choices(*COMPILE_MODES))
    """torch.compile the loss: null (eager) | default | reduce-overhead (CUDA graphs on
    a GPU) | max-autotune. The first updates pay the compile time."""


SPLIT_BELOW = 4
"""With independent steps and double Q, the live Q of T < 4 steps comes from two passes
(T steps with gradient, T without): 5T forward-equivalents against one pass over T + 1
steps, 4T + 4 (a backward pass costs about two forward ones)."""


class NextValues(NamedTuple):
    """The target side of the update for each agent's next step."""

    values: torch.Tensor
    """(B, T, N) the target network's value of the next action."""
    actions: torch.Tensor
    """(B, T, N, 1) that action: the live network's greedy one with double Q, else the
    target network's."""
    max_values: torch.Tensor
    """(B, T, N) the target network's max over the available actions (= ``values``
    without double Q)."""


def max_available(q: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each agent's max Q over its available actions and that action: q (B, T, N, A),
    avail (B, T, N, A) -> (B, T, N), (B, T, N, 1). Agents with no available action
    (padding) get a max of 0."""
    best, action = masked_fill_unavailable(q, avail).max(dim=-1, keepdim=True)  # (B, T, N, 1)
    best = best.squeeze(-1)  # (B, T, N)
    return torch.where(avail.any(dim=-1), best, torch.zeros_like(best)), action


def next_action_values(
    target_q: torch.Tensor, live_q: torch.Tensor | None, avail: torch.Tensor
) -> NextValues:
    """Value of the next step per agent, the action it values and the target's max.

    target_q, live_q (B, T, N, A) and avail (B, T, N, A) are for steps 1..T. With
    ``live_q`` (double Q) the live network picks the action and the target network
    values it; otherwise the target network's max. Agents with no available action
    (padding) get 0.
    """
    target_max, target_best = max_available(target_q, avail)  # (B, T, N), (B, T, N, 1)
    if live_q is None:
        return NextValues(target_max, target_best, target_max)
    best = masked_fill_unavailable(live_q, avail).argmax(dim=-1, keepdim=True)  # (B, T, N, 1)
    values = target_q.gather(-1, best).squeeze(-1)  # (B, T, N)
    values = torch.where(avail.any(dim=-1), values, torch.zeros_like(values))  # (B, T, N)
    return NextValues(values, best, target_max)


class QLearner:
    """Trains a controller (and an optional mixer) with the Q-learning update.

    ``generator`` is the learner's random stream: this update draws nothing, but the
    stream is saved and restored with the learner like every learner's.
    """

    on_policy: ClassVar[bool] = False

    def __init__(
        self,
        mac: MultiAgentController,
        mixer: nn.Module | None = None,
        generator: torch.Generator | None = None,
        *,
        gamma: float = QLearnerConfig.gamma,
        lr: float = QLearnerConfig.lr,
        optimizer: str = QLearnerConfig.optimizer,
        optim_alpha: float = QLearnerConfig.optim_alpha,
        optim_eps: float = QLearnerConfig.optim_eps,
        grad_norm_clip: float = QLearnerConfig.grad_norm_clip,
        double_q: bool = QLearnerConfig.double_q,
        td_lambda: float = QLearnerConfig.td_lambda,
        target_update_interval: int = QLearnerConfig.target_update_interval,
        tau: float | None = QLearnerConfig.tau,
        standardise_rewards: bool = QLearnerConfig.standardise_rewards,
        compile: str | None = QLearnerConfig.compile,
    ) -> None:
        self.mac = mac
        self.mixer = mixer
        self.generator = torch.Generator() if generator is None else generator
        self.targets = TargetNetworks(self.networks(), target_update_interval, tau)
        self.gamma = gamma
        self.grad_norm_clip = grad_norm_clip
        self.double_q = double_q
        self.td_lambda = td_lambda
        self.reward_stats = RunningMeanStd() if standardise_rewards else None
        self.params = [p for net in self.networks().values() for p in net.parameters()]
        self.optimiser = make_optimiser(self.params, optimizer, lr, optim_alpha, optim_eps)
        self.train_steps = 0
        if compile is not None and compile not in COMPILE_MODES:
            modes = ", ".join(COMPILE_MODES)
            raise UsageError(f"learner.compile must be null or one of {modes}, got {compile!r}.")
        self._loss_fn = self.loss if compile is None else torch.compile(self.loss, mode=compile)

    def networks(self) -> dict[str, nn.Module]:
        return {"mac": self.mac} | ({} if self.mixer is None else {"mixer": self.mixer})

    def train(
        self, batch: EpisodeBatch, t_env: int, episode: int, stats: bool = True
    ) -> dict[str, float]:
        """One gradient step on a batch of episodes; returns the update's stats, or
        nothing with ``stats=False`` (each stat reads a value back from the device)."""
        # 1. MASKS AND DATA
        inputs = self._loss_inputs(batch)
        mask = inputs[-1]  # (B, T, 1)

        # 2-5. Q-VALUES, TARGETS AND LOSS (compiled with `compile`)
        loss, td_error, chosen, targets, extra = self._loss_fn(*inputs)

        # 6-7. OPTIMISE, TARGET NETWORKS
        grad_norm = self._optimise(loss, episode)

        if not stats:
            return {}
        with torch.no_grad():
            return {
                "learner/loss": loss.item(),
                "learner/grad_norm": grad_norm.item(),
                "learner/td_error_abs": masked_mean(td_error.abs(), mask).item(),
                "learner/q_taken_mean": masked_mean(chosen, mask).item(),
                "learner/target_mean": masked_mean(targets, mask).item(),
                **{name: value.item() for name, value in extra.items()},
            }

    def _loss_inputs(self, batch: EpisodeBatch) -> tuple[torch.Tensor, ...]:
        """The loss function's tensors from a batch (rewards standardised when asked):
        obs, actions, avail, states, rewards, terminated, mask (see `loss`)."""
        rewards = batch["reward"][:, :-1].float()  # (B, T, 1)
        valid = valid_transitions(batch)  # (B, T, 1) bool
        if self.reward_stats is not None:
            self.reward_stats.update(rewards, valid)
            rewards = self.reward_stats.standardise(rewards)  # (B, T, 1)
        return (
            batch.float("obs"),  # (B, T + 1, N, O)
            batch["actions"],  # (B, T + 1, N, 1)
            batch["avail_actions"],  # (B, T + 1, N, A) bool
            batch.float("state"),  # (B, T + 1, S)
            rewards,
            batch["terminated"][:, :-1].float(),  # (B, T, 1)
            valid.float(),  # (B, T, 1)
        )

    def _optimise(self, loss: torch.Tensor, episode: int) -> torch.Tensor:
        """One optimiser step on ``loss``, then the target networks' update; returns the
        gradient norm before clipping."""
        grad_norm = gradient_step(self.optimiser, loss, self.params, self.grad_norm_clip)
        self.train_steps += 1
        self.targets.update(episode)
        return grad_norm

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
        """The TD loss of a batch, from tensors only (what `compile` compiles).

        obs (B, T + 1, N, O), actions (B, T + 1, N, 1), avail (B, T + 1, N, A) bool,
        states (B, T + 1, S), rewards, terminated and mask (B, T, 1) float. Returns the
        loss, TD errors, chosen Q (mixed) and targets, the last three (B, T, K), and the
        learner's own scalar stats by name (none here; subclasses add theirs).
        """
        # 2. Q-VALUES OF THE TAKEN ACTIONS (and the live network's of the next steps)
        q, live_next = self.live_q(obs, actions)  # (B, T, N, A), (B, T, N, A) or None
        taken = actions[:, :-1].long()  # (B, T, N, 1)
        chosen = q.gather(-1, taken).squeeze(-1)  # (B, T, N)

        # 3. TARGET VALUES OF THE NEXT STEPS
        with torch.no_grad():
            target_mac = cast(MultiAgentController, self.targets["mac"])
            if target_mac.steps_independent:  # step 0 is no next step: skip it
                target_q = target_mac.unroll_steps(obs[:, 1:], actions[:, 1:])  # (B, T, N, A)
            else:
                target_q = target_mac.unroll_steps(obs, actions)[:, 1:]  # (B, T, N, A)
            next_q = next_action_values(target_q, live_next, avail[:, 1:])
            next_values = next_q.values  # (B, T, N)

        # 4. MIX: with the joint action and each agent's max Q, both sides (QPLEX's inputs)
        if self.mixer is not None:
            live_max, _ = max_available(q.detach(), avail[:, :-1])  # (B, T, N)
            chosen = self.mixer(chosen, states[:, :-1], actions=taken, max_qs=live_max)
            with torch.no_grad():
                next_values = self.targets["mixer"](
                    next_q.values, states[:, 1:], actions=next_q.actions, max_qs=next_q.max_values
                )  # (B, T, 1)

        # 5. TARGETS AND LOSS
        targets = self.td_targets(rewards, terminated, mask, next_values)  # (B, T, K)
        td_error = chosen - targets  # (B, T, K)
        return masked_mean(td_error.pow(2), mask), td_error, chosen, targets, {}

    def live_q(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The live network's Q of steps 0 .. T - 1 (with gradient) and, for double Q, of
        steps 1 .. T (without): obs (B, T + 1, N, O), actions (B, T + 1, N, 1) -> (B, T, N,
        A) each, the second None without double Q.

        One unroll over all T + 1 steps serves both, unless the steps are independent
        (feed-forward agents, no last action) and either the episodes are short (T <
        `SPLIT_BELOW`; sampled transitions have T = 1: the next steps then come from a
        second, gradient-free pass, which spares the backward pass their rows) or double Q
        is off (the next steps need no live pass at all)."""
        steps = obs.shape[1] - 1  # T
        if self.mac.steps_independent and (steps < SPLIT_BELOW or not self.double_q):
            q = self.mac.unroll_steps(obs[:, :-1], actions[:, :-1])  # (B, T, N, A)
            if not self.double_q:
                return q, None
            with torch.no_grad():
                return q, self.mac.unroll_steps(obs[:, 1:], actions[:, 1:])  # (B, T, N, A)
        q_all = self.mac.unroll_steps(obs, actions)  # (B, T + 1, N, A)
        return q_all[:, :-1], (q_all.detach()[:, 1:] if self.double_q else None)

    def td_targets(
        self,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        mask: torch.Tensor,
        next_values: torch.Tensor,
    ) -> torch.Tensor:
        """Regression targets (B, T, K), no gradient: TD(lambda) returns with
        ``td_lambda > 0``, else r + gamma * (1 - terminated) * next value. rewards,
        terminated and mask (B, T, 1); next_values (B, T, K)."""
        with torch.no_grad():
            if self.td_lambda > 0:
                return td_lambda_targets(
                    rewards, terminated, mask, next_values, self.gamma, self.td_lambda
                )  # (B, T, K)
            return one_step_targets(rewards, terminated, next_values, self.gamma)  # (B, T, K)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mac": None,  # the keys in their old order; filled by the next two lines but
            "mixer": None,  # the mixer's with no mixer (IQL)
            "target_mixer": None,
            **{name: net.state_dict() for name, net in self.networks().items()},
            **self.targets.state_dict(),  # target_<network>..., last_target_update_episode
            "optimiser": self.optimiser.state_dict(),
            "train_steps": self.train_steps,
            "reward_stats": None if self.reward_stats is None else self.reward_stats.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the networks of a saved state, copied into the targets too (fine-tuning)."""
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
            self.targets[name].load_state_dict(state[name])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.targets.load_state_dict(state)
        self.optimiser.load_state_dict(state["optimiser"])
        self.train_steps = int(state["train_steps"])
        if self.reward_stats is not None and state.get("reward_stats") is not None:
            self.reward_stats.load_state_dict(state["reward_stats"])
        if "generator" in state:  # checkpoints from before the learner stream have none
            self.generator.set_state(state["generator"])
