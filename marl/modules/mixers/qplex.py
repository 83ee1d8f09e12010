"""QPLEX's duplex dueling mixer.

Wang et al., 2021, "QPLEX: Duplex Dueling Multi-Agent Q-Learning" (ICLR). Each agent's
utility is split into a value and an advantage, and the joint value keeps that split:

    Q_i = w_i(s) * q_i + b_i(s),   V_i = w_i(s) * max_u q_i + b_i(s),   A_i = Q_i - V_i <= 0
    Q_tot(s, u) = sum_i V_i + sum_i lambda_i(s, u) * A_i

with positive weights ``w_i(s)`` and importance weights ``lambda_i(s, u) > 0`` from a
multi-head attention over the state and the joint action:

    lambda_i(s, u) = sum_k |key_k(s)| * sigmoid(agent_k(s))_i * sigmoid(action_k(s, u))_i

Every ``A_i`` is 0 at agent i's greedy action and negative elsewhere, so ``Q_tot`` is
largest when every agent takes its own greedy action (the IGM principle) while
``lambda`` lets the joint value of other actions be non-monotonic in the agents' Qs. As
in the authors' code, the advantages get their gradient through ``sum_i Q_i`` only: the
``(lambda_i - 1) * A_i`` correction trains the attention only.

The learner gives the mixer the joint action ``u`` and each agent's max Q besides the
chosen Qs (`marl.learners.q_learning`). Defaults are the authors' SMAC settings
(wjh720/QPLEX ``qplex_sc2.yaml``: 4 heads, linear attention networks).

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``A`` actions, ``S`` state
size, ``K`` attention heads, ``M = B * T`` flattened batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marl.envs.base import EnvInfo
from marl.modules.mixers.qmix import _hypernet
from marl.validation import bounds, choices

__all__ = ["QPLEXMixer", "QPLEXMixerConfig"]

POSITIVE = 1e-10
"""Added to the absolute values that make weights, so that none is exactly zero."""


@dataclass
class QPLEXMixerConfig:
    """Structured-config schema for :class:`QPLEXMixer`."""

    _target_: str = "marl.modules.mixers.qplex.QPLEXMixer"
    """Import path Hydra instantiates."""
    hypernet_embed: int = field(default=64, metadata=bounds(1))
    """Hidden width of the state networks that make each agent's weight ``w_i(s)`` and
    bias ``b_i(s)``."""
    heads: int = field(default=4, metadata=bounds(1))
    """Attention heads ``K`` of the importance weights (the authors' ``num_kernel``)."""
    attention_layers: int = field(default=1, metadata=choices(1, 2))
    """Depth of each head's key, agent and action networks: 1 = linear, 2 = one ReLU
    hidden layer of ``attention_embed`` units."""
    attention_embed: int = field(default=64, metadata=bounds(1))
    """Hidden width of the attention networks when ``attention_layers == 2``."""


class QPLEXMixer(nn.Module):
    """Duplex dueling mixer ``(B, T, N) Qs, (B, T, S) states, (B, T, N, 1) joint action,
    (B, T, N) max Qs -> (B, T, 1)``."""

    def __init__(
        self,
        env_info: EnvInfo,
        hypernet_embed: int = QPLEXMixerConfig.hypernet_embed,
        heads: int = QPLEXMixerConfig.heads,
        attention_layers: int = QPLEXMixerConfig.attention_layers,
        attention_embed: int = QPLEXMixerConfig.attention_embed,
    ) -> None:
        """Create the transformation and attention networks.

        Args:
            env_info: The env's sizes: ``N`` agents, ``A`` actions, state size ``S``.
            hypernet_embed: Hidden width of the weight and bias networks.
            heads: Attention heads ``K``.
            attention_layers: 1 (linear) or 2 (one ReLU hidden layer) per attention network.
            attention_embed: Hidden width of the attention networks with 2 layers.
        """
        super().__init__()
        self.n_agents = n = env_info.n_agents
        self.n_actions = env_info.n_actions
        self.state_dim = s = env_info.state_shape
        self.weight = _hypernet(s, n, 2, hypernet_embed)  # w_i(s), made positive
        self.bias = _hypernet(s, n, 2, hypernet_embed)  # b_i(s)
        su = s + n * self.n_actions  # state and one-hot joint action

        def per_head(in_dim: int, out_dim: int) -> nn.ModuleList:
            return nn.ModuleList(
                _hypernet(in_dim, out_dim, attention_layers, attention_embed) for _ in range(heads)
            )

        self.key_nets = per_head(s, 1)  # key_k(s)
        self.agent_nets = per_head(s, n)  # agent_k(s)
        self.action_nets = per_head(su, n)  # action_k(s, u)

    def importance(self, states: Tensor, joint_action: Tensor) -> Tensor:
        """lambda: states (M, S) and one-hot joint actions (M, N * A) -> (M, N), all > 0."""
        state_action = torch.cat([states, joint_action], dim=-1)  # (M, S + N * A)
        heads = [
            (key(states).abs() + POSITIVE)  # (M, 1)
            * torch.sigmoid(agent(states))  # (M, N)
            * torch.sigmoid(action(state_action))  # (M, N)
            for key, agent, action in zip(
                self.key_nets, self.agent_nets, self.action_nets, strict=True
            )
        ]
        return torch.stack(heads).sum(dim=0)  # (M, N)

    def forward(self, agent_qs: Tensor, states: Tensor, actions: Tensor, max_qs: Tensor) -> Tensor:
        """Mix the agents' Qs of the joint action ``actions`` (B, T, N, 1) long, given each
        agent's max Q ``max_qs`` (B, T, N) and the states (B, T, S), into (B, T, 1)."""
        lead = agent_qs.shape[:-1]  # (B, T)
        n = self.n_agents
        qs = agent_qs.reshape(-1, n)  # (M, N)
        maxes = max_qs.reshape(-1, n)  # (M, N)
        s = states.reshape(-1, self.state_dim)  # (M, S)
        joint = F.one_hot(actions.reshape(-1, n).long(), self.n_actions)  # (M, N, A)
        # TRANSFORMATION: each agent's value and advantage, scaled by w_i(s) > 0
        w = self.weight(s).abs() + POSITIVE  # (M, N)
        q_i = w * qs + self.bias(s)  # (M, N)
        adv = w * (qs - maxes)  # (M, N) A_i = Q_i - V_i <= 0
        # DUELING MIX: sum_i V_i + sum_i lambda_i A_i = sum_i Q_i + sum_i (lambda_i - 1) A_i
        lam = self.importance(s, joint.view(-1, n * self.n_actions).float())  # (M, N)
        q_tot = q_i.sum(dim=-1, keepdim=True) + ((lam - 1) * adv.detach()).sum(-1, keepdim=True)
        return q_tot.view(*lead, 1)  # (B, T, 1)
