"""Value-decomposition Q-learning: IQL (no mixer), VDN and QMIX.

- IQL: independent Q-learners with a shared network (Tan 1993).
- VDN: Q_tot is the sum of agent Qs (Sunehag et al. 2018).
- QMIX: Q_tot is a monotonic, state-conditioned mix of agent Qs (Rashid et al. 2018).

All three share one update, PyMARL's ``QLearner.train``: unroll the agents over
the episodes, take the Q-values of the chosen actions, value the next steps with
the target networks (the live network picks the action with ``double_q``), mix
both sides, and regress on r + gamma * (1 - terminated) * next value (or
TD(lambda) returns) under a mask of real transitions.

Shapes: B episodes, T steps (transitions; the batch holds T + 1 states),
N agents, A actions, S state size, K = 1 with a mixer, N without.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import nn

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.errors import UsageError
from marl.learners.common import TargetNetworks, make_optimiser, valid_transitions
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


def next_action_values(
    target_q: torch.Tensor, live_q: torch.Tensor | None, avail: torch.Tensor
) -> torch.Tensor:
    """Value of the next step per agent, (B, T, N).

    target_q, live_q (B, T, N, A) and avail (B, T, N, A) are for steps 1..T. With
    ``live_q`` (double Q) the live network picks the action and the target network
    values it; otherwise the target network's max. Agents with no available action
    (padding) get 0.
    """
    target_masked = masked_fill_unavailable(target_q, avail)  # (B, T, N, A)
    if live_q is None:
        values = target_masked.max(dim=-1).values  # (B, T, N)
    else:
        best = masked_fill_unavailable(live_q, avail).argmax(dim=-1, keepdim=True)  # (B, T, N, 1)
        values = target_q.gather(-1, best).squeeze(-1)  # (B, T, N)
    return torch.where(avail.any(dim=-1), values, torch.zeros_like(values))  # (B, T, N)


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
        rewards = batch["reward"][:, :-1].float()  # (B, T, 1)
        valid = valid_transitions(batch)  # (B, T, 1) bool
        mask = valid.float()  # (B, T, 1)
        if self.reward_stats is not None:
            self.reward_stats.update(rewards, valid)
            rewards = self.reward_stats.standardise(rewards)  # (B, T, 1)

        # 2-5. Q-VALUES, TARGETS AND LOSS (compiled with `compile`)
        loss, td_error, chosen, targets = self._loss_fn(
            batch.float("obs"),  # (B, T + 1, N, O)
            batch["actions"],  # (B, T + 1, N, 1)
            batch["avail_actions"][:, 1:],  # (B, T, N, A) bool
            batch.float("state"),  # (B, T + 1, S)
            rewards,
            batch["terminated"][:, :-1].float(),  # (B, T, 1)
            mask,
        )

        # 6. OPTIMISE
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_norm_clip)
        self.optimiser.step()
        self.train_steps += 1

        # 7. TARGET NETWORKS
        self.targets.update(episode)

        if not stats:
            return {}
        with torch.no_grad():
            return {
                "learner/loss": loss.item(),
                "learner/grad_norm": grad_norm.item(),
                "learner/td_error_abs": masked_mean(td_error.abs(), mask).item(),
                "learner/q_taken_mean": masked_mean(chosen, mask).item(),
                "learner/target_mean": masked_mean(targets, mask).item(),
            }

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        avail_next: torch.Tensor,
        states: torch.Tensor,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The TD loss of a batch, from tensors only (what `compile` compiles).

        obs (B, T + 1, N, O), actions (B, T + 1, N, 1), avail_next (B, T, N, A) bool,
        states (B, T + 1, S), rewards, terminated and mask (B, T, 1) float. Returns the
        loss, TD errors, chosen Q (mixed) and targets, the last three (B, T, K).
        """
        # 2. Q-VALUES OF THE TAKEN ACTIONS
        q = self.mac.unroll_steps(obs, actions)  # (B, T + 1, N, A)
        chosen = q[:, :-1].gather(-1, actions[:, :-1].long()).squeeze(-1)  # (B, T, N)

        # 3. TARGET VALUES OF THE NEXT STEPS
        with torch.no_grad():
            target_mac = cast(MultiAgentController, self.targets["mac"])
            target_q = target_mac.unroll_steps(obs, actions)[:, 1:]  # (B, T, N, A)
            live_next = q.detach()[:, 1:] if self.double_q else None  # (B, T, N, A)
            next_values = next_action_values(target_q, live_next, avail_next)  # (B, T, N)

        # 4. MIX
        if self.mixer is not None:
            chosen = self.mixer(chosen, states[:, :-1])  # (B, T, 1)
            with torch.no_grad():
                next_values = self.targets["mixer"](next_values, states[:, 1:])  # (B, T, 1)

        # 5. TARGETS AND LOSS
        with torch.no_grad():
            if self.td_lambda > 0:
                targets = td_lambda_targets(
                    rewards, terminated, mask, next_values, self.gamma, self.td_lambda
                )  # (B, T, K)
            else:
                targets = one_step_targets(rewards, terminated, next_values, self.gamma)
        td_error = chosen - targets  # (B, T, K)
        return masked_mean(td_error.pow(2), mask), td_error, chosen, targets

    def state_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac.state_dict(),
            "mixer": None if self.mixer is None else self.mixer.state_dict(),
            "target_mixer": None,  # replaced by the next line's when there is a mixer
            **self.targets.state_dict(),  # target_mac, target_mixer, last_target_update_episode
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
