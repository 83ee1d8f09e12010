"""Tests for marl.data.episode_batch.EpisodeBatch."""

from __future__ import annotations

import pytest
import torch

from marl.data import EpisodeBatch, Field, Scheme, compact_index_dtype

B, T, N, A = 4, 6, 3, 5


def make_scheme() -> Scheme:
    return Scheme(
        fields={
            "state": Field((4,)),
            "obs": Field((2,), group="agents"),
            "avail_actions": Field((A,), torch.bool, group="agents"),
            "actions": Field((1,), compact_index_dtype(A), group="agents"),
            "reward": Field((1,)),
            "terminated": Field((1,), torch.bool),
        },
        groups={"agents": N},
    )


def test_zeros_and_dtypes() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    assert batch["obs"].shape == (B, T, N, 2)
    assert batch["filled"].shape == (B, T, 1) and batch["filled"].dtype == torch.bool
    assert batch["actions"].dtype == torch.uint8
    assert batch["avail_actions"].dtype == torch.bool
    assert batch.max_t_filled() == 0
    assert batch.nbytes() == B * T * make_scheme().nbytes_per_step()
    with pytest.raises(KeyError):
        batch["nope"]


def test_update_casts_at_write_time() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    actions = torch.tensor([[0, 1, 4], [2, 2, 3], [4, 0, 0], [1, 3, 2]])  # (B, N) long
    avail = torch.ones(B, N, A)  # float in, bool stored
    batch.update({"actions": actions, "avail_actions": avail, "reward": torch.arange(B)}, ts=2)
    assert batch["actions"].dtype == torch.uint8
    assert torch.equal(batch["actions"][:, 2, :, 0], actions.to(torch.uint8))
    assert batch["avail_actions"][:, 2].all() and not batch["avail_actions"][:, 1].any()
    assert batch["actions"][:, :2].sum() == 0 and batch["actions"][:, 3:].sum() == 0
    assert torch.equal(batch["reward"][:, 2, 0], torch.arange(B, dtype=torch.float32))
    assert batch["filled"][:, 2].all() and batch["filled"].sum() == B


def test_update_time_slice() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    state = torch.randn(2, 3, 4)  # (len(bs), len(ts), 4)
    batch.update({"state": state, "reward": torch.ones(2, 3)}, ts=slice(1, 4), bs=slice(0, 2))
    assert torch.equal(batch["state"][:2, 1:4], state)
    assert batch["reward"][:2, 1:4].eq(1).all() and batch["reward"].sum() == 6
    assert batch["filled"][:2, 1:4].all() and batch["filled"].sum() == 6


def test_shape_errors_name_the_field() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    with pytest.raises(ValueError, match=r"'obs'.*\(4, 3, 2\).*\(4, 2, 3\)"):
        batch.update({"obs": torch.zeros(B, 2, N)}, ts=0)
    with pytest.raises(ValueError, match="'state'"):
        batch.update({"state": torch.zeros(B, 4)}, ts=slice(0, 2))
    # a missing trailing dim is only accepted when the entry shape ends in (1,)
    with pytest.raises(ValueError, match="'state'"):
        batch.update({"state": torch.zeros(B)}, ts=0)
    with pytest.raises(ValueError, match="'nope'"):
        batch.update({"nope": torch.zeros(B)}, ts=0)
    with pytest.raises(ValueError, match="filled"):
        batch.update({"filled": torch.ones(B, 1)}, ts=0)
    # nothing was written by the failed updates
    assert batch.max_t_filled() == 0 and batch["state"].abs().sum() == 0


def test_filled_and_max_t_filled_with_different_lengths() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    lengths = torch.tensor([2, 5, 1, 3])
    for t in range(T):
        running = lengths > t  # (B,) bool
        if not running.any():
            break
        k = int(running.sum())
        batch.update({"reward": torch.full((k,), float(t))}, ts=t, bs=running)
    assert torch.equal(batch["filled"].sum(dim=(1, 2)), lengths)
    assert batch.max_t_filled() == 5
    assert batch["reward"][1, 4, 0] == 4 and batch["reward"][0, 4, 0] == 0
    assert batch.slice_time(3).max_t_filled() == 3


def test_update_with_bool_mask_and_index_tensor() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    mask = torch.tensor([True, False, True, False])
    batch.update({"state": torch.ones(2, 4)}, ts=1, bs=mask, mark_filled=False)
    assert batch["state"][:, 1].sum(-1).tolist() == [4.0, 0.0, 4.0, 0.0]
    assert batch.max_t_filled() == 0
    batch.update({"state": 2 * torch.ones(2, 4)}, ts=3, bs=torch.tensor([3, 1]))
    assert batch["state"][:, 3].sum(-1).tolist() == [0.0, 8.0, 0.0, 8.0]
    assert batch.max_t_filled() == 4
    with pytest.raises(ValueError, match="'state'"):
        batch.update({"state": torch.ones(3, 4)}, ts=1, bs=mask)
    with pytest.raises(ValueError, match="mask"):
        batch.update({"state": torch.ones(2, 4)}, ts=1, bs=torch.tensor([True, False]))


def test_slice_time_index_to() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    state = torch.randn(B, T, 4)
    batch.update({"state": state}, ts=slice(None))
    short = batch.slice_time(4)
    assert short.max_seq_length == 4 and short["state"].shape == (B, 4, 4)
    assert short["obs"].shape == (B, 4, N, 2)
    assert torch.equal(short["state"], state[:, :4])
    sub = batch.index(torch.tensor([2, 0]))
    assert sub.batch_size == 2 and torch.equal(sub["state"], state[[2, 0]])
    assert sub["filled"].all() and sub["actions"].dtype == torch.uint8
    masked = batch.index(torch.tensor([False, True, True, False]))
    assert torch.equal(masked["state"], state[1:3])
    moved = batch.to("cpu")
    assert moved.device == torch.device("cpu") and torch.equal(moved["state"], state)
    assert moved.nbytes() == batch.nbytes()
    with pytest.raises(ValueError):
        batch.slice_time(T + 1)


def test_constructor_checks_data() -> None:
    scheme = make_scheme()
    data = dict(EpisodeBatch(scheme, B, T).data)
    data["state"] = torch.zeros(B, T, 5)
    with pytest.raises(ValueError, match="'state'"):
        EpisodeBatch(scheme, B, T, data=data)


# ---------------------------------------------------------------- per-episode steps (autoreset)
STEPS = torch.tensor([0, 3, 5, 2])  # (B,) each episode's own time step


def written_at(batch: EpisodeBatch, name: str) -> torch.Tensor:
    """Which (episode, step) entries of ``name`` are nonzero, (B, T) bool."""
    stored = batch[name]  # (B, T, ...)
    return stored.reshape(B, T, -1).ne(0).any(-1)  # (B, T)


def at_steps(rows: list[int]) -> torch.Tensor:
    """(B, T) bool: True at (b, STEPS[b]) for b in ``rows``."""
    out = torch.zeros(B, T, dtype=torch.bool)
    out[rows, STEPS[rows]] = True
    return out


def test_update_steps_writes_each_episode_at_its_own_step() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    state = torch.arange(1.0, 1 + B * 4).view(B, 4)  # (B, 4), no zero
    actions = torch.tensor([[1, 2, 3], [4, 1, 2], [3, 4, 1], [2, 3, 4]])  # (B, N) long
    batch.update_steps({"state": state, "actions": actions, "reward": state[:, 0]}, STEPS)
    rows = torch.arange(B)  # (B,)
    assert torch.equal(batch["state"][rows, STEPS], state)
    assert torch.equal(batch["actions"][rows, STEPS, :, 0], actions.to(torch.uint8))
    assert torch.equal(batch["reward"][rows, STEPS, 0], state[:, 0])  # trailing (1,) added
    everyone = at_steps([0, 1, 2, 3])
    for name in ("state", "actions", "reward"):
        assert torch.equal(written_at(batch, name), everyone)
    assert torch.equal(batch["filled"][..., 0], everyone)
    assert batch.max_t_filled() == 6


def test_update_steps_where_and_mark_filled() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    state = torch.arange(1.0, 1 + B * 4).view(B, 4)  # (B, 4)
    where = torch.tensor([True, False, True, False])
    batch.update_steps({"state": state}, STEPS, where=where, mark_filled=False)
    assert torch.equal(written_at(batch, "state"), at_steps([0, 2]))
    assert torch.equal(batch["state"][[0, 2], STEPS[[0, 2]]], state[[0, 2]])
    assert not batch["filled"].any()

    batch.update_steps({"state": -state}, STEPS, where=~where)
    assert torch.equal(written_at(batch, "state"), at_steps([0, 1, 2, 3]))
    assert torch.equal(batch["state"][[1, 3], STEPS[[1, 3]]], -state[[1, 3]])
    assert torch.equal(batch["state"][[0, 2], STEPS[[0, 2]]], state[[0, 2]])  # untouched
    assert torch.equal(batch["filled"][..., 0], at_steps([1, 3]))


def test_update_steps_quantises_at_write_time() -> None:
    scheme = Scheme(
        fields={"value": Field((2,), torch.int8, scale=0.5), "reward": Field((1,))},
        groups={},
    )
    batch = EpisodeBatch(scheme, B, T)
    value = torch.tensor([[1.0, -2.5], [0.5, 3.0], [100.0, -100.0], [0.0, 1.5]])  # (B, 2)
    batch.update_steps({"value": value}, STEPS)
    rows = torch.arange(B)  # (B,)
    stored = batch["value"][rows, STEPS]  # (B, 2) int8 codes
    assert stored.dtype == torch.int8
    assert stored.tolist() == [[2, -5], [1, 6], [127, -127], [0, 3]]
    expected = value.clone()
    expected[2] = torch.tensor([63.5, -63.5])  # clamped to the int8 range
    assert torch.equal(batch.float("value")[rows, STEPS], expected)


def test_update_steps_checks_before_writing() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    with pytest.raises(ValueError, match=r"ts must have shape \(4,\)"):
        batch.update_steps({"state": torch.ones(B, 4)}, STEPS[:3])
    with pytest.raises(ValueError, match="'obs'"):
        batch.update_steps({"state": torch.ones(B, 4), "obs": torch.ones(B, 2)}, STEPS)
    with pytest.raises(ValueError, match="where must be a"):  # an index is not a mask
        batch.update_steps({"state": torch.ones(B, 4)}, STEPS, where=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="'filled' is marked"):
        batch.update_steps({"filled": torch.ones(B)}, STEPS)
    assert batch["state"].eq(0).all() and not batch["filled"].any()


def test_clear_empties_only_the_given_episodes() -> None:
    batch = EpisodeBatch(make_scheme(), B, T)
    batch.update(
        {
            "state": torch.randn(B, T, 4) + 10,
            "actions": torch.ones(B, T, N, dtype=torch.long),
            "terminated": torch.ones(B, T),
        },
        ts=slice(None),
    )
    before = {name: tensor.clone() for name, tensor in batch.data.items()}
    batch.clear(torch.tensor([3, 1]))
    for name, tensor in batch.data.items():
        assert tensor[[1, 3]].eq(0).all(), name
        assert torch.equal(tensor[[0, 2]], before[name][[0, 2]]), name
    assert batch["filled"][[0, 2]].all() and batch.max_t_filled() == T


def test_cat_keeps_the_episodes_in_order() -> None:
    scheme = make_scheme()
    first, second = EpisodeBatch(scheme, 1, T), EpisodeBatch(scheme, 3, T)
    first.update({"state": torch.full((1, 4), 1.0)}, ts=0)
    second.update({"state": torch.arange(2.0, 5.0).view(3, 1).expand(3, 4)}, ts=2)
    both = EpisodeBatch.cat([first, second])
    assert both.batch_size == 4 and both.max_seq_length == T and both.scheme is scheme
    assert both["state"][:, :, 0].amax(1).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert both["filled"][:, :, 0].nonzero().tolist() == [[0, 0], [1, 2], [2, 2], [3, 2]]
    assert both["actions"].dtype == torch.uint8
    both.data["state"].zero_()
    assert first["state"][0, 0, 0] == 1.0  # a copy, not a view


def test_cat_is_checked_by_the_constructor() -> None:
    wide = Scheme(
        fields={**make_scheme().fields, "actions": Field((1,), torch.long, group="agents")},
        groups={"agents": N},
    )
    with pytest.raises(ValueError, match="'actions'"):  # uint8 and int64 cat to int64
        EpisodeBatch.cat([EpisodeBatch(make_scheme(), 1, T), EpisodeBatch(wide, 1, T)])
