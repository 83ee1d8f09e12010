"""Ring buffer of whole episodes, stored in the scheme's compact dtypes.

Updates sample whole episodes (PyMARL) or single transitions (``sample=transitions``:
step t of a stored episode with step t + 1 beside it, drawn uniformly over every
stored step, as BenchMARL/TorchRL's off-policy learners draw them).

Shapes: C capacity (episodes), T max_seq_length, B episodes per insert/sample, n
transitions per sample.
"""

from __future__ import annotations

from typing import Any

import torch

from marl.data.episode_batch import EpisodeBatch, filled_lengths
from marl.data.scheme import FILLED, Scheme


class EpisodeReplayBuffer:
    """Ring buffer of whole episodes.

    Holds its own storage, an :class:`EpisodeBatch` of ``capacity`` episodes (by
    composition), whose slots ``0 .. len(self)-1`` are occupied. New episodes overwrite
    the oldest once full.
    """

    def __init__(
        self,
        scheme: Scheme,
        capacity: int,
        max_seq_length: int,
        device: torch.device | str = "cpu",
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}.")
        self.scheme = scheme
        self.capacity = int(capacity)
        self.max_seq_length = int(max_seq_length)
        self.device = torch.device(device)
        self._storage = EpisodeBatch(scheme, self.capacity, self.max_seq_length, self.device)
        self._pos = 0  # slot the next episode goes to
        self._size = 0  # episodes stored
        # (C,) on the CPU: 1 + each slot's last filled step, so that trimming a sample to
        # its longest episode reads nothing back from the device
        self._lengths = torch.zeros(self.capacity, dtype=torch.long)

    def __len__(self) -> int:
        """Number of episodes stored."""
        return self._size

    def __repr__(self) -> str:
        return (
            f"EpisodeReplayBuffer(size={self._size}, capacity={self.capacity}, "
            f"max_seq_length={self.max_seq_length}, device={self.device})"
        )

    def _check_layout(self, batch: EpisodeBatch) -> None:
        """Raise ValueError unless ``batch`` stores exactly the fields this buffer stores."""
        if batch.max_seq_length != self.max_seq_length:
            raise ValueError(
                f"Batch max_seq_length {batch.max_seq_length} does not match the buffer's "
                f"{self.max_seq_length}."
            )
        if set(batch.scheme.fields) != set(self.scheme.fields):
            raise ValueError(
                f"Batch fields {sorted(batch.scheme.fields)} do not match the buffer's "
                f"{sorted(self.scheme.fields)}."
            )
        for name, field in self.scheme.fields.items():
            mine = (self.scheme.entry_shape(name), field.dtype)
            theirs = (batch.scheme.entry_shape(name), batch.scheme.fields[name].dtype)
            if mine != theirs:
                raise ValueError(
                    f"Batch field {name!r} is {theirs[0]} {theirs[1]}, the buffer stores "
                    f"{mine[0]} {mine[1]}."
                )

    def insert(self, batch: EpisodeBatch) -> torch.Tensor:
        """Append ``batch``'s episodes in ring order; only the last ``capacity`` are kept
        when the batch is larger than the buffer. Returns the slots written (kept,), on
        the CPU."""
        self._check_layout(batch)
        n = batch.batch_size
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        kept = min(n, self.capacity)
        slots = (self._pos + torch.arange(n - kept, n)) % self.capacity  # (kept,) distinct
        index = slots.to(self.device)  # (kept,)
        for name, tensor in batch.data.items():
            self._storage.data[name][index] = tensor[n - kept :].to(self.device)  # (kept, T, ...)
        self._lengths[slots] = filled_lengths(batch.data[FILLED][n - kept :]).cpu()
        self._pos = (self._pos + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        return slots

    def can_sample(self, n: int) -> bool:
        """Whether ``n`` distinct episodes are stored."""
        return self._size >= n

    def sample_slots(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The slots (n,) of ``n`` distinct stored episodes drawn uniformly, on the CPU
        (``generator`` lives on the CPU); `episodes` reads them."""
        if n < 1 or n > self._size:
            raise ValueError(f"Cannot sample {n} episodes from a buffer holding {self._size}.")
        return torch.randperm(self._size, generator=generator)[:n]  # (n,)

    def steps_stored(self) -> torch.Tensor:
        """Transitions each occupied slot holds (its played steps), (size,) long on the CPU."""
        return (self._lengths[: self._size] - 1).clamp(min=0)  # (size,)

    def can_sample_transitions(self, n: int) -> bool:
        """Whether at least ``n`` transitions are stored."""
        return int(self.steps_stored().sum()) >= n

    def sample_transitions(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` transitions drawn uniformly, with replacement, from every stored played
        step: their slots and steps, each (n,) long on the CPU; `transitions` reads them."""
        counts = self.steps_stored()  # (size,)
        ends = counts.cumsum(0)  # (size,): transitions in slots 0 .. i
        total = int(ends[-1]) if len(ends) else 0
        if n < 1 or total < 1:
            raise ValueError(f"Cannot sample {n} transitions from a buffer holding {total}.")
        flat = torch.randint(total, (n,), generator=generator)  # (n,) in [0, total)
        slots = torch.searchsorted(ends, flat, right=True)  # (n,): the slot holding each
        steps = flat - (ends[slots] - counts[slots])  # (n,): its step within the episode
        return slots, steps

    def transitions(self, slots: torch.Tensor, steps: torch.Tensor) -> EpisodeBatch:
        """Transitions (slots[i], steps[i]) as a batch of n two-step episodes: step 0 is
        step t of the stored episode, step 1 its step t + 1 (the next obs, state, masks)."""
        window = steps.unsqueeze(1) + torch.arange(2)  # (n, 2)
        rows = slots.unsqueeze(1).to(self.device)  # (n, 1)
        cols = window.to(self.device)  # (n, 2)
        data = {name: tensor[rows, cols] for name, tensor in self._storage.data.items()}
        return EpisodeBatch(self.scheme, len(slots), 2, self.device, data)  # (n, 2, ...)

    def longest(self, slots: torch.Tensor) -> int:
        """1 + the last filled step of the longest episode in ``slots`` (n,), without
        reading the device (what ``max_t_filled`` of their batch returns)."""
        return int(self._lengths[slots.cpu()].max()) if len(slots) else 0

    def episodes(self, slots: torch.Tensor, t_end: int | None = None) -> EpisodeBatch:
        """The episodes stored in ``slots`` (n,), a copy of their first ``t_end`` steps
        (None: all ``max_seq_length``)."""
        stored = self._storage if t_end is None else self._storage.slice_time(t_end)
        return stored.index(slots.to(self.device))

    def state_dict(self) -> dict[str, Any]:
        """The stored episodes (CPU tensors, copies) plus the ring position and size.

        Contains only tensors, ints and strings, so ``torch.load(weights_only=True)`` reads it.
        """
        return {
            "data": {
                name: tensor[: self._size].to("cpu", copy=True)  # (size, T, ...)
                for name, tensor in self._storage.data.items()
            },
            "pos": self._pos,
            "size": self._size,
            "capacity": self.capacity,
            "max_seq_length": self.max_seq_length,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what :meth:`state_dict` saved; ValueError on any mismatch."""
        missing = {"data", "pos", "size", "capacity", "max_seq_length"} - set(state)
        if missing:
            raise ValueError(f"Replay buffer state is missing keys {sorted(missing)}.")
        if (state["capacity"], state["max_seq_length"]) != (self.capacity, self.max_seq_length):
            raise ValueError(
                f"Replay buffer state has capacity {state['capacity']} and max_seq_length "
                f"{state['max_seq_length']}, this buffer {self.capacity} and "
                f"{self.max_seq_length}."
            )
        size, pos = int(state["size"]), int(state["pos"])
        if not 0 <= size <= self.capacity or not 0 <= pos < self.capacity:
            raise ValueError(f"Replay buffer state has invalid size {size} or pos {pos}.")
        if size < self.capacity and pos != size:
            raise ValueError(f"Replay buffer state has pos {pos} != size {size} while not full.")
        data = state["data"]
        names = [*self.scheme.fields, FILLED]
        if set(data) != set(names):
            raise ValueError(
                f"Replay buffer state has fields {sorted(data)}, expected {sorted(names)}."
            )
        for name in names:
            stored = self._storage.data[name]
            expected = (size, *stored.shape[1:])
            got = data[name]
            if tuple(got.shape) != expected or got.dtype != stored.dtype:
                raise ValueError(
                    f"Replay buffer state field {name!r} must be {expected} {stored.dtype}, got "
                    f"{tuple(got.shape)} {got.dtype}."
                )
        for name in names:
            self._storage.data[name].zero_()
            self._storage.data[name][:size] = data[name].to(self.device)
        self._lengths.zero_()
        self._lengths[:size] = filled_lengths(data[FILLED]).cpu()
        self._size, self._pos = size, pos

    def nbytes(self) -> int:
        """Bytes of the buffer's storage tensors."""
        return self._storage.nbytes()
