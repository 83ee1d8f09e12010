"""Declarative description of what an episode stores: fields, shapes, storage dtypes.

A :class:`Scheme` maps field names to :class:`Field` s. Each field has a per-entry
``shape``, an optional ``group`` (e.g. ``"agents"``, which prepends an ``(N,)`` dim)
and a compact *storage* dtype.

Shapes: N agents, A actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FILLED = "filled"  # reserved name of the (B, T, 1) bool mask every batch carries


def compact_index_dtype(n: int) -> torch.dtype:
    """Smallest integer dtype able to store the indices ``0 .. n-1`` (uint8 up to n=255)."""
    if n < 1:
        raise ValueError(f"compact_index_dtype needs n >= 1, got {n}.")
    if n <= 255:
        return torch.uint8
    if n <= torch.iinfo(torch.int16).max:
        return torch.int16
    if n <= torch.iinfo(torch.int32).max:
        return torch.int32
    return torch.int64


@dataclass(frozen=True)
class Field:
    """One stored quantity.

    ``shape`` is the per-entry shape after the group dim; ``dtype`` the storage dtype
    (keep it compact: bool masks, uint8 action indices); ``group`` names a group size
    in the scheme that is prepended as a dim.
    ``scale`` quantises a float field into an integer ``dtype``: it stores
    ``round(value / scale)`` clamped to [-max, max] of the dtype, and `decode` gives back
    ``stored * scale`` (an error of at most scale / 2 inside the range).
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    group: str | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        shape = (self.shape,) if isinstance(self.shape, int) else tuple(self.shape)
        if any(not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(f"Field shape must be a tuple of positive ints, got {self.shape!r}.")
        object.__setattr__(self, "shape", shape)
        if not isinstance(self.dtype, torch.dtype):
            raise ValueError(f"Field dtype must be a torch.dtype, got {self.dtype!r}.")
        if self.scale is not None and (
            self.dtype.is_floating_point or self.dtype == torch.bool or not self.scale > 0
        ):
            raise ValueError(
                f"A quantised Field needs an integer dtype and a positive scale, got "
                f"{self.dtype} and {self.scale!r}."
            )

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` in the storage dtype (quantised when the field has a scale)."""
        if self.scale is None:
            return value.to(self.dtype)
        top = torch.iinfo(self.dtype).max
        bottom = -top if torch.iinfo(self.dtype).min < 0 else 0  # symmetric codes
        q = torch.round(value.float() / self.scale).clamp_(bottom, top)
        return q.to(self.dtype)

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        """Stored values as float32 (undoing the quantisation of a scaled field)."""
        out = stored.float()
        return out if self.scale is None else out.mul_(self.scale)


@dataclass(frozen=True)
class Scheme:
    """Fields of an episode plus the sizes of the groups they refer to."""

    fields: dict[str, Field]
    groups: dict[str, int]

    def __post_init__(self) -> None:
        for group, size in self.groups.items():
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"Group {group!r} must have a positive int size, got {size!r}.")
        for name, field in self.fields.items():
            if name == FILLED:
                raise ValueError(f"Field name {FILLED!r} is reserved for the filled mask.")
            if field.group is not None and field.group not in self.groups:
                raise ValueError(
                    f"Field {name!r} refers to group {field.group!r}, which is not in groups "
                    f"{sorted(self.groups)}."
                )

    def entry_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one (episode, time step) entry of ``name``: (*group dims, *shape)."""
        if name == FILLED:
            return (1,)
        if name not in self.fields:
            raise KeyError(f"Unknown field {name!r}; fields are {sorted(self.fields)}.")
        field = self.fields[name]
        group = () if field.group is None else (self.groups[field.group],)
        return (*group, *field.shape)

    def nbytes_per_step(self) -> int:
        """Storage bytes of one time step of one episode, including the filled mask."""
        total = torch.empty((), dtype=torch.bool).element_size()  # filled: (1,) bool
        for name, field in self.fields.items():
            itemsize = torch.empty((), dtype=field.dtype).element_size()
            total += math.prod(self.entry_shape(name)) * itemsize
        return total
