"""COMA's counterfactual critic: Q(s, u) for every action of one agent, the others fixed.

Foerster et al. 2018 ("Counterfactual Multi-Agent Policy Gradients"): for agent i the
critic takes the state, i's observation, the other agents' actions, every agent's last
action and i's id, and outputs one Q-value per action of i. One forward pass then gives
Q(s, (u_-i, a)) for all a, the counterfactuals COMA's baseline sums over. Feed-forward,
as in the paper and PyMARL (the state and last actions carry what a recurrent critic
would remember).

Shapes: B episodes, T steps, N agents, A actions, O obs size, S state size,
H hidden units, I input size (S + O + 2 N A + N).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from marl.envs.base import EnvInfo
from marl.validation import bounds

__all__ = ["ComaCritic", "ComaCriticConfig"]


@dataclass
class ComaCriticConfig:
    """Schema for COMA's critic (`algo.modules.critic`)."""

    _target_: str = "marl.modules.critics.coma.ComaCritic"
    hidden_dim: int = field(default=128, metadata=bounds(1))
    """Width of the critic's two hidden layers (PyMARL's COMA: 128)."""


class ComaCritic(nn.Module):
    """An MLP from (state, own obs, others' actions, last joint action, id) to Q per action."""

    def __init__(self, env_info: EnvInfo, hidden_dim: int = ComaCriticConfig.hidden_dim) -> None:
        super().__init__()
        n, a = env_info.n_agents, env_info.n_actions
        self.n_agents, self.n_actions = n, a
        in_dim = env_info.state_shape + env_info.obs_shape + 2 * n * a + n
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, a),
        )
        # Row i zeroes agent i's own block of the joint one-hot action; built once, not saved.
        others = (1.0 - torch.eye(n)).repeat_interleave(a, dim=1)  # (N, N * A)
        self.register_buffer("others", others, persistent=False)
        self.register_buffer("agent_ids", torch.eye(n), persistent=False)  # (N, N)

    def forward(self, states: Tensor, obs: Tensor, actions: Tensor) -> Tensor:
        """states (B, T, S), obs (B, T, N, O) and the joint actions taken (B, T, N, 1) of
        whole episodes from step 0 -> Q (B, T, N, A): Q[..., i, a] = Q(s, (u_-i, a))."""
        b, t, n, _ = obs.shape
        onehot = F.one_hot(actions.squeeze(-1).long(), self.n_actions).float()  # (B, T, N, A)
        joint = onehot.reshape(b, t, 1, n * self.n_actions).expand(-1, -1, n, -1)  # (B, T, N, NA)
        last = torch.cat([torch.zeros_like(joint[:, :1]), joint[:, :-1]], dim=1)  # (B, T, N, NA)
        inputs = torch.cat(
            [
                states.float().unsqueeze(2).expand(-1, -1, n, -1),  # (B, T, N, S)
                obs.float(),  # (B, T, N, O)
                joint * cast(Tensor, self.others),  # (B, T, N, NA): the others' actions
                last,  # (B, T, N, NA)
                cast(Tensor, self.agent_ids).expand(b, t, -1, -1),  # (B, T, N, N)
            ],
            dim=-1,
        )  # (B, T, N, I)
        return self.net(inputs)  # (B, T, N, A)
