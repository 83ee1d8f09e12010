"""Schedules of a scalar over environment steps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """Goes linearly from ``start`` to ``finish`` over ``duration`` steps, then stays."""

    start: float
    finish: float
    duration: int

    def __call__(self, t: int) -> float:
        if self.duration <= 0:
            return self.finish
        frac = min(max(t, 0) / self.duration, 1.0)
        return self.start + frac * (self.finish - self.start)
