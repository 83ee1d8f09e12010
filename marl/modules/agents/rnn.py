"""The recurrent agent network of PyMARL: Linear -> ReLU -> GRU -> Linear.

One network maps an agent's input sequence to Q-values (or logits) per step.
Shapes: M independent sequences (B * N when agents share parameters), L steps,
I input features, H hidden units, A actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from marl.modules.agents.base import Agent
from marl.validation import bounds


@dataclass
class RNNAgentConfig:
    """Schema for the recurrent agent (`algo.agent`)."""

    _target_: str = "marl.modules.agents.rnn.RNNAgent"
    _partial_: bool = True
    """Built as a factory: the controller makes one agent per network with its sizes."""
    hidden_dim: int = field(default=64, metadata=bounds(1))
    """Width of the input layer and of the GRU state."""


class RNNAgent(Agent):
    """Linear -> ReLU -> GRU -> Linear, unrolled over any number of steps."""

    def __init__(
        self, input_dim: int, n_actions: int, hidden_dim: int = RNNAgentConfig.hidden_dim
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, self.hidden_dim, device=device)  # (M, H)

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (M, L, I), hidden (M, H) -> outputs (M, L, A), last hidden (M, H)."""
        if inputs.shape[1] == 1:
            outputs, h = self.step(inputs[:, 0], hidden)  # (M, A), (M, H)
            return outputs.unsqueeze(1), h  # (M, 1, A), (M, H)
        x = torch.relu(self.fc1(inputs))  # (M, L, H)
        seq, h_last = self.rnn(x, hidden.unsqueeze(0))  # (M, L, H), (1, M, H)
        return self.fc2(seq), h_last.squeeze(0)  # (M, L, A), (M, H)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (M, I), hidden (M, H) -> outputs (M, A), next hidden (M, H).

        The GRU cell on the GRU's weights: about twice as fast on the CPU as nn.GRU
        on a length-1 sequence, with identical math.
        """
        x = torch.relu(F.linear(inputs, self.fc1.weight, self.fc1.bias))  # (M, H)
        w_ih, w_hh, b_ih, b_hh = self.rnn.all_weights[0]
        h = torch.gru_cell(x, hidden, w_ih, w_hh, b_ih, b_hh)  # (M, H)
        return F.linear(h, self.fc2.weight, self.fc2.bias), h  # (M, A), (M, H)
