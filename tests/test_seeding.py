"""Seeding: derived stream seeds, per-stream generators and the global RNGs."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from marl.seeding import derive_seed, generator, seed_everything

STREAMS = ["actions", "replay", "env", "learner", ""]


@pytest.fixture
def restore_global_rngs() -> Iterator[None]:
    """Leave python's, numpy's and torch's global generators as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


def test_derive_seed_is_deterministic() -> None:
    for seed in [0, 1, 12345]:
        for stream in STREAMS:
            assert derive_seed(seed, stream) == derive_seed(seed, stream)
    assert isinstance(derive_seed(1, "actions"), int)


def test_derive_seed_differs_across_streams() -> None:
    for seed in [0, 1, 2**31]:
        seeds = {derive_seed(seed, stream) for stream in STREAMS}
        assert len(seeds) == len(STREAMS)


def test_derive_seed_differs_across_seeds() -> None:
    for stream in STREAMS:
        seeds = {derive_seed(seed, stream) for seed in range(50)}
        assert len(seeds) == 50


def test_derive_seed_differs_for_seeds_beyond_32_bits() -> None:
    assert derive_seed(0, "actions") != derive_seed(2**32, "actions")


def test_derive_seed_fits_in_63_bits() -> None:
    values = [derive_seed(seed, stream) for seed in [0, 1, 7, 2**32 - 1] for stream in STREAMS]
    assert all(0 <= v < 2**63 for v in values)
    assert max(values) >= 2**32  # uses more than 32 bits
    for v in values:
        torch.Generator().manual_seed(v)  # a valid torch seed


def test_generator_draws_are_reproducible() -> None:
    a = torch.rand(8, generator=generator(3, "actions"))
    b = torch.rand(8, generator=generator(3, "actions"))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(8, generator=generator(3, "replay")))
    assert not torch.equal(a, torch.rand(8, generator=generator(4, "actions")))
    gen = generator(3, "actions")
    assert gen.device == torch.device("cpu")
    assert gen.initial_seed() == derive_seed(3, "actions")


def test_generators_do_not_depend_on_global_state(restore_global_rngs: None) -> None:
    torch.manual_seed(0)
    a = torch.randint(0, 1000, (8,), generator=generator(5, "env"))
    torch.manual_seed(99)
    torch.rand(100)
    b = torch.randint(0, 1000, (8,), generator=generator(5, "env"))
    assert torch.equal(a, b)


def draws() -> tuple[list[float], list[float], torch.Tensor]:
    return (
        [random.random() for _ in range(4)],
        np.random.rand(4).tolist(),
        torch.rand(4),
    )


def test_seed_everything_makes_global_draws_reproducible(restore_global_rngs: None) -> None:
    seed_everything(123)
    py_a, np_a, torch_a = draws()
    seed_everything(123)
    py_b, np_b, torch_b = draws()
    assert py_a == py_b
    assert np_a == np_b
    assert torch.equal(torch_a, torch_b)
    seed_everything(124)
    py_c, np_c, torch_c = draws()
    assert py_a != py_c
    assert np_a != np_c
    assert not torch.equal(torch_a, torch_c)


def test_seed_everything_makes_network_init_reproducible(restore_global_rngs: None) -> None:
    seed_everything(7)
    w_a = torch.nn.Linear(5, 3).weight.detach().clone()
    seed_everything(7)
    w_b = torch.nn.Linear(5, 3).weight.detach().clone()
    assert torch.equal(w_a, w_b)


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(-1, "actions")
