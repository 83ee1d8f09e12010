"""The recurrent agent network of PyMARL: Linear -> ReLU -> GRU -> Linear.

One network maps an agent's input sequence to Q-values (or logits) per step.
Shapes: M independent sequences (B * N when agents share parameters), L steps,
I input features, H hidden units, A actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from marl.modules.agents.base import Agent


@dataclass
class RNNAgentConfig:
    """Schema for the recurrent agent (`algo.agent`)."""

    _target_: str = "marl.modules.agents.rnn.RNNAgent"
    hidden_dim: int = 64
    """Width of the input layer and of the GRU state."""


class RNNAgent(Agent):
    """Linear -> ReLU -> GRU -> Linear, unrolled over any number of steps."""

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 64) -> None:
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
        x = torch.relu(self.fc1(inputs))  # (M, L, H)
        if x.shape[1] == 1:
            # One step (acting): the GRU cell on the same weights, about twice as fast
            # on the CPU as nn.GRU for a length-1 sequence; identical math.
            w_ih, w_hh, b_ih, b_hh = self.rnn.all_weights[0]
            h = torch.gru_cell(x[:, 0], hidden, w_ih, w_hh, b_ih, b_hh)  # (M, H)
            return self.fc2(h).unsqueeze(1), h  # (M, 1, A), (M, H)
        seq, h_last = self.rnn(x, hidden.unsqueeze(0))  # (M, L, H), (1, M, H)
        return self.fc2(seq), h_last.squeeze(0)  # (M, L, A), (M, H)
