"""QMIX monotonic mixing network.

Rashid et al., 2018, "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent
Reinforcement Learning" (ICML). Hypernetworks conditioned on the global state ``s`` produce the
weights of a two-layer mixing network over the agent utilities. The mixing weights are made
non-negative with ``abs()``, so ``dQ_tot / dQ_i >= 0`` for every agent ``i``:

    hidden = elu(q @ |W1(s)| + b1(s))
    Q_tot  = hidden @ |W2(s)| + V(s)

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``S`` state size, ``E`` mixing
embed dim, ``H`` hypernetwork hidden size, ``M = B * T`` flattened batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marl.envs.base import EnvInfo
from marl.validation import bounds, choices

__all__ = ["QMixer", "QMixerConfig"]


@dataclass
class QMixerConfig:
    """Structured-config schema for :class:`QMixer`."""

    _target_: str = "marl.modules.mixers.qmix.QMixer"
    """Import path Hydra instantiates."""
    embed_dim: int = field(default=32, metadata=bounds(1))
    """Width ``E`` of the mixing network's hidden layer."""
    hypernet_layers: int = field(default=2, metadata=choices(1, 2))
    """Hypernetwork depth: 1 = linear, 2 = one ReLU hidden layer of ``hypernet_embed`` units."""
    hypernet_embed: int = field(default=64, metadata=bounds(1))
    """Hidden width ``H`` of the weight hypernetworks when ``hypernet_layers == 2``."""


def _hypernet(in_dim: int, out_dim: int, layers: int, hidden: int) -> nn.Module:
    """Build a weight hypernetwork with ``layers`` (1 or 2) linear layers."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    if layers == 2:
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    raise ValueError(f"hypernet_layers must be 1 or 2, got {layers!r}.")


class QMixer(nn.Module):
    """State-conditioned monotonic mixer ``(B, T, N), (B, T, S) -> (B, T, 1)``."""

    def __init__(
        self,
        env_info: EnvInfo,
        embed_dim: int = QMixerConfig.embed_dim,
        hypernet_layers: int = QMixerConfig.hypernet_layers,
        hypernet_embed: int = QMixerConfig.hypernet_embed,
    ) -> None:
        """Create the hypernetworks.

        Args:
            env_info: The env's sizes: ``N`` agents (``n_agents``), state size ``S``.
            embed_dim: Mixing hidden width ``E``.
            hypernet_layers: 1 (linear hypernetworks) or 2 (ReLU hidden layer).
            hypernet_embed: Hypernetwork hidden width ``H`` (used when ``hypernet_layers == 2``).

        Raises:
            ValueError: If ``hypernet_layers`` is not 1 or 2.
        """
        super().__init__()
        self.n_agents = n_agents = env_info.n_agents
        self.state_dim = state_dim = env_info.state_shape
        self.embed_dim = embed_dim
        self.hyper_w_1 = _hypernet(state_dim, n_agents * embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_w_final = _hypernet(state_dim, embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_b_1 = nn.Linear(state_dim, embed_dim)
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(
        self,
        agent_qs: Tensor,
        states: Tensor,
        actions: Tensor | None = None,
        max_qs: Tensor | None = None,
    ) -> Tensor:
        """Mix agent utilities ``(B, T, N)`` given states ``(B, T, S)`` into ``(B, T, 1)``; the
        joint action and max Qs that the learner gives every mixer (QPLEX's) are unused."""
        lead = agent_qs.shape[:-1]  # (B, T)
        n, e = self.n_agents, self.embed_dim
        qs = agent_qs.reshape(-1, n, 1)  # (M, N, 1)
        s = states.reshape(-1, self.state_dim)  # (M, S)
        w1 = torch.abs(self.hyper_w_1(s)).view(-1, n, e)  # (M, N, E)
        b1 = self.hyper_b_1(s)  # (M, E)
        # Per-row products as broadcast multiply-and-sum: the same sums as a bmm of
        # (M, 1, N) x (M, N, E), without M tiny matmuls (faster on a CPU).
        hidden = F.elu((qs * w1).sum(dim=1) + b1)  # (M, E)
        w_final = torch.abs(self.hyper_w_final(s))  # (M, E)
        v = self.V(s)  # (M, 1)
        q_tot = (hidden * w_final).sum(dim=1, keepdim=True) + v  # (M, 1)
        return q_tot.view(*lead, 1)  # (B, T, 1)
