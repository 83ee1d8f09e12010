"""One seed sets every random number generator of a run.

Global RNGs (python, numpy, torch) are seeded once at start for library code
that reads them (network initialisation); every component that draws random
numbers during training gets its own ``torch.Generator`` from ``generator``,
derived from the run seed and a stream name, so that components never share a
stream and adding draws in one never shifts another.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named stream, independent across streams."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    entropy = [seed, zlib.crc32(stream.encode())]
    words = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(words.view(np.uint64)[0]) >> 1


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` for the named stream."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, stream))
    return gen


def global_rng_state() -> dict[str, Any]:
    """python, numpy and torch global RNG states as tensors and plain data (safe to save)."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``global_rng_state`` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
