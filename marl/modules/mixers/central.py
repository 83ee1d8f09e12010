"""The unrestricted joint value of Weighted QMIX.

Rashid et al., 2020, "Weighted QMIX: Expanding Monotonic Value Function Factorisation"
(NeurIPS). Weighted QMIX learns, beside QMIX's monotonic ``Q_tot``, an estimate
``Q*(s, u)`` of the optimal joint value that is free to be non-monotonic: a feed-forward
network of the state and the per-agent values of the joint action (from a second
controller), with a state value ``V(s)`` in place of its output bias:

    Q*(s, u) = MLP([s, q_1(u_1), ..., q_N(u_N)]) + V(s)

Three ReLU hidden layers of ``embed_dim`` (256) units, as in the authors' code
(oxwhirl/wqmix ``central_mixer: ff``). Its weights may have any sign, so its argmax is
not the agents' greedy actions: the learner only bootstraps from it
(`marl.learners.weighted_q`).

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``S`` state size, ``E``
hidden width, ``M = B * T`` flattened batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from marl.envs.base import EnvInfo
from marl.validation import bounds

__all__ = ["CentralMixer", "CentralMixerConfig"]


@dataclass
class CentralMixerConfig:
    """Structured-config schema for :class:`CentralMixer`."""

    _target_: str = "marl.modules.mixers.central.CentralMixer"
    """Import path Hydra instantiates."""
    embed_dim: int = field(default=256, metadata=bounds(1))
    """Width ``E`` of the three hidden layers (and of V(s)'s hidden layer)."""


class CentralMixer(nn.Module):
    """Feed-forward, non-monotonic mixer ``(B, T, N), (B, T, S) -> (B, T, 1)``."""

    def __init__(self, env_info: EnvInfo, embed_dim: int = CentralMixerConfig.embed_dim) -> None:
        """Create the network over ``[state, agent Qs]`` and the state value.

        Args:
            env_info: The env's sizes: ``N`` agents (``n_agents``), state size ``S``.
            embed_dim: Hidden width ``E``.
        """
        super().__init__()
        self.n_agents = n = env_info.n_agents
        self.state_dim = s = env_info.state_shape
        e = embed_dim
        hidden = [nn.Linear(s + n, e), nn.ReLU(), nn.Linear(e, e), nn.ReLU()]
        hidden += [nn.Linear(e, e), nn.ReLU()]
        self.net = nn.Sequential(*hidden, nn.Linear(e, 1))
        self.V = nn.Sequential(nn.Linear(s, e), nn.ReLU(), nn.Linear(e, 1))

    def forward(
        self,
        agent_qs: Tensor,
        states: Tensor,
        actions: Tensor | None = None,
        max_qs: Tensor | None = None,
    ) -> Tensor:
        """Map agent values ``(B, T, N)`` and states ``(B, T, S)`` to ``(B, T, 1)``; the joint
        action and max Qs that the Q-learning core gives every mixer (QPLEX's) are unused."""
        lead = agent_qs.shape[:-1]  # (B, T)
        s = states.reshape(-1, self.state_dim)  # (M, S)
        inputs = torch.cat([s, agent_qs.reshape(-1, self.n_agents)], dim=-1)  # (M, S + N)
        q = self.net(inputs) + self.V(s)  # (M, 1)
        return q.view(*lead, 1)  # (B, T, 1)
