"""A centralised state-value critic, V(s) or V(s, agent id), for MAA2C and MAPPO.

Foerster et al. 2018 (COMA) name the centralised V critic; Yu et al. 2022 ("The
Surprising Effectiveness of PPO in Cooperative Multi-Agent Games", MAPPO) feed it the
global state plus the agent's id, an agent-specific value. A per-agent V on the agents'
own observations needs no class: it is a second controller with ``n_outputs: 1``.

Shapes: B episodes, T steps, N agents, S state size, H hidden units, K value heads
(N with ``agent_id``, else 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn

from marl.envs.base import EnvInfo
from marl.validation import bounds

__all__ = ["CentralV", "CentralVConfig"]


@dataclass
class CentralVConfig:
    """Schema for the centralised V critic (`algo.modules.critic`)."""

    _target_: str = "marl.modules.critics.central_v.CentralV"
    hidden_dim: int = field(default=64, metadata=bounds(1))
    """Width of the critic's two hidden layers."""
    agent_id: bool = False
    """Also take a one-hot agent id: one value per agent (MAPPO's agent-specific input)."""


class CentralV(nn.Module):
    """An MLP from the global state (and an agent id) to a state value."""

    def __init__(
        self,
        env_info: EnvInfo,
        hidden_dim: int = CentralVConfig.hidden_dim,
        agent_id: bool = CentralVConfig.agent_id,
    ) -> None:
        super().__init__()
        self.n_agents = env_info.n_agents
        self.agent_id = agent_id
        in_dim = env_info.state_shape + (env_info.n_agents if agent_id else 0)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, 1),
        )
        # One-hot agent ids, built once; not saved with the weights.
        self.register_buffer("agent_ids", torch.eye(self.n_agents), persistent=False)  # (N, N)

    def forward(self, states: Tensor) -> Tensor:
        """states (B, T, S) -> values (B, T, K): (B, T, N) with ``agent_id``, else (B, T, 1)."""
        x = states.float()
        if self.agent_id:
            ids = cast(Tensor, self.agent_ids).expand(*x.shape[:-1], -1, -1)  # (B, T, N, N)
            x = torch.cat([x.unsqueeze(-2).expand(*x.shape[:-1], self.n_agents, -1), ids], -1)
            return self.net(x).squeeze(-1)  # (B, T, N)
        return self.net(x)  # (B, T, 1)
