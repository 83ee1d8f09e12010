"""B copies of a single-copy env: lock step, seeding, resume, and failures that never hang."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from typing import Any

import numpy as np
import pytest
import torch

from marl.envs.base import BatchedEnv, EnvInfo
from marl.envs.workers import (
    SEED_HIGH,
    BatchedSingleEnv,
    SerialBatchedEnv,
    WorkerBatchedEnv,
    require,
)
from marl.errors import UsageError

N_AGENTS, N_ACTIONS, LIMIT = 2, 3, 4


class FakeEnv:
    """Two agents; an episode from seed s lasts 2 + s % 3 steps and pays the sum of actions.

    Observations show the episode seed (in two float-exact parts) and the step;
    agent 1 may never take action 2. The last step's info says ``won``.
    """

    def __init__(
        self,
        truncate: bool = False,
        fail_at: int | None = None,
        hang_at: int | None = None,
        fail_build: type[Exception] | None = None,
    ) -> None:
        if fail_build is not None:
            raise fail_build("cannot build the fake env")
        self.truncate, self.fail_at, self.hang_at = truncate, fail_at, hang_at
        self.seed, self.t, self.length = 0, 0, 0

    @property
    def env_info(self) -> EnvInfo:
        return EnvInfo(N_AGENTS, N_ACTIONS, obs_shape=3, state_shape=6, episode_limit=LIMIT)

    def reset(self, seed: int) -> None:
        self.seed, self.t, self.length = seed, 0, 2 + seed % 3

    def obs(self) -> np.ndarray:
        row = [self.seed % 100_000, self.seed // 100_000, self.t]
        return np.array([row, row], dtype=np.float32)  # (N, O)

    def state(self) -> np.ndarray:
        return self.obs().reshape(-1)  # (S,)

    def avail_actions(self) -> np.ndarray:
        mask = np.ones((N_AGENTS, N_ACTIONS), dtype=bool)  # (N, A)
        mask[1, 2] = False
        return mask

    def step(self, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
        self.t += 1
        if self.t == self.fail_at:
            raise ValueError(f"boom at step {self.t}")
        if self.t == self.hang_at:
            time.sleep(60)
        ended = self.t >= self.length
        info: dict[str, Any] = {"t": self.t, "note": "not a number", "arr": np.zeros(2)}
        if ended:
            info["won"] = True
        return float(actions.sum()), ended and not self.truncate, ended and self.truncate, info

    def close(self) -> None:
        pass


def episode_seed(seed: int, copy: int, episode: int) -> int:
    """The seed of the ``episode``-th reset (1 = at construction) of ``copy``."""
    gen = torch.Generator().manual_seed(seed + copy)
    draws = torch.randint(0, SEED_HIGH, (episode,), generator=gen)
    return int(draws[-1])


def seed_of(obs: torch.Tensor) -> list[int]:
    """The episode seed each copy shows in its observation (B, N, O)."""
    return [int(o[0, 0]) + 100_000 * int(o[0, 1]) for o in obs]


def play(env: BatchedEnv, steps: int = LIMIT) -> list[dict[str, torch.Tensor]]:
    """Steps with actions 1 everywhere; each step's reward, terminated, info and obs."""
    out = []
    for _ in range(steps):
        actions = torch.ones(env.batch_size, N_AGENTS, dtype=torch.long)  # (B, N)
        reward, terminated, info = env.step(actions)
        out.append({"reward": reward, "terminated": terminated, "obs": env.obs(), **info})
    return out


@pytest.fixture(scope="module")
def workers3() -> Any:
    env = WorkerBatchedEnv(FakeEnv, batch_size=3, seed=5)
    yield env
    env.close()


def test_serial_presents_the_batched_protocol() -> None:
    env = SerialBatchedEnv(FakeEnv, batch_size=2, seed=1)
    assert isinstance(env, BatchedEnv)
    env.reset()
    assert env.obs().shape == (2, N_AGENTS, 3) and env.obs().dtype == torch.float32
    assert env.state().shape == (2, 6) and env.state().dtype == torch.float32
    avail = env.avail_actions()
    assert avail.shape == (2, N_AGENTS, N_ACTIONS) and avail.dtype == torch.bool
    assert not bool(avail[:, 1, 2].any())
    reward, terminated, info = env.step(torch.ones(2, N_AGENTS, dtype=torch.long))
    assert reward.dtype == torch.float32 and reward.tolist() == [2.0, 2.0]
    assert terminated.dtype == torch.bool and info["episode_limit"].dtype == torch.bool
    assert info["t"].tolist() == [1.0, 1.0]
    assert "note" not in info and "arr" not in info  # only numeric scalars pass
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.ones(2, 3, dtype=torch.long))
    env.close()
    env.close()


@pytest.mark.timeout(60)
def test_workers_match_serial_step_for_step(workers3: WorkerBatchedEnv) -> None:
    serial = SerialBatchedEnv(FakeEnv, batch_size=3, seed=5)
    for env in (serial, workers3):
        env.reset()
    assert torch.equal(serial.obs(), workers3.obs())
    for a, b in zip(play(serial), play(workers3), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_ended_copies_stop_and_keep_their_last_step() -> None:
    env = SerialBatchedEnv(FakeEnv, batch_size=3, seed=5)
    env.reset()
    lengths = [2 + s % 3 for s in seed_of(env.obs())]
    assert len(set(lengths)) > 1, "the copies should end at different steps"
    steps = play(env)
    for b, length in enumerate(lengths):
        ended = [bool(s["terminated"][b]) for s in steps]
        assert ended == [t >= length for t in range(1, LIMIT + 1)]
        assert [float(s["reward"][b]) for s in steps] == [
            2.0 if t <= length else 0.0 for t in range(1, LIMIT + 1)
        ]
        # After the end: the last observation, and the last step's info.
        assert all(int(s["obs"][b, 0, 2]) == length for s in steps[length - 1 :])
        assert all(bool(s["won"][b]) for s in steps[length - 1 :])
        # `won` is kept for a copy that ended while another copy plays on.
        assert not any("won" in s and bool(s["won"][b]) for s in steps[: length - 1])
        assert not any(bool(s["episode_limit"][b]) for s in steps)


def test_truncation_is_the_episode_limit() -> None:
    env = SerialBatchedEnv(functools.partial(FakeEnv, truncate=True), batch_size=1, seed=0)
    env.reset()
    length = 2 + seed_of(env.obs())[0] % 3
    steps = play(env, length)
    assert [bool(s["terminated"][0]) for s in steps] == [False] * (length - 1) + [True]
    assert [bool(s["episode_limit"][0]) for s in steps] == [False] * (length - 1) + [True]


@pytest.mark.timeout(60)
def test_copy_i_draws_its_episode_seeds_from_seed_plus_i(workers3: WorkerBatchedEnv) -> None:
    fresh = SerialBatchedEnv(FakeEnv, batch_size=3, seed=5)
    assert seed_of(fresh.obs()) == [episode_seed(5, i, 1) for i in range(3)]
    fresh.reset()
    assert seed_of(fresh.obs()) == [episode_seed(5, i, 2) for i in range(3)]
    # Copy 0 of a batch of one is copy 0 of a batch of three.
    single = SerialBatchedEnv(FakeEnv, batch_size=1, seed=5)
    assert seed_of(single.obs()) == [episode_seed(5, 0, 1)]
    assert len(set(seed_of(workers3.obs()))) == 3


def test_state_dict_restores_the_seeds_of_later_episodes() -> None:
    env = SerialBatchedEnv(FakeEnv, batch_size=2, seed=3)
    env.reset()
    state = env.state_dict()
    assert state["seeds"] == [3, 4] and state["episodes"] == [2, 2]
    env.reset()
    expected = env.obs().clone()
    other = SerialBatchedEnv(FakeEnv, batch_size=2, seed=99)
    other.load_state_dict(state)
    other.reset()
    assert torch.equal(other.obs(), expected)
    assert other.state_dict()["episodes"] == [3, 3]
    with pytest.raises(ValueError, match="2 env copies"):
        SerialBatchedEnv(FakeEnv, batch_size=3, seed=3).load_state_dict(state)


@pytest.mark.timeout(60)
def test_worker_that_raises_surfaces_with_the_env_message() -> None:
    env = WorkerBatchedEnv(functools.partial(FakeEnv, fail_at=2), batch_size=2, seed=0)
    env.step(torch.zeros(2, N_AGENTS, dtype=torch.long))
    with pytest.raises(RuntimeError, match="ValueError: boom at step 2") as info:
        env.step(torch.zeros(2, N_AGENTS, dtype=torch.long))
    assert "while step" in str(info.value)
    assert not any(p.is_alive() for p in env.processes)  # all workers were shut down
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    env.close()


@pytest.mark.timeout(60)
def test_worker_killed_surfaces_as_an_error() -> None:
    env = WorkerBatchedEnv(FakeEnv, batch_size=2, seed=0)
    victim = env.processes[1]
    os.kill(victim.pid or 0, signal.SIGKILL)
    victim.join(10)
    with pytest.raises(RuntimeError, match=r"env worker 1 died \(exit code -9\)"):
        env.step(torch.zeros(2, N_AGENTS, dtype=torch.long))
    env.close()


@pytest.mark.timeout(60)
def test_silent_worker_times_out() -> None:
    factory = functools.partial(FakeEnv, hang_at=1)
    env = WorkerBatchedEnv(factory, batch_size=2, seed=0, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"sent no reply within 1\.0 s"):
        env.step(torch.zeros(2, N_AGENTS, dtype=torch.long))
    assert time.monotonic() - start < 10
    env.close()


@pytest.mark.timeout(60)
def test_worker_build_errors_surface() -> None:
    with pytest.raises(RuntimeError, match="while building the env: ValueError: cannot build"):
        WorkerBatchedEnv(functools.partial(FakeEnv, fail_build=ValueError), batch_size=2, seed=0)
    # A user error stays a UsageError, its one sentence intact.
    with pytest.raises(UsageError, match=r"^cannot build the fake env$"):
        WorkerBatchedEnv(functools.partial(FakeEnv, fail_build=UsageError), batch_size=2, seed=0)


def test_batched_single_env_picks_workers_only_for_several_copies() -> None:
    one = BatchedSingleEnv(FakeEnv, batch_size=1, seed=0)
    assert isinstance(one.env, SerialBatchedEnv)
    serial = BatchedSingleEnv(FakeEnv, batch_size=3, seed=0, workers=False)
    assert isinstance(serial.env, SerialBatchedEnv)
    assert isinstance(one, BatchedEnv)
    one.close()
    serial.close()


def test_missing_package_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lbforaging", None)  # import lbforaging now fails
    with pytest.raises(UsageError) as info:
        require("lbforaging", "env Foraging-8x8-2p-2f-v3")
    assert str(info.value) == (
        "env Foraging-8x8-2p-2f-v3 needs the lbforaging package: pip install 'marl[lbf]'"
    )
    with pytest.raises(UsageError, match="pip install not_a_package_xyz"):
        require("not_a_package_xyz", "env x")
