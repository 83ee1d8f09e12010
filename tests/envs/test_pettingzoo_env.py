"""The PettingZoo adapter on the real `mpe` preset, plus a tiny parallel env for the rest."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from marl.config import compose_config
from marl.envs.base import BatchedEnv
from marl.envs.pettingzoo_env import PettingZooEnv
from marl.envs.workers import EXTRAS
from marl.errors import UsageError

needs_mpe = pytest.mark.skipif(
    find_spec("mpe2") is None or find_spec("pettingzoo") is None, reason="pip install 'marl[mpe]'"
)
N, A, OBS, S, LIMIT = 3, 5, 18, 54, 25  # simple_spread_v3: agents, actions, obs, state, steps


def make_mpe(batch_size: int, seed: int = 1, *overrides: str) -> Any:
    """The env `marl-train env=mpe <overrides>` builds."""
    cfg = compose_config(["env=mpe", *overrides])
    return instantiate(cfg.env, batch_size=batch_size, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def mpe() -> Iterator[Callable[[int], Any]]:
    """`env=mpe` at seed 1, one env per batch size, shared by this module's tests."""
    built: dict[int, Any] = {}

    def get(batch_size: int) -> Any:
        if batch_size not in built:
            built[batch_size] = make_mpe(batch_size)
        return built[batch_size]

    yield get
    for env in built.values():
        env.close()


def play(env: BatchedEnv, actions: Callable[[int], torch.Tensor]) -> list[dict[str, Any]]:
    """Reset, then step until every copy ended; each step's results and next obs."""
    env.reset()
    steps = []
    for t in range(env.get_env_info().episode_limit):
        reward, terminated, info = env.step(actions(t))
        steps.append({"reward": reward, "terminated": terminated, "obs": env.obs(), **info})
        if bool(terminated.all()):
            break
    return steps


def cycling(batch_size: int) -> Callable[[int], torch.Tensor]:
    """Every agent takes action t % A at step t, (B, N) long."""
    return lambda t: torch.full((batch_size, N), t % A, dtype=torch.long)


@needs_mpe
@pytest.mark.timeout(60)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_mpe_shapes_state_and_masks(mpe: Any, batch_size: int) -> None:
    env = mpe(batch_size)
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (N, A, OBS, S)
    assert info.episode_limit == LIMIT and env.batch_size == batch_size
    assert isinstance(env, BatchedEnv)
    env.reset()
    assert env.obs().shape == (batch_size, N, OBS) and env.obs().dtype == torch.float32
    assert env.state().shape == (batch_size, S) and env.state().dtype == torch.float32
    avail = env.avail_actions()
    assert avail.shape == (batch_size, N, A) and avail.dtype == torch.bool and bool(avail.all())
    reward, terminated, step_info = env.step(torch.zeros(batch_size, N, dtype=torch.long))
    assert reward.shape == (batch_size,) and reward.dtype == torch.float32
    assert terminated.dtype == torch.bool and step_info["episode_limit"].dtype == torch.bool


@needs_mpe
@pytest.mark.timeout(60)
def test_mpe_time_limit_is_a_truncation(mpe: Any) -> None:
    steps = play(mpe(3), cycling(3))
    assert len(steps) == LIMIT
    for s in steps[:-1]:
        assert not bool(s["terminated"].any()) and not bool(s["episode_limit"].any())
    assert bool(steps[-1]["terminated"].all()) and bool(steps[-1]["episode_limit"].all())
    short = make_mpe(1, 1, "env.time_limit=5")
    steps = play(short, cycling(1))
    assert len(steps) == 5 and bool(steps[-1]["episode_limit"].all())
    short.close()


@needs_mpe
@pytest.mark.timeout(60)
def test_mpe_same_seed_same_episode_and_copies_differ(mpe: Any) -> None:
    a, b = make_mpe(1), make_mpe(1)
    for x, y in zip(play(a, cycling(1)), play(b, cycling(1)), strict=True):
        assert torch.equal(x["obs"], y["obs"]) and torch.equal(x["reward"], y["reward"])
    batched = mpe(3)
    batched.reset()
    obs = batched.obs()  # (3, N, O)
    assert not torch.equal(obs[0], obs[1]) and not torch.equal(obs[1], obs[2])
    for env in (a, b):
        env.close()


@needs_mpe
def test_mpe_rewards_are_summed_and_concat_state_is_the_obs() -> None:
    env = make_mpe(1, 1, "env.agent_rewards=true", "env.state=concat")
    steps = play(env, cycling(1))
    for s in steps:
        agents = sum(s[f"reward_agent_{i}"] for i in range(N))
        assert torch.allclose(s["reward"], agents)
    assert torch.equal(env.state(), env.obs().flatten(1))
    env.close()


class TinyParallelEnv:
    """Three agents, 2 or 3 actions; agent 2 leaves after step 1, the rest end after 3.

    Agent 0 observes a dict with an action mask, agent 1 gets its mask in infos.
    No global state of its own.
    """

    def __init__(self) -> None:
        from gymnasium import spaces

        self.possible_agents = ["a", "b", "c"]
        self.agents: list[str] = []
        self.unwrapped = self
        self.t = 0
        box = spaces.Box(-9, 9, (2,))
        self._obs_spaces = {
            "a": spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(3)}),
            "b": box,
            "c": box,
        }
        self._act_spaces = {
            "a": spaces.Discrete(3),
            "b": spaces.Discrete(3),
            "c": spaces.Discrete(2),
        }

    def observation_space(self, agent: str) -> Any:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self._act_spaces[agent]

    def _observe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        t = float(self.t)
        obs: dict[str, Any] = {a: np.array([t, i], np.float32) for i, a in enumerate(self.agents)}
        if "a" in obs:
            obs["a"] = {"observation": obs["a"], "action_mask": np.array([1, 0, 1], np.int8)}
        infos: dict[str, Any] = {a: {"score": 2.0} for a in self.agents}
        if "b" in infos:
            infos["b"]["action_mask"] = np.array([0, 1, 1], np.int8)
        return obs, infos

    def reset(self, seed: int | None = None, options: Any = None) -> Any:
        self.agents, self.t = list(self.possible_agents), 0
        return self._observe()

    def step(self, actions: dict[str, int]) -> Any:
        assert set(actions) == set(self.agents), "only live agents act"
        self.t += 1
        rewards = {a: 1.0 for a in self.agents}
        done = {a: self.t >= 3 or (a == "c" and self.t >= 1) for a in self.agents}
        truncations = dict.fromkeys(self.agents, False)
        self.agents = [a for a in self.agents if not done[a]]
        obs, infos = self._observe()
        return obs, rewards, done, truncations, infos

    def state(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


@pytest.fixture
def tiny_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """A package `marl_test_pz` with env `tiny_v0` (in this process only)."""
    pytest.importorskip("pettingzoo")
    package, env_module = types.ModuleType("marl_test_pz"), types.ModuleType("marl_test_pz.tiny_v0")
    env_module.parallel_env = lambda **kwargs: TinyParallelEnv()  # type: ignore[attr-defined]
    package.tiny_v0 = env_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "marl_test_pz", package)
    monkeypatch.setitem(sys.modules, "marl_test_pz.tiny_v0", env_module)
    return "marl_test_pz"


def test_masks_dict_obs_departed_agents_and_natural_end(tiny_module: str) -> None:
    env = PettingZooEnv(tiny_module, "tiny_v0", time_limit=10, batch_size=1, seed=0)
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (3, 3, 2, 6)
    env.reset()
    assert env.avail_actions()[0].tolist() == [
        [True, False, True],  # from agent a's dict observation
        [False, True, True],  # from agent b's infos
        [True, True, False],  # all of c's 2 actions
    ]
    reward, terminated, step_info = env.step(torch.tensor([[2, 1, 1]]))
    assert float(reward) == 3.0 and not bool(terminated[0]) and step_info["score"].tolist() == [2.0]
    # Agent c left: zeros, and only action 0; its actions are no longer sent.
    assert env.obs()[0, 2].tolist() == [0.0, 0.0]
    assert env.avail_actions()[0, 2].tolist() == [True, False, False]
    assert env.state()[0].tolist() == env.obs()[0].flatten().tolist()  # no state(): concat
    reward, terminated, _ = env.step(torch.tensor([[0, 1, 0]]))
    assert float(reward) == 2.0 and not bool(terminated[0])
    _, terminated, step_info = env.step(torch.tensor([[0, 1, 0]]))
    assert bool(terminated[0]) and not bool(step_info["episode_limit"][0])  # a natural end
    env.close()


def test_mean_reward_and_time_limit_cut(tiny_module: str) -> None:
    env = PettingZooEnv(tiny_module, "tiny_v0", time_limit=2, reward="mean", batch_size=1, seed=0)
    reward, _, _ = env.step(torch.tensor([[0, 1, 0]]))
    assert float(reward) == 1.0
    _, terminated, step_info = env.step(torch.tensor([[0, 1, 0]]))
    assert bool(terminated[0]) and bool(step_info["episode_limit"][0])
    env.close()


@needs_mpe
def test_missing_package_and_unknown_env_are_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UsageError, match=r"^mpe2 has no env 'nope_v0'"):
        PettingZooEnv("mpe2", "nope_v0", time_limit=5, batch_size=1, seed=0)
    monkeypatch.setitem(sys.modules, "mpe2", None)  # `import mpe2` now fails
    with pytest.raises(UsageError) as info:
        PettingZooEnv("mpe2", "simple_spread_v3", time_limit=25, batch_size=2, seed=0)
    assert str(info.value) == (
        "env mpe2.simple_spread_v3 needs the mpe2 package: pip install 'marl[mpe]'"
    )


@needs_mpe
@pytest.mark.timeout(60)
def test_qmix_trains_end_to_end_on_mpe(tmp_path: Path) -> None:
    from marl.train import run

    cfg = compose_config(
        [
            *["algo=qmix", "env=mpe", "t_max=100", "test_interval=50", "test_nepisode=2"],
            *["log_interval=50", "learner_log_interval=50", "batch_size=2", "buffer_size=8"],
        ]
    )
    run(cfg, tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any('"test/return_mean"' in line for line in lines)
    assert any('"learner/loss"' in line for line in lines)


@pytest.fixture
def zoo_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed package `marl_test_zoo` holding env module `tiny_v0`."""
    pytest.importorskip("pettingzoo")
    package = tmp_path / "marl_test_zoo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny_v0.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package.name


@pytest.mark.parametrize(
    ("module", "name", "message"),
    [
        (
            "marl_test_zo",
            "tiny_v0",
            "env.module='marl_test_zo' cannot be imported; did you mean 'marl_test_zoo'?",
        ),
        (
            "marl_test_zoo",
            "tiny_v1",
            "marl_test_zoo has no env 'tiny_v1' (env.name); did you mean 'tiny_v0'?",
        ),
        (
            "marl_test_absnt",  # close to a known env package that is not installed
            "tiny_v0",
            "env.module='marl_test_absnt' cannot be imported; did you mean 'marl_test_absent' "
            "(not installed: pip install 'marl[absent]')?",
        ),
        (
            "qqq_no_such_module",
            "tiny_v0",
            "env.module='qqq_no_such_module' cannot be imported: no installed module has that "
            "name (install the package that provides it, or correct the name).",
        ),
    ],
    ids=["module typo", "env typo", "typo of a known package", "nothing close"],
)
def test_a_mistyped_module_gets_the_closest_one_not_pip_install(
    zoo_on_disk: str, monkeypatch: pytest.MonkeyPatch, module: str, name: str, message: str
) -> None:
    """`env.module=mpe3` was told `pip install mpe3`."""
    monkeypatch.setitem(EXTRAS, "marl_test_absent", "absent")
    with pytest.raises(UsageError) as info:
        PettingZooEnv(module, name, time_limit=5, batch_size=2, seed=0)
    assert str(info.value) == message


def test_the_reported_typo_is_not_sent_to_pip() -> None:
    """`marl-train env=pettingzoo env.module=mpe3 env.name=simple_spread_v3`."""
    pytest.importorskip("pettingzoo")
    with pytest.raises(UsageError) as info:
        PettingZooEnv("mpe3", "simple_spread_v3", time_limit=25, batch_size=1, seed=0)
    assert str(info.value).startswith("env.module='mpe3' cannot be imported")
    assert "pip install mpe3" not in str(info.value)
