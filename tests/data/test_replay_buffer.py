"""Tests for marl.data.replay_buffer.EpisodeReplayBuffer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from marl.data import EpisodeBatch, EpisodeReplayBuffer, Field, Scheme
from marl.envs.base import EnvInfo
from marl.runners.episode import transition_scheme

T = 4


def small_scheme() -> Scheme:
    return Scheme(
        fields={
            "ep": Field((1,), torch.int32),  # episode id, to track which episodes are stored
            "actions": Field((1,), torch.uint8, group="agents"),
        },
        groups={"agents": 2},
    )


def episodes(first: int, count: int, scheme: Scheme | None = None) -> EpisodeBatch:
    """``count`` episodes with ids first .. first+count-1, of length 1 + id % T."""
    batch = EpisodeBatch(scheme or small_scheme(), count, T)
    ids = torch.arange(first, first + count)  # (count,)
    for t in range(T):
        running = ids % T >= t  # (count,)
        k = int(running.sum())
        if k:
            batch.update(
                {"ep": ids[running], "actions": (ids[running, None] + t).repeat(1, 2) % 3},
                ts=t,
                bs=running,
            )
    return batch


def stored_ids(buffer: EpisodeReplayBuffer) -> list[int]:
    """Episode ids slot by slot."""
    return buffer._storage["ep"][: len(buffer), 0, 0].tolist()


def test_ring_wraparound_order() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    assert len(buffer) == 0 and not buffer.can_sample(1)
    for first in (0, 2, 4):
        buffer.insert(episodes(first, 2))
    # episodes 0..5 written to slots 0,1,2,3,4,0: episode 0 is overwritten by 5
    assert len(buffer) == 5
    assert stored_ids(buffer) == [5, 1, 2, 3, 4]
    buffer.insert(episodes(6, 1))
    assert stored_ids(buffer) == [5, 6, 2, 3, 4]
    assert buffer.can_sample(5) and not buffer.can_sample(6)


def test_insert_returns_the_slots_it_wrote_and_episodes_reads_them() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    assert buffer.insert(episodes(0, 3)).tolist() == [0, 1, 2]
    assert buffer.insert(episodes(3, 4)).tolist() == [3, 4, 0, 1]  # wraps around
    assert buffer.insert(episodes(7, 0)).tolist() == []
    slots = buffer.sample_slots(3, torch.Generator().manual_seed(4))
    sampled = buffer.episodes(slots)
    assert sampled["ep"][:, 0, 0].tolist() == [stored_ids(buffer)[i] for i in slots.tolist()]


def test_insert_larger_than_capacity_keeps_last() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=3, max_seq_length=T)
    buffer.insert(episodes(0, 1))
    buffer.insert(episodes(10, 7))  # ids 10..16, only 14, 15, 16 survive
    assert len(buffer) == 3
    assert sorted(stored_ids(buffer)) == [14, 15, 16]
    buffer.insert(episodes(20, 1))  # overwrites the oldest, 14
    assert sorted(stored_ids(buffer)) == [15, 16, 20]


def test_insert_checks_layout() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=3, max_seq_length=T)
    with pytest.raises(ValueError, match="max_seq_length"):
        buffer.insert(EpisodeBatch(small_scheme(), 1, T + 1))
    other = Scheme(fields={"ep": Field((1,), torch.int64)}, groups={})
    with pytest.raises(ValueError, match="fields"):
        buffer.insert(EpisodeBatch(other, 1, T))


def test_sample_reproducible_distinct_and_compact() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=8, max_seq_length=T)
    buffer.insert(episodes(0, 8))
    a = buffer.episodes(buffer.sample_slots(4, torch.Generator().manual_seed(0)))
    b = buffer.episodes(buffer.sample_slots(4, torch.Generator().manual_seed(0)))
    c = buffer.episodes(buffer.sample_slots(4, torch.Generator().manual_seed(1)))
    ids_a, ids_c = a["ep"][:, 0, 0].tolist(), c["ep"][:, 0, 0].tolist()
    assert ids_a == b["ep"][:, 0, 0].tolist() and ids_a != ids_c
    assert len(set(ids_a)) == 4
    assert a.batch_size == 4 and a.max_seq_length == T
    assert a["actions"].dtype == torch.uint8
    # each sampled episode carries its own length
    lengths = a["filled"].sum(dim=(1, 2))
    assert lengths.tolist() == [1 + i % T for i in ids_a]
    with pytest.raises(ValueError):
        buffer.sample_slots(9, torch.Generator().manual_seed(0))


def test_state_dict_round_trip(tmp_path: Path) -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    for first in (0, 2, 4):
        buffer.insert(episodes(first, 2))
    path = tmp_path / "buffer.pt"
    torch.save(buffer.state_dict(), path)
    state = torch.load(path, weights_only=True)
    restored = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    restored.insert(episodes(100, 2))  # junk that the load must replace
    restored.load_state_dict(state)
    assert len(restored) == len(buffer) and stored_ids(restored) == stored_ids(buffer)
    for name in buffer._storage.data:
        assert torch.equal(restored._storage[name], buffer._storage[name])
    x = buffer.episodes(buffer.sample_slots(3, torch.Generator().manual_seed(7)))
    y = restored.episodes(restored.sample_slots(3, torch.Generator().manual_seed(7)))
    for name in x.data:
        assert torch.equal(x[name], y[name])
    # same ring position: the next insert overwrites the same slot in both
    buffer.insert(episodes(50, 1))
    restored.insert(episodes(50, 1))
    assert stored_ids(restored) == stored_ids(buffer) == [5, 50, 2, 3, 4]


def test_load_state_dict_errors() -> None:
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    buffer.insert(episodes(0, 2))
    state = buffer.state_dict()
    with pytest.raises(ValueError, match="capacity"):
        EpisodeReplayBuffer(small_scheme(), capacity=4, max_seq_length=T).load_state_dict(state)
    state["data"]["actions"] = state["data"]["actions"].long()
    with pytest.raises(ValueError, match="'actions'"):
        EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T).load_state_dict(state)


def test_3s5z_buffer_is_under_a_quarter_of_dense_float32() -> None:
    """PyMARL's dense layout vs ours for SMAC 3s5z (8 agents, obs 128, state 216, 14 actions).

    Dense per step: float32 state, obs, avail, one-hot; int64 actions and filled, uint8
    terminated. Ours: 8-bit features, bool masks, uint8 actions, no stored one-hot.
    """
    info = EnvInfo(8, 14, 128, 216, episode_limit=150, unit_range=True)
    n, a = info.n_agents, info.n_actions
    dense = 4 * (info.state_shape + n * (info.obs_shape + a + a) + 1) + 8 * n + 1 + 8
    scheme = transition_scheme(info, "auto")
    assert scheme.nbytes_per_step() == 216 + 8 * 128 + 8 * 14 + 8 + 4 + 1 + 1
    assert scheme.nbytes_per_step() <= dense / 4
    buffer = EpisodeReplayBuffer(scheme, capacity=4, max_seq_length=info.episode_limit + 1)
    assert buffer.nbytes() == scheme.nbytes_per_step() * 4 * (info.episode_limit + 1)


def test_longest_and_trimmed_episodes_need_no_device_read() -> None:
    """`longest` comes from lengths kept on the CPU at insert (and load); `episodes` with
    ``t_end`` equals the full episodes sliced, as training used to do."""
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    for first in (0, 2, 4, 6):  # wraps around; episode id i has length 1 + i % T
        buffer.insert(episodes(first, 2))
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        slots = buffer.sample_slots(2, gen)
        assert slots.device.type == "cpu"
        full = buffer.episodes(slots)
        longest = buffer.longest(slots)
        assert longest == full.max_t_filled()
        trimmed = buffer.episodes(slots, longest)
        assert trimmed.max_seq_length == longest
        for name in full.data:
            assert torch.equal(trimmed[name], full.slice_time(longest)[name]), name
    restored = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    restored.load_state_dict(buffer.state_dict())
    every = torch.arange(5)
    assert restored.longest(every) == buffer.longest(every) == T
    assert [restored.longest(torch.tensor([i])) for i in range(5)] == [
        1 + i % T for i in stored_ids(buffer)
    ]


def test_transitions_are_every_stored_step_drawn_uniformly_with_the_next() -> None:
    """sample=transitions: (slot, t) pairs cover exactly the played steps of the stored
    episodes, about equally often; each comes back as steps t and t + 1 of its episode."""
    buffer = EpisodeReplayBuffer(small_scheme(), capacity=5, max_seq_length=T)
    assert not buffer.can_sample_transitions(1)
    for first in (0, 2, 4, 6):  # episode id i has i % T played steps (filled 0 .. i % T)
        buffer.insert(episodes(first, 2))
    expected = {(slot, t) for slot, ep in enumerate(stored_ids(buffer)) for t in range(ep % T)}
    assert buffer.can_sample_transitions(len(expected))
    assert not buffer.can_sample_transitions(len(expected) + 1)
    n = 4000
    slots, steps = buffer.sample_transitions(n, torch.Generator().manual_seed(0))
    drawn = Counter(zip(slots.tolist(), steps.tolist(), strict=True))
    assert set(drawn) == expected
    mean = n / len(expected)
    assert 0.8 * mean < min(drawn.values()) and max(drawn.values()) < 1.2 * mean
    again = buffer.sample_transitions(n, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], slots) and torch.equal(again[1], steps)
    pairs = buffer.transitions(slots[:20], steps[:20])
    assert (pairs.batch_size, pairs.max_seq_length) == (20, 2)
    whole = buffer.episodes(slots[:20])
    for i, t in enumerate(steps[:20].tolist()):
        for name in whole.data:
            assert torch.equal(pairs[name][i], whole[name][i, t : t + 2]), name
    assert pairs["filled"].all()  # step t was played, t + 1 holds what followed
