"""What the controller needs from an agent network.

Shapes: M independent sequences, L steps, I input features, A outputs, H hidden.
"""

from __future__ import annotations

import torch
from torch import nn


class Agent(nn.Module):
    """A (possibly recurrent) network over sequences; the hidden state goes in and out."""

    recurrent = True
    """False for feed-forward agents: each step's output depends on that step's input alone."""

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The state before the first step, (M, H); feed-forward agents return (M, 0)."""
        raise NotImplementedError

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (M, L, I), hidden (M, H) -> outputs (M, L, A), hidden after the last step."""
        raise NotImplementedError

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step (acting): inputs (M, I), hidden (M, H) -> outputs (M, A), next hidden (M, H).

        The same math as `forward` on a length-1 sequence; agents override it with a
        path that skips the sequence dimension.
        """
        outputs, hidden = self(inputs.unsqueeze(1), hidden)  # (M, 1, A), (M, H)
        return outputs.squeeze(1), hidden
