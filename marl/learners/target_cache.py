"""Target-network Q-values of stored episodes, reused until the target network changes.

With hard target updates the target network is fixed for ``target_update_interval``
episodes, and an episode's target Q-values depend on its stored data and those
weights alone. So they are computed once per stored episode and period instead of
at every update that samples the episode: exact, at the memory of one (T, N, A)
float tensor per buffer slot. A slot's values are dropped when the buffer
overwrites it (`forget`) and all of them when the target network changes (`clear`).

Shapes: C buffer slots, T stored steps, B sampled episodes, N agents, A actions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class TargetCache:
    """Per buffer slot: the target Q-values of the episode's first ``steps`` steps."""

    def __init__(
        self,
        capacity: int,
        max_seq_length: int,
        n_agents: int,
        n_actions: int,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (capacity, max_seq_length, n_agents, n_actions)
        self.values = torch.zeros(shape, device=device)  # (C, T, N, A)
        self.steps = torch.zeros(capacity, dtype=torch.long)  # (C,) leading steps held, 0: none

    def clear(self) -> None:
        """Drop every slot's values (the target network changed)."""
        self.steps.zero_()

    def forget(self, slots: torch.Tensor) -> None:
        """Drop the values of ``slots`` (B,) (the buffer wrote new episodes there)."""
        self.steps[slots.cpu()] = 0

    def get(
        self, slots: torch.Tensor, steps: int, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Target Q-values (B, steps, N, A) of the distinct episodes in ``slots`` (B,).

        ``compute(rows)`` returns (k, steps, N, A) for the rows (k,) of the sampled
        batch whose slots do not hold ``steps`` steps yet; only those are computed.
        """
        slots_cpu = slots.cpu()
        missing = (self.steps[slots_cpu] < steps).nonzero().squeeze(1)  # (k,) batch rows
        if len(missing):
            device = self.values.device
            fresh = compute(missing.to(device))  # (k, steps, N, A), on the learner device
            self.values[slots_cpu[missing].to(device), :steps] = fresh.to(device)
            self.steps[slots_cpu[missing]] = steps
        return self.values[slots.to(self.values.device), :steps]  # (B, steps, N, A)
