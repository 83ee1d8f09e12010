"""The episode runner: batch layout, step counting, determinism and ragged episode ends."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from marl.controllers.mac import MultiAgentController
from marl.envs.base import BatchedEnv, EnvInfo, StepResult
from marl.envs.battle import terrain
from marl.envs.battle.env import BattleEnv
from marl.envs.matrix import MatrixEnv
from marl.errors import UsageError
from marl.exploration.epsilon_greedy import EpsilonGreedy
from marl.modules.agents.rnn import RNNAgent
from marl.runners.episode import EpisodeRunner, storage_dtype, transition_scheme
from tests.conftest import count_host_reads

B = 4  # env copies
ROUNDS = 2  # two_step with 2 rounds: episode_limit 4


def make_runner(
    env: BatchedEnv,
    epsilon: float = 0.5,
    seed: int = 0,
    init_seed: int = 0,
    sync_every: int | None = None,
) -> EpisodeRunner:
    """A runner with a small RNN controller; ``init_seed`` fixes the network weights."""
    torch.manual_seed(init_seed)
    mac = MultiAgentController(functools.partial(RNNAgent, hidden_dim=8), env.get_env_info())
    selector = EpsilonGreedy(epsilon, epsilon, epsilon_anneal_time=1)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return EpisodeRunner(env, mac, selector, gen, sync_every=sync_every)


def matrix_env(batch_size: int = B, game: str = "two_step") -> MatrixEnv:
    return MatrixEnv(game, rounds=ROUNDS, batch_size=batch_size, seed=0)


# ---------------------------------------------------------------------- MatrixEnv


def test_batch_fields_have_expected_shapes_and_dtypes() -> None:
    env = matrix_env()
    info = env.get_env_info()
    runner = make_runner(env)
    batch, stats = runner.run()
    t, n, a = info.episode_limit + 1, info.n_agents, info.n_actions
    expected = {
        "state": ((B, t, info.state_shape), torch.float32),
        "obs": ((B, t, n, info.obs_shape), torch.float32),
        "avail_actions": ((B, t, n, a), torch.bool),
        "actions": ((B, t, n, 1), torch.uint8),
        "reward": ((B, t, 1), torch.float32),
        "terminated": ((B, t, 1), torch.bool),
        "filled": ((B, t, 1), torch.bool),
    }
    for name, (shape, dtype) in expected.items():
        assert tuple(batch[name].shape) == shape, name
        assert batch[name].dtype == dtype, name
    assert batch.max_seq_length == t
    assert stats.returns.shape == (B,)
    assert stats.lengths.dtype == torch.long
    assert "actions_onehot" not in batch.scheme.fields  # the controller derives it


def test_storage_dtype_choices() -> None:
    info = matrix_env().get_env_info()
    unit = dataclasses.replace(info, unit_range=True)
    assert storage_dtype(info, "auto") == "float32"
    assert storage_dtype(unit, "auto") == "int8"
    assert storage_dtype(unit, "float16") == "float16"
    with pytest.raises(UsageError, match="needs an env whose features lie in"):
        storage_dtype(info, "int8")
    with pytest.raises(UsageError, match="buffer_obs_dtype must be one of"):
        storage_dtype(info, "uint4")
    scheme = transition_scheme(unit, "auto")
    assert scheme.fields["obs"].dtype == torch.int8 and scheme.fields["state"].dtype == torch.int8
    assert transition_scheme(info, "float16").fields["obs"].dtype == torch.float16


def test_int8_storage_reads_back_within_half_a_step() -> None:
    env = matrix_env()
    info = dataclasses.replace(env.get_env_info(), unit_range=True)
    runner = make_runner(env)
    runner.scheme = transition_scheme(info, "int8")
    batch, _ = runner.run()
    exact, _ = make_runner(matrix_env()).run()
    assert batch["obs"].dtype == torch.int8
    err = (batch.float("obs") - exact.float("obs")).abs().max()
    assert err <= 0.5 / 127 + 1e-7


def test_filled_covers_length_plus_one_steps() -> None:
    env = matrix_env()
    runner = make_runner(env)
    batch, stats = runner.run()
    limit = env.get_env_info().episode_limit
    assert stats.lengths.tolist() == [limit] * B
    assert batch["filled"][..., 0].sum(dim=1).tolist() == [limit + 1] * B
    assert batch["filled"].all()
    # Matrix games end naturally: terminated on the last played step only.
    terminated = batch["terminated"][..., 0]
    assert terminated[:, limit - 1].all()
    assert not terminated[:, : limit - 1].any()


def test_t_env_counts_real_steps_in_train_mode_only() -> None:
    env = matrix_env()
    runner = make_runner(env)
    limit = env.get_env_info().episode_limit
    assert runner.t_env == 0
    _, stats = runner.run()
    assert runner.t_env == int(stats.lengths.sum()) == B * limit
    runner.run(test_mode=True)
    assert runner.t_env == B * limit
    runner.run()
    assert runner.t_env == 2 * B * limit


def test_returns_equal_sum_of_rewards() -> None:
    env = matrix_env()
    runner = make_runner(env, epsilon=1.0)
    batch, stats = runner.run()
    reward = batch["reward"][..., 0]  # (B, T)
    for b in range(B):
        length = int(stats.lengths[b])
        torch.testing.assert_close(stats.returns[b], reward[b, :length].sum())


def test_test_mode_is_greedy() -> None:
    env = matrix_env()
    runner = make_runner(env, epsilon=1.0)
    first, _ = runner.run(test_mode=True)
    runner.generator.manual_seed(12345)  # a different stream must not matter
    second, _ = runner.run(test_mode=True)
    assert torch.equal(first["actions"], second["actions"])
    # Every copy sees the same inputs, so greedy copies act alike.
    assert (first["actions"] == first["actions"][:1]).all()


def test_same_generator_seed_gives_identical_batches() -> None:
    batch_a, stats_a = make_runner(matrix_env(), epsilon=0.5, seed=7).run()
    batch_b, stats_b = make_runner(matrix_env(), epsilon=0.5, seed=7).run()
    for name in batch_a.data:
        assert torch.equal(batch_a[name], batch_b[name]), name
    assert torch.equal(stats_a.returns, stats_b.returns)
    assert torch.equal(stats_a.lengths, stats_b.lengths)


def test_different_generator_seed_gives_different_random_actions() -> None:
    batch_a, _ = make_runner(matrix_env(batch_size=8), epsilon=1.0, seed=1).run()
    batch_b, _ = make_runner(matrix_env(batch_size=8), epsilon=1.0, seed=2).run()
    assert not torch.equal(batch_a["actions"], batch_b["actions"])


# ---------------------------------------------------------------------- ragged episode ends

N_AGENTS, N_ACTIONS, OBS, STATE = 2, 3, 4, 5
LIMIT = 5
STAGGER_B = 4
TRUNCATED = STAGGER_B - 1  # this copy runs into the time limit
# copy b ends naturally after b + 1 steps, except the last, truncated after LIMIT steps
LENGTHS = [b + 1 for b in range(STAGGER_B - 1)] + [LIMIT]
JUNK = 1000.0  # what an ended copy returns when stepped again


class StaggeredEnv:
    """B copies whose episodes end at different steps; the last one is truncated.

    State and obs carry (copy, step); the reward of copy b at step t is 10 * b + t + 1
    and ``info["score"]`` is 100 * b + t. Stepping an ended copy returns junk.
    """

    def __init__(self) -> None:
        self.batch_size = STAGGER_B
        self.device = torch.device("cpu")
        self.t = 0
        self.copy = torch.arange(STAGGER_B, dtype=torch.float32)  # (B,)
        self.lengths = torch.tensor(LENGTHS)  # (B,)
        self.steps_taken: list[torch.Tensor] = []

    def get_env_info(self) -> EnvInfo:
        return EnvInfo(N_AGENTS, N_ACTIONS, OBS, STATE, LIMIT)

    def reset(self) -> None:
        self.t = 0

    def state(self) -> torch.Tensor:
        state = torch.zeros(STAGGER_B, STATE)
        state[:, 0] = self.copy
        state[:, 1] = self.t
        return state  # (B, S)

    def obs(self) -> torch.Tensor:
        return self.state()[:, None, :OBS].expand(-1, N_AGENTS, -1).clone()  # (B, N, O)

    def avail_actions(self) -> torch.Tensor:
        return torch.ones(STAGGER_B, N_AGENTS, N_ACTIONS, dtype=torch.bool)  # (B, N, A)

    def step(self, actions: torch.Tensor) -> StepResult:
        assert tuple(actions.shape) == (STAGGER_B, N_AGENTS)
        self.steps_taken.append(actions.clone())
        live = self.t < self.lengths  # (B,) before this step
        self.t += 1
        ends = live & (self.t == self.lengths)  # (B,)
        reward = torch.where(live, 10 * self.copy + self.t, torch.full((STAGGER_B,), JUNK))
        truncated = ends & (self.t == LIMIT) & (torch.arange(STAGGER_B) == TRUNCATED)
        score = torch.where(live, 100 * self.copy + self.t - 1, torch.full((STAGGER_B,), -JUNK))
        # Ended copies report junk: terminated again and "truncated".
        terminated = torch.where(live, ends, torch.ones_like(ends))
        episode_limit = torch.where(live, truncated, torch.ones_like(truncated))
        return StepResult(reward, terminated, {"episode_limit": episode_limit, "score": score})

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = state["t"]

    def close(self) -> None:
        pass


class MaskBugEnv(StaggeredEnv):
    """A StaggeredEnv whose masks leave one agent with no action at step 2."""

    def avail_actions(self) -> torch.Tensor:
        avail = super().avail_actions()  # (B, N, A)
        if self.t == 2:
            avail[1, 0] = False
        return avail


def test_an_agent_without_available_actions_is_an_env_error() -> None:
    runner = make_runner(MaskBugEnv(), epsilon=1.0)
    with pytest.raises(ValueError, match="at least one available action"):
        runner.run()
    with pytest.raises(ValueError, match="at least one available action"):
        runner.run(test_mode=True)


@pytest.fixture
def ragged() -> tuple[Any, Any, StaggeredEnv]:
    env = StaggeredEnv()
    assert isinstance(env, BatchedEnv)
    runner = make_runner(env, epsilon=1.0)
    batch, stats = runner.run()
    return batch, stats, env


def test_ragged_lengths_and_t_env() -> None:
    env = StaggeredEnv()
    runner = make_runner(env, epsilon=1.0)
    _, stats = runner.run()
    assert stats.lengths.tolist() == LENGTHS
    assert runner.t_env == sum(LENGTHS)
    assert len(env.steps_taken) == LIMIT  # runs until the longest copy ends


def test_ragged_filled_stops_after_each_copys_next_state(ragged: Any) -> None:
    batch, _, _ = ragged
    filled = batch["filled"][..., 0]  # (B, T)
    for b, length in enumerate(LENGTHS):
        assert filled[b, : length + 1].all(), b  # played steps and the next state
        assert not filled[b, length + 1 :].any(), b  # nothing after the copy ended


def test_ragged_next_state_after_last_action_is_stored(ragged: Any) -> None:
    batch, _, _ = ragged
    for b, length in enumerate(LENGTHS):
        # state[:, 1] is the env step counter: the state after `length` steps.
        assert batch["state"][b, length].tolist()[:2] == [b, length], b
        assert batch["obs"][b, length, :, 1].tolist() == [length] * N_AGENTS, b
        for t in range(length):
            assert batch["state"][b, t, 1].item() == t


def test_ragged_terminated_is_false_for_truncation(ragged: Any) -> None:
    batch, _, _ = ragged
    terminated = batch["terminated"][..., 0]  # (B, T)
    for b, length in enumerate(LENGTHS):
        assert not terminated[b, : length - 1].any(), b
        expected = b != TRUNCATED
        assert bool(terminated[b, length - 1]) == expected, b


def test_ragged_returns_rewards_and_actions(ragged: Any) -> None:
    batch, stats, env = ragged
    reward = batch["reward"][..., 0]  # (B, T)
    for b, length in enumerate(LENGTHS):
        expected = sum(10.0 * b + t + 1 for t in range(length))
        assert stats.returns[b].item() == pytest.approx(expected)
        torch.testing.assert_close(reward[b, :length].sum(), stats.returns[b])
        for t in range(length):
            assert batch["actions"][b, t, :, 0].tolist() == env.steps_taken[t][b].tolist()


def test_ragged_final_info_is_each_copys_last_step(ragged: Any) -> None:
    _, stats, _ = ragged
    assert set(stats.final_info) == {"episode_limit", "score"}
    assert stats.final_info["score"].tolist() == [100.0 * b + n - 1 for b, n in enumerate(LENGTHS)]
    expected_limit = [b == TRUNCATED for b in range(STAGGER_B)]
    assert stats.final_info["episode_limit"].tolist() == expected_limit


def test_stats_first_k(ragged: Any) -> None:
    _, stats, _ = ragged
    head = stats.first(2)
    assert torch.equal(head.returns, stats.returns[:2])
    assert head.lengths.tolist() == LENGTHS[:2]
    assert set(head.final_info) == set(stats.final_info)
    for name, value in head.final_info.items():
        assert torch.equal(value, stats.final_info[name][:2]), name


# ---------------------------------------------------------------------- host reads


def battle_runner(sync_every: int | None, defer_checks: bool | None = None) -> EpisodeRunner:
    env = BattleEnv("3m", batch_size=B, seed=0, defer_checks=defer_checks)
    return make_runner(env, epsilon=1.0, sync_every=sync_every)


@pytest.mark.parametrize("sync_every", [2, 8, 1000])
def test_sync_every_plays_the_same_episodes(sync_every: int) -> None:
    """Reading "all ended?" less often adds frozen steps that nothing records."""
    (batch, stats), (other, other_stats) = (battle_runner(every).run() for every in (1, sync_every))
    filled = batch["filled"]  # (B, T, 1)
    assert torch.equal(filled, other["filled"])
    for name in ("state", "obs", "avail_actions", "actions", "reward", "terminated"):
        mask = filled.view(B, -1, *[1] * (batch[name].dim() - 2))  # broadcasts over the field
        assert torch.equal(batch[name] * mask, other[name] * mask), name
    assert torch.equal(stats.returns, other_stats.returns)
    assert torch.equal(stats.lengths, other_stats.lengths)
    for name, value in stats.final_info.items():
        assert torch.equal(value, other_stats.final_info[name]), name


def test_sync_every_defaults_and_must_be_positive() -> None:
    env = matrix_env()
    assert make_runner(env).sync_every == 1  # the CPU reads "all ended?" every step
    mac = make_runner(env).mac
    with pytest.raises(UsageError, match=r"runner\.sync_every must be at least 1, got 0"):
        EpisodeRunner(env, mac, EpsilonGreedy(1.0, 1.0, 1), torch.Generator(), sync_every=0)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def device_rollout(device: str, monkeypatch: pytest.MonkeyPatch) -> EpisodeRunner:
    """A battle 3m runner (B = 64) as it runs on ``device`` with default settings; on the
    CPU set up the way it runs on a GPU: the simulator works without asking (as ``busy``
    does off the CPU), actions are checked on the device, "all ended?" read every 8 steps."""
    on_cpu = device == "cpu"
    if on_cpu:
        monkeypatch.setattr(terrain, "busy", lambda mask: True)
        monkeypatch.setattr(terrain, "busy_above", lambda values, floor: True)
    env = BattleEnv("3m", batch_size=64, seed=0, device=device, defer_checks=on_cpu or None)
    torch.manual_seed(0)
    mac = MultiAgentController(functools.partial(RNNAgent, hidden_dim=8), env.get_env_info())
    mac.to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    runner = EpisodeRunner(
        env, mac, EpsilonGreedy(1.0, 1.0, 1), gen, sync_every=8 if on_cpu else None
    )
    assert runner.sync_every == 8 and env._check.deferred  # the defaults off the CPU
    runner.run()  # warm up: the first episode builds cached tables
    return runner


@contextlib.contextmanager
def no_host_sync(device: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside, waiting for the device is an error: CUDA's sync debug mode on a GPU, the
    tensor methods that read values back on the CPU."""
    if device == "cpu":
        with monkeypatch.context() as patch:
            count_host_reads(patch, fail=True)
            yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("device", DEVICES)
def test_per_step_calls_never_wait_for_the_device(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    """The policy, action selection and the env's step and views run without a host sync."""
    runner = device_rollout(device, monkeypatch)
    targets = [
        (runner.env, ("step", "obs", "state", "avail_actions")),
        (runner.mac, ("step",)),
        (runner.action_selector, ("select",)),
    ]
    calls = []
    for owner, names in targets:
        for name in names:
            real = getattr(owner, name)

            def guarded(*args: Any, _real: Any = real, _name: str = name) -> Any:
                calls.append(_name)
                with no_host_sync(device, monkeypatch):
                    return _real(*args)

            monkeypatch.setattr(owner, name, guarded)
    runner.run()
    assert calls.count("step") >= 2 * 8  # env and policy steps, over at least 8 steps


def test_a_device_rollout_reads_back_once_per_sync_every_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the CPU set up as on a GPU: 3 reads per episode plus one per 8 steps."""
    runner = device_rollout("cpu", monkeypatch)
    steps = []
    real_step = runner.env.step
    monkeypatch.setattr(runner.env, "step", lambda actions: steps.append(1) or real_step(actions))
    reads = count_host_reads(monkeypatch)
    runner.run()
    assert len(steps) >= 8
    # "all ended?" per 8 steps; per episode: the pending action check, the mask check, t_env
    assert len(reads) <= len(steps) // 8 + 3, reads


def test_cpu_defaults_read_back_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter sees the CPU's per-step reads ("all ended?" and the action check)."""
    runner = battle_runner(None)
    runner.run()
    steps = []
    real_step = runner.env.step
    monkeypatch.setattr(runner.env, "step", lambda actions: steps.append(1) or real_step(actions))
    reads = count_host_reads(monkeypatch)
    runner.run()
    assert len(reads) >= 2 * len(steps) >= 16
