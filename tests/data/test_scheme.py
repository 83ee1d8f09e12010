"""Tests for marl.data.scheme: Field/Scheme validation, sizes."""

from __future__ import annotations

import pytest
import torch

from marl.data import Field, Scheme, compact_index_dtype


def make_scheme(n_agents: int = 3, n_actions: int = 5) -> Scheme:
    return Scheme(
        fields={
            "state": Field((4,)),
            "obs": Field((6,), group="agents"),
            "actions": Field((1,), compact_index_dtype(n_actions), group="agents"),
            "reward": Field((1,)),
            "terminated": Field((1,), torch.bool),
        },
        groups={"agents": n_agents},
    )


def test_entry_shape() -> None:
    scheme = make_scheme()
    assert scheme.entry_shape("state") == (4,)
    assert scheme.entry_shape("obs") == (3, 6)
    assert scheme.entry_shape("actions") == (3, 1)
    assert scheme.entry_shape("filled") == (1,)
    with pytest.raises(KeyError, match="nope"):
        scheme.entry_shape("nope")


def test_nbytes_per_step() -> None:
    # state 4*4 + obs 3*6*4 + actions 3*1 + reward 4 + terminated 1 + filled 1
    assert make_scheme().nbytes_per_step() == 16 + 72 + 3 + 4 + 1 + 1


def test_compact_index_dtype() -> None:
    assert compact_index_dtype(14) == torch.uint8
    assert compact_index_dtype(255) == torch.uint8
    assert compact_index_dtype(256) == torch.int16
    assert compact_index_dtype(40000) == torch.int32
    with pytest.raises(ValueError):
        compact_index_dtype(0)


@pytest.mark.parametrize(
    ("fields", "groups", "match"),
    [
        ({"x": Field((1,), group="agents")}, {}, "group 'agents'"),
        ({"filled": Field((1,), torch.bool)}, {}, "reserved"),
        ({"x": Field((1,))}, {"agents": 0}, "positive"),
    ],
)
def test_scheme_validation(fields: dict, groups: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Scheme(fields=fields, groups=groups)


def test_field_shape_validation() -> None:
    assert Field(3).shape == (3,)
    with pytest.raises(ValueError, match="positive ints"):
        Field((0,))


def test_quantised_field_round_trip() -> None:
    field = Field((5,), torch.int8, scale=1 / 127)
    x = torch.rand(1000, 5) * 2 - 1  # [-1, 1)
    stored = field.encode(x)
    assert stored.dtype == torch.int8
    assert (field.decode(stored) - x).abs().max() <= 0.5 / 127 + 1e-7
    exact = torch.tensor([-1.0, 0.0, 1.0, 0.5 + 0.5 / 127, -2.0])
    assert field.decode(field.encode(exact)).tolist()[:3] == [-1.0, 0.0, 1.0]
    assert field.decode(field.encode(exact))[-1] == -1.0  # outside the range: clamped
    plain = Field((2,))
    assert plain.decode(plain.encode(x[:, :2])).equal(x[:, :2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_quantised_field_needs_an_integer_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match="integer dtype"):
        Field((1,), dtype, scale=0.1)
