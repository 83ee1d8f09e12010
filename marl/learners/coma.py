"""COMA: counterfactual multi-agent policy gradients (Foerster et al. 2018).

A centralised critic Q(s, u) gives each agent the advantage of its action over the
policy's expectation with the other agents' actions held fixed:

    A_i(s, u) = Q(s, u) - sum_a pi_i(a | tau_i) Q(s, (u_-i, a)),

computed for every a in one pass of `ComaCritic`. The critic learns TD(lambda) targets
from a target critic (hard copies every ``target_update_interval`` episodes); the actor
follows the policy gradient of log pi_i(u_i) A_i. Both are trained once on each rollout,
as played (on-policy, PyMARL's buffer of one rollout), each with its own optimiser, the
critic first, as PyMARL does. The policy is the acting selector's: PyMARL's COMA floors it
with an epsilon annealed over env steps, in acting and in the gradient alike.

Differences from PyMARL's COMA: the critic takes one gradient step on the whole rollout
(EPyMARL's batch mode), not one per time step from the end (PyMARL's ``seq`` mode, T
optimiser steps per rollout); the baseline and advantages use the critic's values from
before that step, as PyMARL's do.

Dead agents: the critic values the joint action for every agent at every real step,
dead ones included (their only action is no-op, so their Q is the team's and a sound
bootstrap for the living); the policy loss and entropy leave dead agents out.

Shapes: B episodes, T steps (transitions; the batch holds T + 1 steps), N agents,
A actions, O obs size, S state size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.exploration.softmax import SoftmaxSelector, log_policy
from marl.learners.actor_critic import entropy
from marl.learners.common import (
    TargetNetworks,
    gradient_step,
    make_optimiser,
    played_at,
    softmax_selector,
    valid_transitions,
)
from marl.ops.masked import masked_mean
from marl.ops.returns import td_lambda_targets
from marl.validation import bounds, choices


@dataclass
class ComaConfig:
    """Schema for `learner=coma`, PyMARL's coma.yaml defaults."""

    _target_: str = "marl.learners.coma.ComaLearner"
    gamma: float = field(default=0.99, metadata=bounds(0, 1))
    """Discount factor."""
    td_lambda: float = field(default=0.8, metadata=bounds(0, 1))
    """Lambda of the critic's TD(lambda) targets (the paper's 0.8)."""
    lr: float = field(default=0.0005, metadata=bounds(0, low_open=True))
    """Learning rate of the agents (the actor)."""
    critic_lr: float = field(default=0.0005, metadata=bounds(0, low_open=True))
    """Learning rate of the critic."""
    optimizer: str = field(default="rmsprop", metadata=choices("rmsprop", "adam"))
    """rmsprop | adam, for both."""
    optim_alpha: float = field(default=0.99, metadata=bounds(0, 1, high_open=True))
    """RMSprop smoothing constant."""
    optim_eps: float = field(default=0.00001, metadata=bounds(0, low_open=True))
    """Optimiser epsilon."""
    grad_norm_clip: float = field(default=10.0, metadata=bounds(0, low_open=True))
    """Clip the gradient norm of the actor and of the critic, each, to this value."""
    target_update_interval: int = field(default=200, metadata=bounds(1))
    """Episodes between hard copies of the critic into the target critic."""
    entropy_coef: float = field(default=0.0, metadata=bounds(0))
    """Weight of a policy-entropy bonus (PyMARL's COMA has none; EPyMARL's 0.001)."""


def counterfactual_advantages(
    q: torch.Tensor, probs: torch.Tensor, taken: torch.Tensor
) -> torch.Tensor:
    """COMA's advantages (B, T, N): Q of the taken action minus the policy's expectation
    of Q over the agent's own actions, from q (B, T, N, A), probs (B, T, N, A) (0 at
    unavailable actions, so they add nothing) and taken (B, T, N, 1)."""
    baseline = (probs * q).sum(dim=-1)  # (B, T, N)
    return q.gather(-1, taken).squeeze(-1) - baseline  # (B, T, N)


class ComaLearner:
    """Trains a policy controller and `ComaCritic` on each rollout, as played."""

    on_policy: ClassVar[bool] = True

    def __init__(
        self,
        mac: MultiAgentController,
        critic: nn.Module,
        generator: torch.Generator | None = None,
        action_selector: SoftmaxSelector | None = None,
        *,
        gamma: float = ComaConfig.gamma,
        td_lambda: float = ComaConfig.td_lambda,
        lr: float = ComaConfig.lr,
        critic_lr: float = ComaConfig.critic_lr,
        optimizer: str = ComaConfig.optimizer,
        optim_alpha: float = ComaConfig.optim_alpha,
        optim_eps: float = ComaConfig.optim_eps,
        grad_norm_clip: float = ComaConfig.grad_norm_clip,
        target_update_interval: int = ComaConfig.target_update_interval,
        entropy_coef: float = ComaConfig.entropy_coef,
    ) -> None:
        self.mac = mac
        self.critic = critic
        # Drawn from by nothing in this update; saved and restored like every learner's.
        self.generator = torch.Generator() if generator is None else generator
        self.selector = softmax_selector(action_selector, "coma")
        self.targets = TargetNetworks({"critic": critic}, target_update_interval, tau=None)
        self.gamma, self.td_lambda = gamma, td_lambda
        self.grad_norm_clip = grad_norm_clip
        self.entropy_coef = entropy_coef
        self.actor_params = list(mac.parameters())
        self.critic_params = list(critic.parameters())
        self.optimiser = make_optimiser(self.actor_params, optimizer, lr, optim_alpha, optim_eps)
        self.critic_optimiser = make_optimiser(
            self.critic_params, optimizer, critic_lr, optim_alpha, optim_eps
        )
        self.train_steps = 0

    def networks(self) -> dict[str, nn.Module]:
        return {"mac": self.mac, "critic": self.critic}

    def train(
        self, batch: EpisodeBatch, t_env: int, episode: int, stats: bool = True
    ) -> dict[str, float]:
        """One critic step, then one actor step, on one rollout; their stats, or nothing
        with ``stats=False``."""
        # 1. MASKS AND DATA
        obs = batch.float("obs")  # (B, T + 1, N, O)
        actions = batch["actions"]  # (B, T + 1, N, 1)
        states = batch.float("state")  # (B, T + 1, S)
        avail = batch["avail_actions"][:, :-1]  # (B, T, N, A) bool
        taken = actions[:, :-1].long()  # (B, T, N, 1)
        rewards = batch["reward"][:, :-1].float()  # (B, T, 1)
        terminated = batch["terminated"][:, :-1].float()  # (B, T, 1)
        valid = valid_transitions(batch)  # (B, T, 1) bool
        step_mask = valid.float()  # (B, T, 1): the critic's, every agent of a real step
        agent_mask = (valid & avail.any(dim=-1)).float()  # (B, T, N): live agents only

        # 2. CRITIC: TD(lambda) TARGETS FROM THE TARGET CRITIC'S Q OF THE ACTIONS TAKEN
        with torch.no_grad():
            target_q = self.targets["critic"](states, obs, actions)  # (B, T + 1, N, A)
            target_taken = target_q.gather(-1, actions.long()).squeeze(-1)  # (B, T + 1, N)
            targets = td_lambda_targets(
                rewards, terminated, valid, target_taken[:, 1:], self.gamma, self.td_lambda
            )  # (B, T, N)
        q = self.critic(states, obs, actions)[:, :-1]  # (B, T, N, A)
        q_taken = q.gather(-1, taken).squeeze(-1)  # (B, T, N)
        critic_loss = masked_mean((q_taken - targets).pow(2), step_mask)
        critic_grad_norm = gradient_step(
            self.critic_optimiser, critic_loss, self.critic_params, self.grad_norm_clip
        )

        # 3. ACTOR: POLICY GRADIENT WITH THE COUNTERFACTUAL BASELINE
        logits = self.mac.unroll_steps(obs, actions)[:, :-1]  # (B, T, N, A)
        probs = self.selector.policy(logits, avail, played_at(t_env, valid))  # (B, T, N, A)
        log_probs = log_policy(probs)  # (B, T, N, A)
        advantages = counterfactual_advantages(q.detach(), probs.detach(), taken)  # (B, T, N)
        chosen = log_probs.gather(-1, taken).squeeze(-1)  # (B, T, N)
        policy_loss = -masked_mean(chosen * advantages, agent_mask)
        entropy_mean = masked_mean(entropy(log_probs), agent_mask)
        loss = policy_loss - self.entropy_coef * entropy_mean
        grad_norm = gradient_step(self.optimiser, loss, self.actor_params, self.grad_norm_clip)
        self.train_steps += 1

        # 4. TARGET CRITIC
        self.targets.update(episode)

        if not stats:
            return {}
        with torch.no_grad():
            return {
                "learner/critic_loss": critic_loss.item(),
                "learner/critic_grad_norm": critic_grad_norm.item(),
                "learner/q_taken_mean": masked_mean(q_taken, step_mask).item(),
                "learner/target_mean": masked_mean(targets, step_mask).item(),
                "learner/policy_loss": policy_loss.item(),
                "learner/advantage_mean": masked_mean(advantages, agent_mask).item(),
                "learner/entropy": entropy_mean.item(),
                "learner/grad_norm": grad_norm.item(),
            }

    def state_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac.state_dict(),
            "critic": self.critic.state_dict(),
            **self.targets.state_dict(),  # target_critic, last_target_update_episode
            "optimiser": self.optimiser.state_dict(),
            "critic_optimiser": self.critic_optimiser.state_dict(),
            "train_steps": self.train_steps,
            "generator": self.generator.get_state(),
        }

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the networks of a saved state, the critic copied into its target too."""
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.targets["critic"].load_state_dict(state["critic"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.targets.load_state_dict(state)
        self.optimiser.load_state_dict(state["optimiser"])
        self.critic_optimiser.load_state_dict(state["critic_optimiser"])
        self.train_steps = int(state["train_steps"])
        self.generator.set_state(state["generator"])
