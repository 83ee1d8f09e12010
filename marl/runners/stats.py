"""Per-episode results accumulated between two logs, summarised as namespaced metrics
(beside the runner's `RolloutStats`, which it sums, so `logging/` imports no runner)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from marl.runners.episode import RolloutStats


class EpisodeStats:
    """Accumulates returns, lengths and final env info of episodes of one phase."""

    def __init__(self) -> None:
        self.values: dict[str, list[torch.Tensor]] = defaultdict(list)

    def add(self, stats: RolloutStats) -> None:
        self.values["return"].append(stats.returns.float())  # (B,)
        self.values["ep_length"].append(stats.lengths.float())  # (B,)
        for key, value in stats.final_info.items():
            self.values[key].append(value.float())  # (B,)

    def __len__(self) -> int:
        return sum(v.numel() for v in self.values.get("return", []))

    def summary(self, prefix: str) -> dict[str, float]:
        """``{prefix}/return_mean``, ``_std``, ``_min``, ``_max``, ``ep_length_mean``,
        ``<info>_mean``; then reset."""
        out: dict[str, float] = {}
        for key, chunks in self.values.items():
            out[f"{prefix}/{key}_mean"] = torch.cat(chunks).mean().item()
        returns = torch.cat(self.values["return"])  # (episodes,)
        out[f"{prefix}/return_std"] = returns.std(unbiased=False).item()
        out[f"{prefix}/return_min"] = returns.min().item()
        out[f"{prefix}/return_max"] = returns.max().item()
        self.values.clear()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {key: torch.cat(chunks).cpu() for key, chunks in self.values.items() if chunks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values.clear()
        for key, values in state.items():
            self.values[key].append(values)
