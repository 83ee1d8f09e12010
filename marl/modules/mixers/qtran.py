"""QTRAN's joint networks: the joint action-value Q_jt and the state value V_jt.

Son et al., 2019, "QTRAN: Learning to Factorize with Transformation for Cooperative
Multi-Agent Reinforcement Learning" (ICML). QTRAN learns an unrestricted joint Q_jt next
to the agents' Qs, and ties the two with soft constraints (the learner's L_opt and L_nopt)
instead of a monotonic mixing network. Q_jt reads the state and the sum of per-agent
encodings of [agent hidden state h_i, action u_i], the hidden features the paper shares
between the individual and joint networks; V_jt reads the state (PyMARL's ``qtran_paper``
architecture, ``network_size: small``):

    Q_jt(s, h, u) = MLP_Q([s, sum_i enc(h_i, u_i)])    base: one value per joint action
    Q_jt^i(s, h, ., u_-i) = MLP_Q([s, enc(h_i, 0) + sum_{j != i} enc(h_j, u_j), id_i])
                                                       alt: one value per action of agent i
    V_jt(s) = MLP_V(s)

``variant="alt"`` builds the counterfactual joint network of QTRAN-alt (§3.3): for every
agent i, the joint values of each of its actions with the others' actions fixed. It is
the network, not the loss, that makes QTRAN-alt, so the variant lives here and the
learner reads it.

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``A`` actions, ``S`` state
size, ``H`` agent hidden size, ``E`` embed dim, ``C = H + A`` encoding size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn

from marl.envs.base import EnvInfo
from marl.validation import bounds, choices

__all__ = ["QTranMixer", "QTranMixerConfig"]


@dataclass
class QTranMixerConfig:
    """Structured-config schema for :class:`QTranMixer`."""

    _target_: str = "marl.modules.mixers.qtran.QTranMixer"
    """Import path Hydra instantiates."""
    variant: str = field(default="base", metadata=choices("base", "alt"))
    """base: Q_jt(s, u) | alt: QTRAN-alt's counterfactual Q_jt(s, ., u_-i) per agent."""
    embed_dim: int = field(default=64, metadata=bounds(1))
    """Width ``E`` of the hidden layers of Q_jt and V_jt (PyMARL's mixing_embed_dim: 64)."""
    agent_hidden_dim: int = field(default=64, metadata=bounds(0))
    """Size ``H`` of the agents' hidden state that Q_jt reads: the agent's hidden_dim
    (algo/qtran.yaml interpolates it), 0 for feed-forward agents (no hidden state)."""


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two ReLU hidden layers of width ``hidden``."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )


class QTranMixer(nn.Module):
    """Joint action-value network Q_jt and state-value network V_jt of QTRAN."""

    def __init__(
        self,
        env_info: EnvInfo,
        variant: str = QTranMixerConfig.variant,
        embed_dim: int = QTranMixerConfig.embed_dim,
        agent_hidden_dim: int = QTranMixerConfig.agent_hidden_dim,
    ) -> None:
        super().__init__()
        if variant not in ("base", "alt"):
            raise ValueError(f"QTRAN variant must be 'base' or 'alt', got {variant!r}.")
        self.variant = variant
        self.n_agents = n = env_info.n_agents
        self.n_actions = a = env_info.n_actions
        self.state_dim = s = env_info.state_shape
        self.agent_hidden_dim = agent_hidden_dim
        c = agent_hidden_dim + a
        self.encoding = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c))
        if variant == "base":
            self.Q = _mlp(s + c, embed_dim, 1)
        else:
            self.Q = _mlp(s + c + n, embed_dim, a)
            # One-hot agent ids, built once; not saved with the weights.
            self.register_buffer("agent_ids", torch.eye(n), persistent=False)  # (N, N)
        self.V = _mlp(s, embed_dim, 1)

    def forward(self, states: Tensor, hidden: Tensor, actions: Tensor) -> Tensor:
        """Joint values of the joint actions ``actions``.

        states (B, T, S), agent hidden states hidden (B, T, N, H), one-hot actions
        (B, T, N, A) -> base: Q_jt(s, u) (B, T, 1); alt: Q_jt(s, ., u_-i) (B, T, N, A),
        row i holding the joint value of each action of agent i, the others' fixed.
        """
        enc = self.encoding(torch.cat([hidden, actions], dim=-1))  # (B, T, N, C)
        total = enc.sum(dim=2)  # (B, T, C)
        if self.variant == "base":
            return self.Q(torch.cat([states, total], dim=-1))  # (B, T, 1)
        # Counterfactual for agent i: its own encoding without its action.
        own_blank = self.encoding(torch.cat([hidden, torch.zeros_like(actions)], dim=-1))
        others = total.unsqueeze(2) - enc + own_blank  # (B, T, N, C)
        lead = states.shape[:-1]  # (B, T)
        n = self.n_agents
        s = states.unsqueeze(2).expand(*lead, n, self.state_dim)  # (B, T, N, S)
        ids = cast(Tensor, self.agent_ids).expand(*lead, n, n)  # (B, T, N, N)
        return self.Q(torch.cat([s, others, ids], dim=-1))  # (B, T, N, A)

    def value(self, states: Tensor) -> Tensor:
        """V_jt(s): states (B, T, S) -> (B, T, 1)."""
        return self.V(states)  # (B, T, 1)
