"""Masking helpers for padded episode batches and unavailable actions.

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``A`` actions.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["masked_fill_unavailable", "masked_mean"]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the entries selected by ``mask``.

    Computes ``sum(x * mask) / max(sum(mask broadcast to x.shape), 1)``. Positions where the
    mask is zero contribute exactly zero even if ``x`` is ``NaN``/``inf`` there.

    Args:
        x: Tensor of any shape, e.g. ``(B, T, N)``.
        mask: Bool or float mask broadcastable to ``x``, e.g. ``(B, T, 1)``.

    Returns:
        Scalar tensor; ``0`` when the mask is all zero.
    """
    m = mask.to(x.dtype).expand_as(x)  # same shape as x
    weighted = torch.where(m != 0, x * m, 0.0)  # same shape as x
    return weighted.sum() / m.sum().clamp(min=1.0)  # ()


def masked_fill_unavailable(q: Tensor, avail: Tensor, fill: float = float("-inf")) -> Tensor:
    """Replace the values of unavailable actions with ``fill`` (out of place).

    Args:
        q: ``(..., A)`` action values.
        avail: ``(..., A)`` bool (or 0/1) availability mask.
        fill: Value written where ``avail`` is false.

    Returns:
        ``(..., A)`` tensor equal to ``q`` where available and ``fill`` elsewhere.
    """
    mask = avail if avail.dtype == torch.bool else avail != 0
    return torch.where(mask, q, fill)  # (..., A)
