"""Running mean and variance of a stream of values (for reward standardisation).

Merges each batch's moments into the totals with Chan et al.'s parallel update, so
the result equals the mean and population variance of everything seen so far.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RunningMeanStd:
    """Mean and variance of all values passed to ``update``, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)

    def update(self, values: Tensor) -> None:
        """Fold in a 1-D tensor of values (any float dtype); empty tensors are ignored."""
        n = values.numel()
        if n == 0:
            return
        x = values.detach().to(device="cpu", dtype=torch.float64)
        batch_mean, batch_var = x.mean(), x.var(unbiased=False)
        if self.count == 0:
            self.mean, self.var, self.count = batch_mean, batch_var, n
            return
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def standardise(self, x: Tensor, min_var: float = 1e-12) -> Tensor:
        """(x - mean) / std in x's dtype and device; std counts as 1 while the values
        seen are all equal (early on, a stream of zero rewards)."""
        std = self.var.sqrt() if float(self.var) > min_var else torch.ones((), dtype=torch.float64)
        return (x - self.mean.to(x.device, x.dtype)) / std.to(x.device, x.dtype)

    def state_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "mean": float(self.mean), "var": float(self.var)}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.count = int(state["count"])
        self.mean = torch.tensor(float(state["mean"]), dtype=torch.float64)
        self.var = torch.tensor(float(state["var"]), dtype=torch.float64)
