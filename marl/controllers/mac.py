"""The multi-agent controller: builds agent inputs and runs the agent network(s).

It is an ``nn.Module`` with no hidden state of its own: the recurrent state goes
in and comes out, so acting, training and checkpointing never depend on what
was called before. Action selection is a separate object (``marl.exploration``).

Shapes: B episodes, L steps, N agents, O obs size, A actions, H hidden units,
I agent input size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from omegaconf import MISSING
from torch import nn
from torch.nn import functional as F

from marl.envs.base import EnvInfo
from marl.modules.agents.base import Agent
from marl.validation import bounds


@dataclass
class ControllerConfig:
    """Schema for the multi-agent controller (`algo.modules.mac`)."""

    _target_: str = "marl.controllers.mac.MultiAgentController"
    agent: Any = MISSING
    """The agent network (a `_partial_` `_target_` node: `algo/agent=rnn|mlp`)."""
    n_outputs: int | None = field(default=None, metadata=bounds(1))
    """Outputs per agent; null: one per action (Q-values, policy logits). 1: a value."""
    obs_agent_id: bool = True
    """Append a one-hot agent id to each agent's observation."""
    obs_last_action: bool = True
    """Append each agent's previous action (one-hot, zeros at t=0)."""
    share_params: bool = True
    """One network for all agents; False gives each agent its own network."""


AgentFactory = Callable[..., Agent]


class MultiAgentController(nn.Module):
    """Runs N agents: one shared network, or one network per agent."""

    def __init__(
        self,
        agent: AgentFactory,
        env_info: EnvInfo,
        n_outputs: int | None = ControllerConfig.n_outputs,
        obs_agent_id: bool = ControllerConfig.obs_agent_id,
        obs_last_action: bool = ControllerConfig.obs_last_action,
        share_params: bool = ControllerConfig.share_params,
    ) -> None:
        super().__init__()
        self.n_agents = env_info.n_agents
        self.n_actions = env_info.n_actions
        self.n_outputs = n_outputs or env_info.n_actions
        self.obs_agent_id = obs_agent_id
        self.obs_last_action = obs_last_action
        self.share_params = share_params
        self.input_dim = (
            env_info.obs_shape
            + (env_info.n_actions if obs_last_action else 0)
            + (env_info.n_agents if obs_agent_id else 0)
        )
        # One-hot agent ids, built once; not saved with the weights.
        self.register_buffer("agent_ids", torch.eye(self.n_agents), persistent=False)  # (N, N)
        n_networks = 1 if share_params else self.n_agents
        self.agents = nn.ModuleList(
            [agent(input_dim=self.input_dim, n_actions=self.n_outputs) for _ in range(n_networks)]
        )

    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        device = next(self.parameters()).device
        agent = cast(Agent, self.agents[0])
        h = agent.initial_hidden(batch_size * self.n_agents, device)  # (B * N, H)
        return h.view(batch_size, self.n_agents, h.shape[-1])  # (B, N, H); H = 0 feed-forward

    def build_inputs(self, obs: torch.Tensor, last_actions: torch.Tensor | None) -> torch.Tensor:
        """obs (..., N, O), last_actions one-hot (..., N, A) -> inputs (..., N, I); the
        leading dims are (B, L) for sequences, (B,) for one step."""
        parts = [obs if obs.dtype == torch.float32 else obs.float()]
        if self.obs_last_action:
            if last_actions is None:
                raise ValueError("the controller uses last actions but none were given")
            parts.append(last_actions.float())  # (..., N, A)
        if self.obs_agent_id:
            agent_ids = cast(torch.Tensor, self.agent_ids)  # (N, N)
            parts.append(agent_ids.expand(*obs.shape[:-2], -1, -1))  # (..., N, N)
        return torch.cat(parts, dim=-1)  # (..., N, I)

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor | None, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every agent, for acting: obs (B, N, O), last_actions one-hot
        (B, N, A) (None when unused), hidden (B, N, H) -> q (B, N, A), next hidden (B, N, H).

        The same numbers as `forward` on a length-1 sequence, with fewer tensor ops
        (no sequence dimension, no transposes), which is most of the cost of acting.
        """
        inputs = self.build_inputs(obs, last_actions)  # (B, N, I)
        b, n, _ = inputs.shape
        if self.share_params:
            agent = cast(Agent, self.agents[0])
            h_in = hidden.reshape(b * n, hidden.shape[-1])  # (B * N, H)
            q, h = agent.step(inputs.reshape(b * n, -1), h_in)  # (B * N, A), (B * N, H)
            return q.view(b, n, -1), h.view(b, n, h.shape[-1])  # (B, N, A), (B, N, H)
        outs, hs = [], []
        for i, net in enumerate(self.agents):
            q_i, h_i = cast(Agent, net).step(inputs[:, i], hidden[:, i])  # (B, A), (B, H)
            outs.append(q_i)
            hs.append(h_i)
        return torch.stack(outs, dim=1), torch.stack(hs, dim=1)  # (B, N, A), (B, N, H)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor | None, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, L, N, O), last_actions (B, L, N, A), hidden (B, N, H).

        Returns q (B, L, N, A) and the hidden state after the last step (B, N, H).
        """
        inputs = self.build_inputs(obs, last_actions)  # (B, L, N, I)
        b, steps, n, _ = inputs.shape
        agent = cast(Agent, self.agents[0])
        if self.share_params and not agent.recurrent:
            # Feed-forward: every (episode, step, agent) row on its own, no transposes.
            rows = b * steps * n
            q, _ = agent.step(inputs.reshape(rows, -1), hidden.new_zeros(rows, 0))  # (rows, A)
            return q.view(b, steps, n, -1), hidden  # (B, L, N, A), (B, N, 0)
        if self.share_params:
            x = inputs.transpose(1, 2).reshape(b * n, steps, -1)  # (B * N, L, I)
            h_in = hidden.reshape(b * n, hidden.shape[-1])  # (B * N, H)
            q, h = agent(x, h_in)  # (B * N, L, A), (B * N, H)
            q = q.view(b, n, steps, -1).transpose(1, 2)  # (B, L, N, A)
            return q, h.view(b, n, h.shape[-1])  # (B, L, N, A), (B, N, H)
        outs, hs = [], []
        for i, net in enumerate(self.agents):
            q_i, h_i = net(inputs[:, :, i], hidden[:, i])  # (B, L, A), (B, H)
            outs.append(q_i)
            hs.append(h_i)
        return torch.stack(outs, dim=2), torch.stack(hs, dim=1)  # (B, L, N, A), (B, N, H)

    @property
    def steps_independent(self) -> bool:
        """Each step's Q depends on that step's observation alone (feed-forward agents, no
        last-action input): any run of steps may be unrolled on its own."""
        agent = cast(Agent, self.agents[0])
        return not agent.recurrent and not self.obs_last_action

    def unroll_steps(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """obs (B, T, N, O) float and the actions taken (B, T, N, 1) -> q (B, T, N, A)."""
        q, _ = self(obs, self.last_actions(actions), self.initial_hidden(obs.shape[0]))
        return q  # (B, T, N, A)

    def unroll_hidden(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `unroll_steps`, also giving each step's hidden state (QTRAN's joint networks
        read them): q (B, T, N, A) and hidden (B, T, N, H) after each step. Step by step,
        with the acting path's math; H = 0 for feed-forward agents."""
        last_actions = self.last_actions(actions)  # (B, T, N, A) or None
        hidden = self.initial_hidden(obs.shape[0])  # (B, N, H)
        qs, hiddens = [], []
        for t in range(obs.shape[1]):
            last_t = None if last_actions is None else last_actions[:, t]
            q_t, hidden = self.step(obs[:, t], last_t, hidden)  # (B, N, A), (B, N, H)
            qs.append(q_t)
            hiddens.append(hidden)
        return torch.stack(qs, dim=1), torch.stack(hiddens, dim=1)  # (B, T, N, A), (B, T, N, H)

    def last_actions(self, actions: torch.Tensor) -> torch.Tensor | None:
        """The one-hot previous action of each step, (B, T, N, A), zeros at t = 0; None
        when the agents do not see it."""
        if not self.obs_last_action:
            return None
        onehot = F.one_hot(actions.squeeze(-1).long(), self.n_actions).float()  # (B, T, N, A)
        return torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], dim=1)
