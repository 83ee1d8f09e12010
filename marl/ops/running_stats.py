"""Running mean and variance of a stream of values (for reward standardisation).

Merges each batch's moments into the totals with Chan et al.'s parallel update, so
the result equals the mean and population variance of everything seen so far.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RunningMeanStd:
    """Mean and variance of all values passed to ``update``, in float64 on the values'
    device: updating and standardising never wait for the device."""

    def __init__(self) -> None:
        self._count = torch.zeros((), dtype=torch.float64)
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)

    @property
    def count(self) -> int:
        """How many values were folded in (reads the count back from the device)."""
        return int(self._count)

    def update(self, values: Tensor, mask: Tensor | None = None) -> None:
        """Fold in ``values`` (any shape, any float dtype) where ``mask`` (bool, the same
        shape; None: everywhere) is set; no value, no change."""
        x = values.detach().to(torch.float64)
        weight = torch.ones_like(x) if mask is None else mask.to(torch.float64)
        self._count, self.mean, self.var = (
            t.to(x.device) for t in (self._count, self.mean, self.var)
        )
        n = weight.sum()
        batch_mean = (x * weight).sum() / n.clamp(min=1)
        batch_var = ((x - batch_mean).pow(2) * weight).sum() / n.clamp(min=1)
        total = self._count + n
        delta = batch_mean - self.mean
        m2 = (
            self.var * self._count
            + batch_var * n
            + delta.pow(2) * self._count * n / total.clamp(min=1)
        )
        self.mean = self.mean + delta * n / total.clamp(min=1)
        self.var = torch.where(total > 0, m2 / total.clamp(min=1), self.var)
        self._count = total

    def standardise(self, x: Tensor, min_var: float = 1e-12) -> Tensor:
        """(x - mean) / std in x's dtype and device; std counts as 1 while the values
        seen are all equal (early on, a stream of zero rewards)."""
        return (x - self.mean.to(x.device, x.dtype)) / self._std(min_var).to(x.device, x.dtype)

    def denormalise(self, x: Tensor, min_var: float = 1e-12) -> Tensor:
        """The inverse of `standardise`: x * std + mean, in x's dtype and device."""
        std = self._std(min_var).to(x.device, x.dtype)
        return x * std + self.mean.to(x.device, x.dtype)

    def _std(self, min_var: float) -> Tensor:
        return torch.where(self.var > min_var, self.var.sqrt(), torch.ones_like(self.var))

    def state_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "mean": float(self.mean), "var": float(self.var)}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self._count = torch.tensor(float(state["count"]), dtype=torch.float64)
        self.mean = torch.tensor(float(state["mean"]), dtype=torch.float64)
        self.var = torch.tensor(float(state["var"]), dtype=torch.float64)
