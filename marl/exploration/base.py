"""The action-selector protocol: how a runner turns agent outputs into actions.

Shapes: B env copies, N agents, A actions.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ActionSelector(Protocol):
    def select(
        self,
        out: torch.Tensor,
        avail: torch.Tensor,
        t_env: int,
        test_mode: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """out (B, N, A) agent outputs, avail (B, N, A) bool -> actions (B, N) long,
        drawn from ``generator``; the selector's best guess in test mode."""
        ...

    def stats(self, t_env: int) -> dict[str, float]:
        """What to log about exploration at ``t_env`` (``train/...``); may be empty."""
        ...
