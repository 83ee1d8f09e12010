"""A feed-forward agent network: Linear -> ReLU -> Linear -> ReLU -> Linear.

EPyMARL's agent with ``use_rnn: False`` (its default for QMIX, VDN and IQL): no
memory, so every step is independent and a whole sequence is one batched matmul.
Suits fully observed tasks such as LBF with full sight. Shapes: M sequences,
L steps, I input features, H hidden units, A actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from marl.modules.agents.base import Agent
from marl.validation import bounds


@dataclass
class MLPAgentConfig:
    """Schema for the feed-forward agent (`algo/agent=mlp`)."""

    _target_: str = "marl.modules.agents.mlp.MLPAgent"
    _partial_: bool = True
    """Built as a factory: the controller makes one agent per network with its sizes."""
    hidden_dim: int = field(default=64, metadata=bounds(1))
    """Width of both hidden layers."""


class MLPAgent(Agent):
    """Two hidden ReLU layers; the hidden state is empty, (M, 0)."""

    recurrent = False

    def __init__(
        self, input_dim: int, n_actions: int, hidden_dim: int = MLPAgentConfig.hidden_dim
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, n_actions)

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, 0, device=device)  # (M, 0)

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (M, L, I), hidden (M, 0) -> outputs (M, L, A), hidden (M, 0)."""
        return self.layers(inputs), hidden  # (M, L, A), (M, 0)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (M, I), hidden (M, 0) -> outputs (M, A), hidden (M, 0)."""
        return self.layers(inputs), hidden  # (M, A), (M, 0)

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """(..., I) -> (..., A). F.linear on the layers' weights: the same math as calling
        the modules, without three module calls (as costly as the matmuls when acting)."""
        x = torch.relu(F.linear(x, self.fc1.weight, self.fc1.bias))  # (..., H)
        x = torch.relu(F.linear(x, self.fc2.weight, self.fc2.bias))  # (..., H)
        return F.linear(x, self.fc3.weight, self.fc3.bias)  # (..., A)
