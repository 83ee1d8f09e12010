"""A plain container of B padded episodes of up to T steps, one tensor per field.

Shapes: B episodes, T time steps; each field ``name`` is stored as
(B, T, *scheme.entry_shape(name)) in its storage dtype, plus ``filled`` (B, T, 1) bool
marking the steps actually written.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import torch

from marl.data.scheme import FILLED, Scheme

Index = slice | torch.Tensor


def filled_lengths(filled: torch.Tensor) -> torch.Tensor:
    """1 + the last filled step of each episode (0: none), from filled (B, T, 1) bool."""
    if filled.shape[1] == 0:  # no steps at all
        return torch.zeros(filled.shape[0], dtype=torch.long, device=filled.device)
    steps = torch.arange(1, filled.shape[1] + 1, device=filled.device)  # (T,)
    return (filled[..., 0] * steps).amax(1)  # (B,)


class EpisodeBatch:
    """B padded episodes of up to T steps, stored as tensors (B, T, *entry_shape).

    ``data`` maps every scheme field plus ``"filled"`` (B, T, 1) bool to its tensor.
    """

    def __init__(
        self,
        scheme: Scheme,
        batch_size: int,
        max_seq_length: int,
        device: torch.device | str = "cpu",
        data: dict[str, torch.Tensor] | None = None,
    ):
        self.scheme = scheme
        self.batch_size = int(batch_size)
        self.max_seq_length = int(max_seq_length)
        self.device = torch.device(device)
        names = [*scheme.fields, FILLED]
        if data is None:
            self.data: dict[str, torch.Tensor] = {
                name: torch.zeros(
                    (self.batch_size, self.max_seq_length, *scheme.entry_shape(name)),
                    dtype=self._dtype(name),
                    device=self.device,
                )
                for name in names
            }
            return
        if set(data) != set(names):
            raise ValueError(
                f"EpisodeBatch data has keys {sorted(data)}, expected {sorted(names)}."
            )
        for name in names:
            expected = (self.batch_size, self.max_seq_length, *scheme.entry_shape(name))
            tensor = data[name]
            if tuple(tensor.shape) != expected or tensor.dtype != self._dtype(name):
                raise ValueError(
                    f"EpisodeBatch data {name!r} must be {expected} {self._dtype(name)}, got "
                    f"{tuple(tensor.shape)} {tensor.dtype}."
                )
        self.data = {name: data[name].to(self.device) for name in names}

    def _dtype(self, name: str) -> torch.dtype:
        return torch.bool if name == FILLED else self.scheme.fields[name].dtype

    def __getitem__(self, name: str) -> torch.Tensor:
        """The stored tensor (B, T, *entry_shape) of field ``name`` (or ``"filled"``)."""
        if name not in self.data:
            raise KeyError(f"Unknown field {name!r}; fields are {sorted(self.data)}.")
        return self.data[name]

    def float(self, name: str) -> torch.Tensor:
        """Field ``name`` as float32 (B, T, *entry_shape), quantised fields decoded."""
        return self.scheme.fields[name].decode(self[name])

    def __repr__(self) -> str:
        return (
            f"EpisodeBatch(batch_size={self.batch_size}, max_seq_length={self.max_seq_length}, "
            f"device={self.device}, fields={list(self.scheme.fields)})"
        )

    # ------------------------------------------------------------------ indexing helpers
    def _episodes(self, bs: Index) -> tuple[Index, int]:
        """Normalise an episode selector to (slice or long index on device, its length)."""
        if isinstance(bs, slice):
            return bs, len(range(self.batch_size)[bs])
        if not isinstance(bs, torch.Tensor):
            raise ValueError(f"bs must be a slice or a tensor, got {type(bs).__name__}.")
        if bs.dtype == torch.bool:
            if tuple(bs.shape) != (self.batch_size,):
                raise ValueError(
                    f"A bool bs mask must have shape ({self.batch_size},), got {tuple(bs.shape)}."
                )
            bs = bs.nonzero().squeeze(1)  # (B',)
        elif bs.dtype.is_floating_point or bs.dtype.is_complex or bs.dim() != 1:
            raise ValueError(
                f"bs must be a 1-D integer index or a bool mask, got {tuple(bs.shape)} {bs.dtype}."
            )
        return bs.to(device=self.device, dtype=torch.long), bs.numel()

    def _times(self, ts: int | slice) -> tuple[int | slice, int | None]:
        """Normalise a time selector to (int in range or slice, its length or None for int)."""
        if isinstance(ts, slice):
            return ts, len(range(self.max_seq_length)[ts])
        t = operator.index(ts)
        if not -self.max_seq_length <= t < self.max_seq_length:
            raise ValueError(f"Time step {t} is out of range for T={self.max_seq_length}.")
        return t % self.max_seq_length, None

    # ------------------------------------------------------------------ writing
    def update(
        self,
        values: Mapping[str, torch.Tensor],
        ts: int | slice,
        bs: slice | torch.Tensor = slice(None),
        mark_filled: bool = True,
    ) -> None:
        """Write ``values`` at episodes ``bs`` and time ``ts``.

        For an int ``ts`` each value is (len(bs), *entry_shape); for a slice ``ts`` it is
        (len(bs), len(ts), *entry_shape). A trailing size-1 dim may be left out when the
        entry shape ends in (1,). Values are cast to the storage dtype and moved to the
        batch device. Nothing is written if any value is invalid.
        """
        b_idx, n_b = self._episodes(bs)
        t_idx, n_t = self._times(ts)
        lead = (n_b,) if n_t is None else (n_b, n_t)
        staged: dict[str, torch.Tensor] = {}
        for name, value in values.items():
            if name == FILLED:
                raise ValueError(f"{FILLED!r} cannot be written directly; use mark_filled.")
            if name not in self.scheme.fields:
                raise ValueError(
                    f"Unknown field {name!r}; fields are {sorted(self.scheme.fields)}."
                )
            staged[name] = self._conform(name, torch.as_tensor(value), lead)
        for name, value in staged.items():
            self.data[name][b_idx, t_idx] = value
        if mark_filled:
            self.data[FILLED][b_idx, t_idx] = True

    def _conform(self, name: str, value: torch.Tensor, lead: tuple[int, ...]) -> torch.Tensor:
        """Check ``value`` against (*lead, *entry_shape) and cast it for storage."""
        entry = self.scheme.entry_shape(name)
        expected = (*lead, *entry)
        got = tuple(value.shape)
        if got != expected:
            if entry[-1] == 1 and got == expected[:-1]:
                value = value.unsqueeze(-1)
            else:
                raise ValueError(f"Field {name!r}: expected shape {expected}, got {got}.")
        return self.scheme.fields[name].encode(value.to(self.device))

    def update_steps(
        self,
        values: Mapping[str, torch.Tensor],
        ts: torch.Tensor,
        where: torch.Tensor | None = None,
        mark_filled: bool = True,
    ) -> None:
        """Write each episode's value at its own time step: ``ts`` (B,) long, each value
        (B, *entry_shape); only episodes where ``where`` (B,) bool is True (None: all)."""
        if tuple(ts.shape) != (self.batch_size,):
            raise ValueError(f"ts must have shape ({self.batch_size},), got {tuple(ts.shape)}.")
        if where is not None and (
            tuple(where.shape) != (self.batch_size,) or where.dtype != torch.bool
        ):
            raise ValueError(
                f"where must be a ({self.batch_size},) bool mask, got {tuple(where.shape)} "
                f"{where.dtype}."
            )
        for name in values:
            if name not in self.scheme.fields:
                raise ValueError(
                    f"Unknown field {name!r}; fields are {sorted(self.scheme.fields)} "
                    f"({FILLED!r} is marked, not written)."
                )
        rows = torch.arange(self.batch_size, device=self.device)  # (B,)
        ts = ts.to(self.device)  # (B,)
        staged = {
            name: self._conform(name, torch.as_tensor(value), (self.batch_size,))
            for name, value in values.items()
        }  # each (B, *entry_shape) in its storage dtype
        if where is not None:
            keep = where.to(self.device).nonzero().squeeze(1)  # (B',)
            rows, ts = rows[keep], ts[keep]
            staged = {name: value[keep] for name, value in staged.items()}
        for name, value in staged.items():
            self.data[name][rows, ts] = value
        if mark_filled:
            self.data[FILLED][rows, ts] = True

    def clear(self, idx: torch.Tensor) -> None:
        """Empty episodes ``idx`` ((B',) long): every field zero, nothing filled."""
        for tensor in self.data.values():
            tensor[idx.to(self.device)] = 0

    @staticmethod
    def cat(batches: list[EpisodeBatch]) -> EpisodeBatch:
        """The episodes of ``batches`` (one scheme, length and device) in one batch."""
        first = batches[0]
        data = {name: torch.cat([b.data[name] for b in batches]) for name in first.data}
        size = sum(b.batch_size for b in batches)
        return EpisodeBatch(first.scheme, size, first.max_seq_length, first.device, data)

    def mark_filled(self, ts: int | slice, mask: torch.Tensor) -> None:
        """Mark steps filled where ``mask`` is True: (B,) bool for an int ``ts``, (B, L)
        bool for a slice of L steps. Steps already filled stay filled."""
        t_idx, n_t = self._times(ts)
        expected = (self.batch_size,) if n_t is None else (self.batch_size, n_t)
        if tuple(mask.shape) != expected or mask.dtype != torch.bool:
            raise ValueError(
                f"mark_filled needs a {expected} bool mask, got {tuple(mask.shape)} {mask.dtype}."
            )
        filled = self.data[FILLED][:, t_idx, 0]  # (B,) or (B, L), a view
        filled |= mask.to(self.device)

    # ------------------------------------------------------------------ reading
    def max_t_filled(self) -> int:
        """1 + the last time index filled in any episode (0 if nothing is filled)."""
        lengths = filled_lengths(self.data[FILLED])  # (B,)
        return int(lengths.max()) if len(lengths) else 0

    def slice_time(self, t_end: int) -> EpisodeBatch:
        """The first ``t_end`` steps of every episode (tensors are views)."""
        if not 0 <= t_end <= self.max_seq_length:
            raise ValueError(f"t_end must be in [0, {self.max_seq_length}], got {t_end}.")
        data = {name: tensor[:, :t_end] for name, tensor in self.data.items()}  # (B, t_end, ...)
        return EpisodeBatch(self.scheme, self.batch_size, t_end, self.device, data)

    def index(self, idx: torch.Tensor) -> EpisodeBatch:
        """Episodes ``idx`` ((B',) long index or (B,) bool mask), copied into a new batch."""
        b_idx, n_b = self._episodes(idx)
        data = {name: tensor[b_idx] for name, tensor in self.data.items()}  # (B', T, ...)
        return EpisodeBatch(self.scheme, n_b, self.max_seq_length, self.device, data)

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """This batch on ``device`` (shares tensors when already there)."""
        device = torch.device(device)
        data = {name: tensor.to(device) for name, tensor in self.data.items()}
        return EpisodeBatch(self.scheme, self.batch_size, self.max_seq_length, device, data)

    def nbytes(self) -> int:
        """Bytes held by the stored tensors (including filled)."""
        return sum(t.numel() * t.element_size() for t in self.data.values())
