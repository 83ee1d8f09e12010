"""The autoreset runner: copies that never idle, whole episodes in the episode runner's
layout, B = 1 and copy 0 as the episode runner, exact resume, refusals."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from marl.config import compose_config
from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.envs.base import BatchedEnv, EnvInfo, StepResult
from marl.envs.battle.env import BattleEnv
from marl.envs.foraging import ForagingEnv
from marl.envs.matrix import MatrixEnv
from marl.errors import UsageError
from marl.experiment import Experiment
from marl.exploration.epsilon_greedy import EpsilonGreedy
from marl.modules.agents.rnn import RNNAgent
from marl.runners.autoreset import AutoresetRunner
from marl.runners.episode import EpisodeRunner, RolloutStats
from marl.validation import validate_config
from tests.test_resume import assert_equal


def battle(batch_size: int, seed: int = 3) -> BattleEnv:
    """3m with start noise and cooldown jitter, so copies' episodes differ in length."""
    return BattleEnv("3m", batch_size=batch_size, seed=seed, spawn_noise=1.0)


def make_runner(
    env: BatchedEnv, kind: type[EpisodeRunner] = AutoresetRunner, epsilon: float = 0.5
) -> EpisodeRunner:
    """A runner with a small RNN controller, weights and action stream seeded alike."""
    torch.manual_seed(0)
    mac = MultiAgentController(functools.partial(RNNAgent, hidden_dim=8), env.get_env_info())
    gen = torch.Generator()
    gen.manual_seed(1)
    return kind(env, mac, EpsilonGreedy(epsilon, epsilon, epsilon_anneal_time=1), gen)


class LastAvailable:
    """Each agent takes its highest-numbered available action: a policy that reads only
    its own copy (no network, no shared random stream)."""

    def select(self, q: Any, avail: torch.Tensor, *args: Any) -> torch.Tensor:
        steps = torch.arange(avail.shape[-1], device=avail.device)  # (A,)
        return torch.where(avail, steps, -1).argmax(-1)  # (B, N)


def assert_same(a: EpisodeBatch, b: EpisodeBatch) -> None:
    assert a.batch_size == b.batch_size
    for name in a.data:
        assert torch.equal(a.data[name], b.data[name]), name


def assert_same_stats(a: RolloutStats, b: RolloutStats) -> None:
    assert torch.equal(a.returns, b.returns) and torch.equal(a.lengths, b.lengths)
    assert set(a.final_info) == set(b.final_info)
    for key in a.final_info:
        assert torch.equal(a.final_info[key], b.final_info[key]), key


# ---------------------------------------------------------------------- playing


def small_foraging(batch_size: int, seed: int = 3) -> ForagingEnv:
    """A small LBF field where random play clears some episodes early: copies out of step."""
    return ForagingEnv("Foraging-5x5-2p-1f-v3", time_limit=12, batch_size=batch_size, seed=seed)


@pytest.mark.parametrize(
    "make_env",
    [battle, lambda b: MatrixEnv("two_step", batch_size=b, seed=0), small_foraging],
)
def test_one_copy_plays_exactly_as_the_episode_runner(make_env: Any) -> None:
    lock, auto = make_runner(make_env(1), EpisodeRunner), make_runner(make_env(1))
    for _ in range(6):
        (a, sa), (b, sb) = lock.run(), auto.run()
        assert_same(a, b)
        assert_same_stats(sa, sb)
        assert lock.t_env == auto.t_env
    assert auto.copy_steps == auto.t_env  # one copy never sits a step out


def test_copy_zero_of_a_batch_plays_the_episodes_of_one_copy() -> None:
    """Copy 0 of B = 3 restarts on its own schedule and plays what B = 1 plays."""
    alone, batched = make_runner(battle(1)), make_runner(battle(3))
    alone.action_selector = batched.action_selector = LastAvailable()  # type: ignore[assignment]
    copy_zero: list[EpisodeBatch] = []
    finish = batched._finish

    def record(ended: torch.Tensor, info: dict[str, torch.Tensor]) -> None:
        if bool(ended[0]):
            copy_zero.append(batched._episodes.index(torch.tensor([0])))
        finish(ended, info)

    batched._finish = record  # type: ignore[method-assign]
    while len(copy_zero) < 4:
        batched.run()
    lengths = []
    for episode in copy_zero[:4]:
        single, stats = alone.run()
        assert_same(single, episode)
        lengths.append(int(stats.lengths[0]))
    assert len(set(lengths)) > 1, "spawn noise should vary the episodes"


def test_whole_episodes_in_the_episode_runners_layout() -> None:
    runner = make_runner(battle(8))
    limit = runner.env_info.episode_limit
    for _ in range(3):
        batch, stats = runner.run()
        assert batch.batch_size == 8
        filled = batch["filled"][..., 0]  # (B, T)
        assert filled.sum(1).tolist() == (stats.lengths + 1).tolist()
        steps = torch.arange(limit + 1)  # (T,)
        assert torch.equal(filled, steps < (stats.lengths + 1).unsqueeze(1))
        terminated = batch["terminated"][..., 0]  # (B, T)
        for b, length in enumerate(stats.lengths.tolist()):
            assert not terminated[b, : length - 1].any()
            assert bool(terminated[b, length - 1]) or length == limit  # ends or times out
            assert not batch["avail_actions"][b, length + 1 :].any()  # nothing after the end
        reward = batch["reward"][..., 0]
        torch.testing.assert_close(reward.sum(1), stats.returns)


def test_no_copy_idles_more_than_one_step_per_episode() -> None:
    """Simulated copy steps = real steps (handed over, queued or in progress) plus at most
    one sat-out step per finished episode; far fewer idle steps than lock step."""
    auto, lock = make_runner(battle(8)), make_runner(battle(8), EpisodeRunner)
    episodes = 0
    for _ in range(4):
        batch, _ = auto.run()
        episodes += batch.batch_size
    assert isinstance(auto, AutoresetRunner)
    queued = sum(int(s.lengths.sum()) for _, s in auto._queue)
    finished = episodes + sum(b.batch_size for b, _ in auto._queue)
    in_progress = int(auto._t[~auto._pending].sum())  # pending: ended, not yet restarted
    real = auto.t_env + queued + in_progress
    assert real <= auto.copy_steps <= real + finished
    lock_steps = 0
    for _ in range(4):
        batch, _ = lock.run()
        lock_steps += 8 * (batch.max_t_filled() - 1)
    idle, lock_idle = auto.copy_steps - real, lock_steps - lock.t_env
    assert idle / auto.copy_steps < 0.05 < 0.15 < lock_idle / lock_steps, (idle, lock_idle)


class FixedLengths:
    """Copy b's episodes last ``lengths[b]`` steps; obs and state count the steps."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = torch.tensor(lengths)  # (B,)
        self.batch_size, self.device = len(lengths), torch.device("cpu")
        self.t = torch.zeros(self.batch_size, dtype=torch.long)  # (B,)

    def get_env_info(self) -> EnvInfo:
        return EnvInfo(n_agents=1, n_actions=2, obs_shape=1, state_shape=1, episode_limit=9)

    def reset(self) -> None:
        self.t.zero_()

    def reset_copies(self, mask: torch.Tensor) -> None:
        self.t = self.t.masked_fill(mask, 0)

    def obs(self) -> torch.Tensor:
        return self.t.float().view(-1, 1, 1)  # (B, 1, 1)

    def state(self) -> torch.Tensor:
        return self.t.float().view(-1, 1)  # (B, 1)

    def avail_actions(self) -> torch.Tensor:
        return torch.ones(self.batch_size, 1, 2, dtype=torch.bool)  # (B, 1, 2)

    def step(self, actions: torch.Tensor) -> StepResult:
        live = self.t < self.lengths  # (B,)
        self.t = self.t + live.long()
        ended = live & (self.t == self.lengths)  # (B,)
        return StepResult(live.float(), ended, {"episode_limit": torch.zeros_like(ended)})

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = state["t"].clone()

    def close(self) -> None:
        pass


def test_episodes_finished_beyond_b_are_handed_over_first_next_call() -> None:
    """Copy 0's one-step episodes end at steps 1 and 3 (it sits out step 2), copy 1's
    three-step episode at step 3: three episodes for a batch of two."""
    runner = make_runner(FixedLengths([1, 3]))
    assert isinstance(runner, AutoresetRunner)
    _, stats = runner.run()
    assert stats.lengths.tolist() == [1, 1] and runner.copy_steps == 3 * 2
    assert [b.batch_size for b, _ in runner._queue] == [1]  # copy 1's episode waits
    second, stats = runner.run()
    assert stats.lengths.tolist()[0] == 3
    assert second["obs"][0, :4, 0, 0].tolist() == [0, 1, 2, 3]
    assert runner.t_env == 1 + 1 + 3 + int(stats.lengths[1])


def test_test_episodes_leave_the_training_copies_as_they_were() -> None:
    plain, tested = make_runner(battle(4)), make_runner(battle(4))
    plain.run(), tested.run()
    tested.run(test_mode=True)
    (a, sa), (b, sb) = plain.run(), tested.run()
    assert_same(a, b)
    assert_same_stats(sa, sb)


@pytest.mark.parametrize("make_env", [battle, small_foraging])
def test_resume_mid_episode_continues_exactly(make_env: Any) -> None:
    """Saved between calls (copies mid-episode, episodes queued), restored into fresh
    objects, the runner hands over what the uninterrupted one does."""
    runner = make_runner(make_env(6))
    env = runner.env
    runner.run(), runner.run()
    saved = {"runner": runner.state_dict(), "env": env.state_dict()}
    assert saved["runner"]["in_progress"]["t"].gt(0).any()  # copies mid-episode
    restored_env = make_env(6, seed=99)  # state_dict carries the streams
    restored = make_runner(restored_env)
    restored.load_state_dict(saved["runner"])
    restored_env.load_state_dict(saved["env"])
    for _ in range(3):
        (a, sa), (b, sb) = runner.run(), restored.run()
        assert_same(a, b)
        assert_same_stats(sa, sb)
        assert runner.t_env == restored.t_env


# ---------------------------------------------------------------------- refusals


def test_an_env_that_cannot_reset_one_copy_is_refused() -> None:
    class LockStepOnly:
        def __init__(self, env: MatrixEnv) -> None:
            self.env = env
            self.batch_size, self.device = env.batch_size, env.device

        def __getattr__(self, name: str) -> Any:
            if name == "reset_copies":
                raise AttributeError(name)
            return getattr(self.env, name)

    env = LockStepOnly(MatrixEnv("two_step", batch_size=2, seed=0))
    with pytest.raises(UsageError, match="runner=autoreset needs an env"):
        make_runner(env)  # type: ignore[arg-type]


def test_on_policy_learners_are_refused() -> None:
    cfg = compose_config(["algo=mappo", "runner=autoreset"])
    with pytest.raises(UsageError, match=r"on-policy.*runner=episode"):
        validate_config(cfg)


def test_off_policy_training_on_matrix_matches_the_episode_runner(tmp_path: Path) -> None:
    """Matrix episodes all end together, so autoreset trains exactly as lock step."""
    common = ["env=matrix", "env.game=two_step", "batch_size_run=2", "t_max=400"]
    common += ["batch_size=4", "buffer_size=32", "test_interval=100", "log_interval=100"]
    rows = {}
    for runner in ("episode", "autoreset"):
        cfg = compose_config([*common, f"runner={runner}", "logger=[jsonl]"])
        Experiment(cfg, tmp_path / runner).train()
        lines = (tmp_path / runner / "metrics.jsonl").read_text().splitlines()
        rows[runner] = [
            {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in lines
        ]
    assert rows["episode"] == rows["autoreset"]
    assert any("test/return_mean" in row for row in rows["episode"])


def test_training_resumed_from_a_mid_episode_checkpoint_ends_as_never_stopped(
    tmp_path: Path,
) -> None:
    """Battle copies are mid-episode at every checkpoint; resuming from one reproduces
    the uninterrupted run's final state bit for bit."""
    overrides = ["env=battle", "env.spawn_noise=1.0", "runner=autoreset", "batch_size_run=4"]
    overrides += ["batch_size=8", "buffer_size=32", "t_max=500", "save_model=true"]
    overrides += ["save_model_interval=150", "test_interval=200", "test_nepisode=4"]
    overrides += ["logger=[jsonl]", "checkpoint.save_buffer=all"]
    cfg = compose_config(overrides)
    Experiment(cfg, tmp_path / "whole").train()
    checkpoints = sorted((tmp_path / "whole" / "checkpoints").iterdir(), key=lambda p: int(p.name))
    middle = checkpoints[1]
    saved = torch.load(middle / "state.pt", weights_only=True)
    assert saved["runner"]["in_progress"]["t"].gt(0).any()  # copies were mid-episode
    resumed = Experiment(cfg, tmp_path / "resumed")
    resumed.load(middle, "resume")
    resumed.train()
    final = [
        torch.load(run / "checkpoints" / checkpoints[-1].name / "state.pt", weights_only=True)
        for run in (tmp_path / "whole", tmp_path / "resumed")
    ]
    for part in ("learner", "runner", "env", "episode", "counters", "sample_generator"):
        assert_equal(final[0][part], final[1][part], part)
