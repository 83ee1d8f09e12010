"""A counter-based random generator with one independent stream per env copy.

Copy ``b`` of an env seeded with ``seed`` draws from a stream keyed by ``(seed, b)``,
and its counter advances only when that copy draws. So the randomness a copy sees does
not depend on the batch size or on what the other copies do: copy 0 of a batched env
replays a B = 1 env with the same seed. Numbers come from a 32-bit integer hash
(Wellons' ``lowbias32``) done in int64 tensors, which gives the same bits on every
device (CPU and CUDA agree), with no Python loop over copies.

Shapes: B env copies, K numbers per copy and draw.
"""

from __future__ import annotations

from typing import Any

import torch

_MASK32 = 0xFFFFFFFF
_LOW16 = 0xFFFF
_MUL_A = 0x7FEB352D
_MUL_B = 0x846CA68B
_GOLDEN = 0x9E3779B9
_SALT_SEED, _SALT_COPY, _SALT_COUNT = 0x243F6A88, 0x85A308D3, 0x13198A2E  # digits of pi
_FLOAT_BITS = 24  # uniform floats from the top 24 bits: exact in float32


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), without int64 overflow."""
    lo = x * (c & _LOW16)  # < 2**48
    hi = ((x * (c >> 16)) & _LOW16) << 16  # < 2**32
    return (lo + hi) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, _MUL_A)
    x = x ^ (x >> 15)
    x = _mul32(x, _MUL_B)
    return x ^ (x >> 16)


def _uniforms(key: torch.Tensor, counter: torch.Tensor, index_keys: torch.Tensor) -> torch.Tensor:
    """K uniforms in [0, 1) per copy at its counter, (B, K) float32: key, counter (B,),
    index_keys (K,)."""
    mixed = (counter * _GOLDEN + _SALT_COUNT) & _MASK32  # (B,)
    base = hash32(key ^ mixed)  # (B,)
    bits = hash32(base.unsqueeze(1) ^ index_keys)  # (B, K)
    return (bits >> (32 - _FLOAT_BITS)).float() * (2.0**-_FLOAT_BITS)  # (B, K)


class CopyRNG:
    """B independent uniform streams, keyed by (seed, copy index).

    ``compile``: the hashing fused by ``torch.compile`` (integer arithmetic, so the
    numbers are the same bits as eager).
    """

    def __init__(
        self, seed: int, batch_size: int, device: torch.device, compile: bool = False
    ) -> None:
        self.device = device
        self._draw = torch.compile(_uniforms, dynamic=False) if compile else _uniforms
        seed_lo = torch.tensor(seed & _MASK32, dtype=torch.long, device=device)
        seed_hi = torch.tensor((seed >> 32) & _MASK32, dtype=torch.long, device=device)
        copies = torch.arange(batch_size, dtype=torch.long, device=device)  # (B,)
        key = hash32(hash32(seed_lo ^ _SALT_SEED) ^ seed_hi)  # ()
        self.key = hash32(key ^ hash32(copies ^ _SALT_COPY))  # (B,)
        self.counter = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self._index_cache: dict[int, torch.Tensor] = {}

    def uniform(self, k: int, advance: torch.Tensor | None = None) -> torch.Tensor:
        """K uniforms in [0, 1) per copy, (B, K) float32; only ``advance`` copies step on.

        A copy that does not advance draws the same numbers again next time, so a
        frozen copy leaves its stream untouched.
        """
        draws = self._draw(self.key, self.counter, self._index_keys(k))  # (B, K)
        step = torch.ones_like(self.counter) if advance is None else advance.long()  # (B,)
        self.counter = self.counter + step  # (B,)
        return draws  # (B, K)

    def _index_keys(self, k: int) -> torch.Tensor:
        """Hashed element indices 0..K-1, (K,), cached per K."""
        if k not in self._index_cache:
            index = torch.arange(k, dtype=torch.long, device=self.device)  # (K,)
            self._index_cache[k] = hash32((index * _GOLDEN) & _MASK32)  # (K,)
        return self._index_cache[k]

    def state_dict(self) -> dict[str, Any]:
        return {"key": self.key.clone(), "counter": self.counter.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.key = state["key"].to(self.device, torch.long).clone()  # (B,)
        self.counter = state["counter"].to(self.device, torch.long).clone()  # (B,)
