"""Pure tensor operations: return targets, advantages and masking."""

from __future__ import annotations

from marl.ops.masked import masked_fill_unavailable, masked_mean
from marl.ops.returns import gae, nstep_targets, one_step_targets, td_lambda_targets

__all__ = [
    "gae",
    "masked_fill_unavailable",
    "masked_mean",
    "nstep_targets",
    "one_step_targets",
    "td_lambda_targets",
]
