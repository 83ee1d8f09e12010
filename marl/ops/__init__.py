"""Pure tensor operations: return targets and masking."""

from __future__ import annotations

from marl.ops.masked import masked_fill_unavailable, masked_mean
from marl.ops.returns import one_step_targets, td_lambda_targets

__all__ = [
    "masked_fill_unavailable",
    "masked_mean",
    "one_step_targets",
    "td_lambda_targets",
]
