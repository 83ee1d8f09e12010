"""The Gymnasium adapter on the real `lbf` and `rware` presets; a tiny env for generic paths."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from marl.config import compose_config
from marl.envs.base import BatchedEnv
from marl.envs.gymnasium_env import GymnasiumEnv
from marl.envs.workers import SerialBatchedEnv
from marl.errors import UsageError

gym = pytest.importorskip("gymnasium")

needs_lbf = pytest.mark.skipif(find_spec("lbforaging") is None, reason="pip install 'marl[lbf]'")
needs_rware = pytest.mark.skipif(find_spec("rware") is None, reason="pip install 'marl[rware]'")
PRESETS = [pytest.param("lbf", marks=needs_lbf), pytest.param("rware", marks=needs_rware)]
LBF = "Foraging-8x8-2p-2f-v3"
LOAD = 5  # lbforaging's LOAD action
# A 3x3 field with one level-1 food: any agent next to it can load it alone.
SMALL_LBF = [
    "+env.kwargs.field_size=[3,3]",
    "+env.kwargs.max_num_food=1",
    "+env.kwargs.min_food_level=1",
    "+env.kwargs.max_food_level=1",
]


def make_preset(name: str, batch_size: int, seed: int = 1, *overrides: str) -> Any:
    """The env `marl-train env=<name> <overrides>` builds."""
    cfg = compose_config([f"env={name}", *overrides])
    return instantiate(cfg.env, batch_size=batch_size, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def preset() -> Iterator[Callable[[str, int], Any]]:
    """Preset envs shared by the tests of this module (seed 1), one per (name, batch size)."""
    built: dict[tuple[str, int], Any] = {}

    def get(name: str, batch_size: int) -> Any:
        if (name, batch_size) not in built:
            built[name, batch_size] = make_preset(name, batch_size)
        return built[name, batch_size]

    yield get
    for env in built.values():
        env.close()


def random_actions(env: BatchedEnv, gen: torch.Generator) -> torch.Tensor:
    """Uniform over each agent's available actions, (B, N) long."""
    avail = env.avail_actions().float()  # (B, N, A)
    return torch.multinomial(avail.flatten(0, 1), 1, generator=gen).view(avail.shape[:2])


def run_episode(env: BatchedEnv, actions: Callable[[int], torch.Tensor]) -> list[dict[str, Any]]:
    """Reset, then step until every copy ended; each step's results and next obs."""
    env.reset()
    steps = []
    for t in range(env.get_env_info().episode_limit):
        reward, terminated, info = env.step(actions(t))
        steps.append({"reward": reward, "terminated": terminated, "obs": env.obs(), **info})
        if bool(terminated.all()):
            break
    return steps


SHAPES = {"lbf": (2, 6, 12, 24, 50), "rware": (2, 5, 71, 142, 500)}  # N, A, O, S, limit


@pytest.mark.timeout(60)
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_preset_shapes_and_dtypes(preset: Any, name: str, batch_size: int) -> None:
    env = preset(name, batch_size)
    n, a, o, s, limit = SHAPES[name]
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (n, a, o, s)
    assert info.episode_limit == limit
    assert isinstance(env, BatchedEnv) and env.batch_size == batch_size
    env.reset()
    assert env.obs().shape == (batch_size, n, o) and env.obs().dtype == torch.float32
    assert env.state().shape == (batch_size, s) and env.state().dtype == torch.float32
    assert torch.equal(env.state(), env.obs().flatten(1))  # no state of their own: concat
    avail = env.avail_actions()
    assert avail.shape == (batch_size, n, a) and avail.dtype == torch.bool
    reward, terminated, step_info = env.step(torch.zeros(batch_size, n, dtype=torch.long))
    assert reward.shape == (batch_size,) and reward.dtype == torch.float32
    assert terminated.shape == (batch_size,) and terminated.dtype == torch.bool
    assert step_info["episode_limit"].dtype == torch.bool


@needs_lbf
def test_lbf_masks_are_the_envs_valid_actions(preset: Any) -> None:
    env = preset("lbf", 1)
    assert isinstance(env.env, SerialBatchedEnv)
    lbf = env.env._copies[0].env.env.unwrapped
    gen = torch.Generator().manual_seed(0)
    seen = []
    env.reset()
    for _ in range(20):
        avail = env.avail_actions()[0]  # (N, A)
        for i, player in enumerate(lbf.players):
            expected = [int(a.value) for a in lbf._valid_actions[player]]
            assert torch.nonzero(avail[i]).view(-1).tolist() == sorted(expected)
        seen.append(avail)
        if bool(env.step(random_actions(env, gen)).terminated.all()):
            env.reset()
    masks = torch.stack(seen)  # (T, N, A)
    assert bool(masks[..., 0].all())  # NONE is always possible
    assert not bool(masks.all())  # some moves or LOAD were not


@needs_rware
@pytest.mark.timeout(60)
def test_rware_masks_are_all_ones(preset: Any) -> None:
    env = preset("rware", 3)
    env.reset()
    assert bool(env.avail_actions().all())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", PRESETS)
def test_time_limit_is_a_truncation(preset: Any, name: str) -> None:
    """Standing still never ends an episode: it ends at the limit, as a truncation."""
    env = preset(name, 3)
    limit = env.get_env_info().episode_limit
    steps = run_episode(env, lambda t: torch.zeros(3, 2, dtype=torch.long))
    assert len(steps) == limit
    for s in steps[:-1]:
        assert not bool(s["terminated"].any()) and not bool(s["episode_limit"].any())
    assert bool(steps[-1]["terminated"].all()) and bool(steps[-1]["episode_limit"].all())


@needs_lbf
def test_time_limit_override_moves_the_envs_own_limit() -> None:
    env = make_preset("lbf", 1, 1, "env.time_limit=70")
    assert env.get_env_info().episode_limit == 70
    steps = run_episode(env, lambda t: torch.zeros(1, 2, dtype=torch.long))
    assert len(steps) == 70 and bool(steps[-1]["episode_limit"].all())
    env.close()


@needs_lbf
def test_natural_end_is_not_a_truncation() -> None:
    env = make_preset("lbf", 1, 1, *SMALL_LBF, "env.agent_rewards=true")
    gen = torch.Generator().manual_seed(0)

    def load_when_possible(t: int) -> torch.Tensor:
        avail = env.avail_actions()  # (1, N, A)
        return torch.where(avail[..., LOAD], LOAD, random_actions(env, gen))  # (1, N)

    returns = []
    for _ in range(4):
        steps = run_episode(env, load_when_possible)
        assert len(steps) < 50 and bool(steps[-1]["terminated"].all())
        assert not any(bool(s["episode_limit"].any()) for s in steps)
        returns.append(sum(float(s["reward"]) for s in steps))
        agents = sum(float(s["reward_agent_0"] + s["reward_agent_1"]) for s in steps)
        assert agents == pytest.approx(returns[-1])  # the team reward is their sum
    assert max(returns) == pytest.approx(1.0)  # the food was loaded: LBF's normalised return
    env.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", PRESETS)
def test_same_seed_same_episode(preset: Any, name: str) -> None:
    """Seed 1 twice: the same observations and rewards under the same actions."""

    def first_episode(env: BatchedEnv) -> list[dict[str, Any]]:
        gen = torch.Generator().manual_seed(0)
        return run_episode(env, lambda t: random_actions(env, gen))[:30]

    env, again = make_preset(name, 1, 1), make_preset(name, 1, 1)
    a, b = first_episode(env), first_episode(again)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["obs"], y["obs"]) and torch.equal(x["reward"], y["reward"])
    other = make_preset(name, 1, 2)
    other.reset()
    again.reset()
    assert not torch.equal(other.obs(), again.obs())
    for e in (env, again, other):
        e.close()


@needs_lbf
@pytest.mark.timeout(60)
def test_worker_i_plays_the_episodes_of_seed_plus_i() -> None:
    batched = make_preset("lbf", 3)
    batched.reset()
    obs = batched.obs()  # (3, N, O)
    batched.close()
    assert not torch.equal(obs[0], obs[1]) and not torch.equal(obs[1], obs[2])
    for i in range(3):
        single = make_preset("lbf", 1, 1 + i)
        single.reset()
        assert torch.equal(single.obs()[0], obs[i])
        single.close()


@needs_lbf
def test_resume_replays_the_next_episodes() -> None:
    env = make_preset("lbf", 2, 4, "env.workers=false")
    env.reset()
    saved = env.state_dict()
    env.reset()
    expected = env.obs().clone()
    resumed = make_preset("lbf", 2, 4, "env.workers=false")
    resumed.reset()
    resumed.reset()  # further along than the checkpoint: load rewinds the episode seeds
    resumed.load_state_dict(saved)
    resumed.reset()
    assert torch.equal(resumed.obs(), expected)


@needs_lbf
def test_module_prefix_and_mean_reward() -> None:
    env = GymnasiumEnv(
        f"lbforaging:{LBF}", time_limit=5, reward="mean", batch_size=1, seed=0, workers=False
    )
    assert env.get_env_info().episode_limit == 5
    env.close()


class TinyEnv(gym.Env):  # type: ignore[misc]
    """Two agents with different obs sizes (2, 3) and action counts (2, 4); a state of 5.

    Shared scalar reward 1 per step; the episode terminates after 3 steps.
    """

    def __init__(self) -> None:
        box = gym.spaces.Box
        self.observation_space = gym.spaces.Tuple((box(-9, 9, (2,)), box(-9, 9, (3,))))
        self.action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(4)))
        self.t = 0

    def _obs(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(2, self.t, np.float32), np.full(3, -self.t, np.float32)

    def reset(self, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, actions: Any) -> Any:
        self.t += 1
        return self._obs(), 1.0, self.t >= 3, False, {"t": self.t, "text": "dropped"}

    def get_state(self) -> np.ndarray:
        return np.arange(5, dtype=np.float32) + self.t

    def get_avail_actions(self) -> list[list[int]]:
        return [[1, 1, 0, 0], [0, 1, 1, 1]]


gym.register("MarlTest/Tiny-v0", entry_point=TinyEnv)


def test_generic_env_pads_masks_and_uses_its_state() -> None:
    env = GymnasiumEnv("MarlTest/Tiny-v0", time_limit=10, state="auto", batch_size=1, seed=0)
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (2, 4, 3, 5)
    env.reset()
    assert env.obs()[0].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert env.avail_actions()[0].tolist() == [
        [True, True, False, False],
        [False, True, True, True],
    ]
    reward, _, step_info = env.step(torch.tensor([[1, 3]]))
    assert env.obs()[0].tolist() == [[1, 1, 0], [-1, -1, -1]]  # zero-padded to 3
    assert env.state()[0].tolist() == [1, 2, 3, 4, 5]
    assert float(reward) == 1.0 and step_info["t"].tolist() == [1.0] and "text" not in step_info
    steps = [env.step(torch.tensor([[0, 1]])) for _ in range(2)]
    assert bool(steps[-1].terminated[0]) and not bool(steps[-1].info["episode_limit"][0])
    env.close()
    cut = GymnasiumEnv("MarlTest/Tiny-v0", time_limit=2, batch_size=1, seed=0)
    assert cut.get_env_info().state_shape == 6  # concat: 2 x 3
    cut.step(torch.tensor([[0, 1]]))
    last = cut.step(torch.tensor([[0, 1]]))
    assert bool(last.terminated[0]) and bool(last.info["episode_limit"][0])
    cut.close()


def test_missing_package_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lbforaging", None)  # `import lbforaging` now fails
    with pytest.raises(UsageError) as info:
        GymnasiumEnv(LBF, import_module="lbforaging", time_limit=50, batch_size=2, seed=0)
    assert str(info.value) == f"env {LBF} needs the lbforaging package: pip install 'marl[lbf]'"
    with pytest.raises(InstantiationException) as wrapped:  # what marl-train sees
        make_preset("lbf", 1)
    assert str(wrapped.value.__cause__) == str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "NoSuchEnv-v0", "time_limit": 5}, "not a registered Gymnasium env"),
        ({"key": "CartPole-v1"}, "not a multi-agent env"),
        ({"key": "MarlTest/Tiny-v0", "reward": "max"}, "env.reward must be one of sum, mean"),
        ({"key": "MarlTest/Tiny-v0"}, "has no time limit of its own: set env.time_limit"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        GymnasiumEnv(**kwargs, batch_size=1, seed=0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        pytest.param("lbf", ["batch_size_run=2"], marks=needs_lbf),  # in worker processes
        pytest.param("rware", ["env.time_limit=40"], marks=needs_rware),
    ],
)
def test_qmix_trains_end_to_end(name: str, overrides: list[str], tmp_path: Path) -> None:
    from marl.train import run

    cfg = compose_config(
        [
            *["algo=qmix", f"env={name}", "t_max=120", "test_interval=60", "test_nepisode=2"],
            *["log_interval=60", "learner_log_interval=60", "batch_size=2", "buffer_size=8"],
            *overrides,
        ]
    )
    run(cfg, tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any('"test/return_mean"' in line for line in lines)
    assert any('"learner/loss"' in line for line in lines)


def is_one_sentence(message: str) -> bool:
    """One line that ends once (gymnasium's own errors run to several sentences)."""
    return "\n" not in message and message[-1] in ".?" and ". " not in message


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param(
            f"lbforaging2:{LBF}",
            f"module 'lbforaging2' of env.key='lbforaging2:{LBF}' cannot be imported; "
            "did you mean 'lbforaging'?",
            marks=needs_lbf,
            id="uninstalled package",
        ),
        pytest.param(
            "lbforaging:Foraging-8x8-2p-2f-v9",
            "env.key='lbforaging:Foraging-8x8-2p-2f-v9' is not a registered Gymnasium env; "
            f"did you mean 'lbforaging:{LBF}'?",
            marks=needs_lbf,
            id="unknown version",
        ),
        pytest.param(
            "MarlTest/Tiny-v9",
            "env.key='MarlTest/Tiny-v9' is not a registered Gymnasium env; "
            "did you mean 'MarlTest/Tiny-v0'?",
            id="unknown id",
        ),
        pytest.param(
            "NoSuchEnv-v0",
            "env.key='NoSuchEnv-v0' is not a registered Gymnasium env; if a package registers "
            "it, name that package too, as in env.key=<package>:NoSuchEnv-v0.",
            id="no package named",
        ),
    ],
)
def test_bad_keys_are_one_sentence(key: str, message: str) -> None:
    """`env.key=lbforaging2:Foraging-...` was told `pip install lbforaging2`; an unknown
    id got gymnasium's error of several sentences."""
    with pytest.raises(UsageError) as info:
        GymnasiumEnv(key, time_limit=5, batch_size=2, seed=0)  # before any worker starts
    assert str(info.value) == message and is_one_sentence(message)
