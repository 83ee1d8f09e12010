"""On-policy actor-critic: IA2C, MAA2C, IPPO and MAPPO in one update.

- IA2C / MAA2C: advantage actor-critic (Mnih et al. 2016) with a per-agent or a
  centralised V critic (Papoudakis et al. 2021, EPyMARL's benchmark).
- IPPO / MAPPO: the clipped surrogate of PPO (Schulman et al. 2017) with the same two
  critics (de Witt et al. 2020; Yu et al. 2022).

The four differ only in the critic module (a second controller with one output per
agent, or ``CentralV``) and in settings: ``clip: null`` with one epoch is A2C. The
learner trains once on the rollout its weights just played, so it recomputes the
acting policy's log-probs and values itself (under no_grad) instead of storing them.

Shapes: B episodes, T steps (transitions; the batch holds T + 1 steps), N agents,
A actions, S state size, K value heads (N for per-agent values, 1 for one joint value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.exploration.softmax import SoftmaxSelector, log_policy
from marl.learners.common import (
    gradient_step,
    make_optimiser,
    played_at,
    softmax_selector,
    valid_transitions,
)
from marl.ops.masked import masked_mean
from marl.ops.returns import gae
from marl.ops.running_stats import RunningMeanStd
from marl.validation import bounds, choices


@dataclass
class ActorCriticConfig:
    """Schema for `learner=actor_critic`: A2C by default (no clip, one epoch); PPO sets
    ``clip`` and ``epochs``."""

    _target_: str = "marl.learners.actor_critic.ActorCriticLearner"
    gamma: float = field(default=0.99, metadata=bounds(0, 1))
    """Discount factor."""
    gae_lambda: float = field(default=0.95, metadata=bounds(0, 1))
    """Lambda of GAE (0: one-step TD advantages, 1: Monte-Carlo returns minus V)."""
    clip: float | None = field(default=None, metadata=bounds(0, low_open=True))
    """PPO's ratio clip epsilon (0.2 in its paper); null: the plain (A2C) policy gradient."""
    epochs: int = field(default=1, metadata=bounds(1))
    """Passes over each rollout (more than one needs ``clip``: the gradient of a rollout
    is unbiased only for the policy that played it)."""
    minibatches: int = field(default=1, metadata=bounds(1))
    """Minibatches (of whole episodes) per epoch, drawn with the learner's stream."""
    value_clip: float | None = field(default=None, metadata=bounds(0, low_open=True))
    """Clip each value's change from the acting critic's to this (PPO2); null: no clip."""
    value_norm: bool = False
    """The critic predicts returns standardised by their running mean and std (MAPPO)."""
    advantage_norm: bool = False
    """Standardise the advantages of each rollout over its real agent steps."""
    entropy_coef: float = field(default=0.01, metadata=bounds(0))
    """Weight of the policy-entropy bonus."""
    value_coef: float = field(default=0.5, metadata=bounds(0, low_open=True))
    """Weight of the value loss next to the policy loss."""
    lr: float = field(default=0.0005, metadata=bounds(0, low_open=True))
    """Learning rate (actor and critic share one optimiser)."""
    optimizer: str = field(default="adam", metadata=choices("rmsprop", "adam"))
    """rmsprop | adam."""
    optim_alpha: float = field(default=0.99, metadata=bounds(0, 1, high_open=True))
    """RMSprop smoothing constant."""
    optim_eps: float = field(default=0.00001, metadata=bounds(0, low_open=True))
    """Optimiser epsilon."""
    grad_norm_clip: float = field(default=10.0, metadata=bounds(0, low_open=True))
    """Clip the global gradient norm to this value."""


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each policy row (..., A) -> (...)."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)  # (...)


def clipped_surrogate(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's policy loss, -E[min(r A, clip(r, 1 - eps, 1 + eps) A)], over ``mask``; with
    ``clip`` None the policy gradient loss -E[log pi A]. All (B, T, N). Returns the loss
    and the ratio r = pi / pi_old (B, T, N)."""
    ratio = torch.exp(log_probs - old_log_probs)  # (B, T, N)
    if clip is None:
        return -masked_mean(log_probs * advantages, mask), ratio
    surrogate = torch.min(
        ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    )  # (B, T, N)
    return -masked_mean(surrogate, mask), ratio


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None,
) -> torch.Tensor:
    """Mean squared error of ``values`` (B, T, K) to ``targets`` over ``mask``; with
    ``clip``, the larger of the errors of the values and of the values kept within
    ``clip`` of ``old_values`` (PPO2's value clipping)."""
    error = (values - targets).pow(2)  # (B, T, K)
    if clip is not None:
        kept = old_values + (values - old_values).clamp(-clip, clip)  # (B, T, K)
        error = torch.max(error, (kept - targets).pow(2))  # (B, T, K)
    return masked_mean(error, mask)


class Rollout(NamedTuple):
    """What the update trains on, every tensor indexed by episode first."""

    obs: torch.Tensor  # (B, T + 1, N, O)
    actions: torch.Tensor  # (B, T + 1, N, 1)
    states: torch.Tensor  # (B, T + 1, S)
    avail: torch.Tensor  # (B, T, N, A) bool
    taken: torch.Tensor  # (B, T, N, 1) long
    old_log_probs: torch.Tensor  # (B, T, N), of the taken actions under the acting policy
    old_values: torch.Tensor  # (B, T, K), the acting critic's (standardised with value_norm)
    advantages: torch.Tensor  # (B, T, N)
    targets: torch.Tensor  # (B, T, K), value targets (standardised with value_norm)
    agent_mask: torch.Tensor  # (B, T, N) float: real steps of live agents
    value_mask: torch.Tensor  # (B, T, K) float

    def episodes(self, idx: torch.Tensor | slice) -> Rollout:
        """The episodes ``idx`` (b,) of every tensor."""
        return Rollout(*(x[idx] for x in self))


class ActorCriticLearner:
    """Trains a policy controller and a critic on each rollout, as played.

    ``critic`` is a controller with one output per agent (values (B, T, N) from the
    agents' observations) or a module mapping states (B, T, S) to values (B, T, K).
    ``action_selector`` is the runner's: its `policy` is the policy that acted.
    """

    on_policy: ClassVar[bool] = True

    def __init__(
        self,
        mac: MultiAgentController,
        critic: nn.Module,
        generator: torch.Generator | None = None,
        action_selector: SoftmaxSelector | None = None,
        *,
        gamma: float = ActorCriticConfig.gamma,
        gae_lambda: float = ActorCriticConfig.gae_lambda,
        clip: float | None = ActorCriticConfig.clip,
        epochs: int = ActorCriticConfig.epochs,
        minibatches: int = ActorCriticConfig.minibatches,
        value_clip: float | None = ActorCriticConfig.value_clip,
        value_norm: bool = ActorCriticConfig.value_norm,
        advantage_norm: bool = ActorCriticConfig.advantage_norm,
        entropy_coef: float = ActorCriticConfig.entropy_coef,
        value_coef: float = ActorCriticConfig.value_coef,
        lr: float = ActorCriticConfig.lr,
        optimizer: str = ActorCriticConfig.optimizer,
        optim_alpha: float = ActorCriticConfig.optim_alpha,
        optim_eps: float = ActorCriticConfig.optim_eps,
        grad_norm_clip: float = ActorCriticConfig.grad_norm_clip,
    ) -> None:
        self.mac = mac
        self.critic = critic
        self.generator = torch.Generator() if generator is None else generator
        self.selector = softmax_selector(action_selector, "actor_critic")
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.clip, self.value_clip = clip, value_clip
        self.epochs, self.minibatches = epochs, minibatches
        self.value_stats = RunningMeanStd() if value_norm else None
        self.advantage_norm = advantage_norm
        self.entropy_coef, self.value_coef = entropy_coef, value_coef
        self.grad_norm_clip = grad_norm_clip
        self.params = [p for net in self.networks().values() for p in net.parameters()]
        self.optimiser = make_optimiser(self.params, optimizer, lr, optim_alpha, optim_eps)
        self.train_steps = 0

    def networks(self) -> dict[str, nn.Module]:
        return {"mac": self.mac, "critic": self.critic}

    def values(
        self, obs: torch.Tensor, actions: torch.Tensor, states: torch.Tensor
    ) -> torch.Tensor:
        """The critic's values of every step, (B, T + 1, K), from obs (B, T + 1, N, O),
        actions (B, T + 1, N, 1) and states (B, T + 1, S)."""
        if isinstance(self.critic, MultiAgentController):
            return self.critic.unroll_steps(obs, actions).squeeze(-1)  # (B, T + 1, N)
        return self.critic(states)  # (B, T + 1, K)

    def log_probs(
        self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor, t_env: int
    ) -> torch.Tensor:
        """The training policy's log-probs of every action at ``t_env``, (B, T, N, A), from
        obs (B, T + 1, N, O), actions (B, T + 1, N, 1) and avail (B, T, N, A)."""
        logits = self.mac.unroll_steps(obs, actions)[:, :-1]  # (B, T, N, A)
        return log_policy(self.selector.policy(logits, avail, t_env))  # (B, T, N, A)

    def train(
        self, batch: EpisodeBatch, t_env: int, episode: int, stats: bool = True
    ) -> dict[str, float]:
        """``epochs`` x ``minibatches`` gradient steps on one rollout; returns the means of
        the steps' stats, or nothing with ``stats=False``."""
        # 1. MASKS AND DATA
        obs = batch.float("obs")  # (B, T + 1, N, O)
        actions = batch["actions"]  # (B, T + 1, N, 1)
        states = batch.float("state")  # (B, T + 1, S)
        avail = batch["avail_actions"][:, :-1]  # (B, T, N, A) bool
        taken = actions[:, :-1].long()  # (B, T, N, 1)
        rewards = batch["reward"][:, :-1].float()  # (B, T, 1)
        terminated = batch["terminated"][:, :-1].float()  # (B, T, 1)
        valid = valid_transitions(batch)  # (B, T, 1) bool
        # An agent with no available action is dead (or padding): out of every loss.
        alive_all = batch["avail_actions"].any(dim=-1)  # (B, T + 1, N)
        alive = alive_all[:, :-1]  # (B, T, N)
        agent_mask = (valid & alive).float()  # (B, T, N)
        acted_at = played_at(t_env, valid)

        # 2. ACTING POLICY AND VALUES
        with torch.no_grad():
            old_log_probs = self.log_probs(obs, actions, avail, acted_at)  # (B, T, N, A)
            old_taken = old_log_probs.gather(-1, taken).squeeze(-1)  # (B, T, N)
            old_values = self.values(obs, actions, states)  # (B, T + 1, K)
        if old_values.shape[-1] > 1:  # per-agent values: a death ends the agent's stream,
            # so no value of a dead agent (never trained) is bootstrapped from
            value_mask = agent_mask  # (B, T, N)
            terminated = torch.max(terminated, (alive & ~alive_all[:, 1:]).float())  # (B, T, N)
        else:
            value_mask = valid.float()  # (B, T, 1)

        # 3. GAE ADVANTAGES AND RETURNS
        with torch.no_grad():
            real_values = self._denormalise(old_values)  # (B, T + 1, K)
            advantages, returns = gae(
                rewards, terminated, value_mask, real_values, self.gamma, self.gae_lambda
            )  # (B, T, K) each
            advantages = advantages.expand_as(agent_mask)  # (B, T, N)
            if self.advantage_norm:
                mean, var = masked_mean(advantages, agent_mask), _masked_var(advantages, agent_mask)
                advantages = (advantages - mean) / (var.sqrt() + 1e-8)  # (B, T, N)
            if self.value_stats is not None:
                self.value_stats.update(returns, value_mask.bool())
                targets = self.value_stats.standardise(returns)  # (B, T, K)
            else:
                targets = returns  # (B, T, K)
        rollout = Rollout(
            obs, actions, states, avail, taken, old_taken, old_values[:, :-1], advantages,
            targets, agent_mask, value_mask,
        )  # fmt: skip

        # 4-5. EPOCHS OF MINIBATCHES: LOSSES AND OPTIMISE
        totals: dict[str, torch.Tensor] = {}
        n_steps = 0
        for _ in range(self.epochs):
            for idx in self._minibatches(obs.shape[0], obs.device):
                step = self._step(rollout.episodes(idx), acted_at)
                for key, value in step.items():
                    totals[key] = totals.get(key, 0.0) + value
                n_steps += 1
        self.train_steps += 1

        # 6. STATS
        if not stats:
            return {}
        with torch.no_grad():
            residual = returns - real_values[:, :-1]  # (B, T, K)
            var_returns = _masked_var(returns, value_mask)
            explained = 1.0 - _masked_var(residual, value_mask) / var_returns.clamp(min=1e-8)
            out = {f"learner/{key}": (value / n_steps).item() for key, value in totals.items()}
            return out | {"learner/explained_variance": explained.item()}

    def _step(self, mb: Rollout, acted_at: int) -> dict[str, torch.Tensor]:
        """One gradient step on a minibatch of episodes; its stats, still on the device."""
        # 4. LOSSES
        log_probs = self.log_probs(mb.obs, mb.actions, mb.avail, acted_at)  # (b, T, N, A)
        chosen = log_probs.gather(-1, mb.taken).squeeze(-1)  # (b, T, N)
        policy_loss, ratio = clipped_surrogate(
            chosen, mb.old_log_probs, mb.advantages, mb.agent_mask, self.clip
        )  # (), (b, T, N)
        values = self.values(mb.obs, mb.actions, mb.states)[:, :-1]  # (b, T, K)
        v_loss = value_loss(values, mb.old_values, mb.targets, mb.value_mask, self.value_clip)
        entropy_mean = masked_mean(entropy(log_probs), mb.agent_mask)
        loss = policy_loss + self.value_coef * v_loss - self.entropy_coef * entropy_mean

        # 5. OPTIMISE
        grad_norm = gradient_step(self.optimiser, loss, self.params, self.grad_norm_clip)

        with torch.no_grad():
            log_ratio = chosen - mb.old_log_probs  # (b, T, N)
            clipped = (ratio - 1.0).abs() > (self.clip if self.clip is not None else float("inf"))
            return {
                "loss": loss.detach(),
                "policy_loss": policy_loss.detach(),
                "value_loss": v_loss.detach(),
                "entropy": entropy_mean.detach(),
                # Schulman's low-variance estimator of KL(old || new).
                "approx_kl": masked_mean(ratio - 1.0 - log_ratio, mb.agent_mask),
                "clip_fraction": masked_mean(clipped.float(), mb.agent_mask),
                "grad_norm": grad_norm.detach(),
            }

    def _minibatches(self, n_episodes: int, device: torch.device) -> list[torch.Tensor | slice]:
        """This epoch's minibatches of episode indices, a fresh shuffle from the learner's
        stream (one minibatch: the whole rollout, in order, and no draw)."""
        if self.minibatches == 1:
            return [slice(None)]
        order = torch.randperm(n_episodes, generator=self.generator).to(device)  # (B,)
        return list(order.chunk(self.minibatches))

    def _denormalise(self, values: torch.Tensor) -> torch.Tensor:
        """Values in return units: the critic's standardised outputs times the running
        std plus the running mean with ``value_norm``, else as they are."""
        return values if self.value_stats is None else self.value_stats.denormalise(values)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac.state_dict(),
            "critic": self.critic.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "train_steps": self.train_steps,
            "value_stats": None if self.value_stats is None else self.value_stats.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the networks of a saved state (fine-tuning)."""
        for name, net in self.networks().items():
            net.load_state_dict(state[name])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights(state)
        self.optimiser.load_state_dict(state["optimiser"])
        self.train_steps = int(state["train_steps"])
        if self.value_stats is not None:
            self.value_stats.load_state_dict(state["value_stats"])
        self.generator.set_state(state["generator"])


def _masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of ``x`` over ``mask`` (broadcast to x's shape)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean).pow(2), mask)
