"""`env=vmas`: shapes, masks, team reward and time limit against VMAS itself; its one
process-wide random state seeded per env and carried through checkpoints."""

from __future__ import annotations

import io
import json
import random
import re
import sys
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from marl.config import SCHEMAS, compose_config
from marl.envs.base import BatchedEnv
from marl.envs.vmas_env import VmasEnv, VmasEnvConfig
from marl.errors import UsageError
from marl.seeding import derive_seed
from marl.train import run

needs_vmas = pytest.mark.skipif(find_spec("vmas") is None, reason="pip install 'marl[vmas]'")
B = 3  # env copies


def play(env: VmasEnv, steps: int, seed: int = 0) -> list[torch.Tensor]:
    """Reset, then ``steps`` random available actions; the observations seen, each (B, N, O)."""
    gen = torch.Generator().manual_seed(seed)
    env.reset()
    seen = [env.obs()]
    for _ in range(steps):
        avail = env.avail_actions().float().flatten(0, 1)  # (B * N, A)
        actions = torch.multinomial(avail, 1, generator=gen).view(env.batch_size, -1)  # (B, N)
        env.step(actions)
        seen.append(env.obs())
    return seen


def equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture
def vmas_schema() -> None:
    """Store the schema as marl.config does for the options it lists in SCHEMAS."""
    if "vmas" not in SCHEMAS["env"]:
        compose_config([])  # registers the listed schemas first
        ConfigStore.instance().store(group="schema/env", name="vmas", node=VmasEnvConfig)


# -- against VMAS itself ----------------------------------------------------------------------


@needs_vmas
@pytest.mark.parametrize(
    ("scenario", "n_agents", "obs_size"), [("balance", 3, 16), ("navigation", 4, 18)]
)
def test_env_info_and_shapes(scenario: str, n_agents: int, obs_size: int) -> None:
    env = VmasEnv(scenario, max_steps=7, batch_size=B, seed=1)
    assert isinstance(env, BatchedEnv)
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape) == (n_agents, 9, obs_size)
    assert info.state_shape == n_agents * obs_size and info.episode_limit == 7
    assert not info.unit_range
    assert env.obs().shape == (B, n_agents, obs_size) and env.obs().dtype == torch.float32
    assert torch.equal(env.state(), env.obs().reshape(B, -1))
    assert env.avail_actions().shape == (B, n_agents, 9) and bool(env.avail_actions().all())


@needs_vmas
@pytest.mark.parametrize("reward", ["sum", "mean"])
def test_matches_vmas_with_the_same_seed(reward: str) -> None:
    """Observations (padded), masks and the team reward of VMAS's own env, stepped alike."""
    import vmas

    env = VmasEnv("simple_speaker_listener", reward=reward, batch_size=B, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = vmas.make_env(
            "simple_speaker_listener",
            num_envs=B,
            continuous_actions=False,
            seed=derive_seed(4, "vmas") % 2**32,
        )
    raw_obs = raw.reset()  # the env reset once more after being built
    # The speaker has 27 actions (3 x 3 moves x 3 words) and sees 3 features; the listener 9 and 11.
    assert env.get_env_info().n_actions == 27 and env.get_env_info().obs_shape == 11
    assert env.avail_actions()[:, 0].all() and env.avail_actions()[:, 1].sum(-1).eq(9).all()
    actions = torch.tensor([[26, 8], [0, 0], [13, 4]])  # (B, N), each in its agent's range
    for _ in range(3):
        assert torch.equal(env.obs()[:, 0, :3], raw_obs[0])  # the speaker's 3 features
        assert torch.equal(env.obs()[:, 1], raw_obs[1])  # the listener's 11
        assert not env.obs()[:, 0, 3:].any()  # zero padding
        reward_got, _, _ = env.step(actions)
        raw_obs, rewards, _, _ = raw.step([actions[:, i] for i in range(2)])
        per_agent = torch.stack(rewards, 1)  # (B, N)
        want = per_agent.sum(1) if reward == "sum" else per_agent.mean(1)
        assert torch.equal(reward_got, want)


@needs_vmas
def test_time_limit_is_a_truncation_and_scenario_ends_are_not() -> None:
    env = VmasEnv("balance", max_steps=3, batch_size=B, seed=0)
    scenario = env._env.scenario
    copy_0_done = torch.tensor([True, False, False])
    actions = torch.zeros(B, 3, dtype=torch.long)
    env.step(actions)
    scenario.done = lambda: copy_0_done.clone()  # copy 0 falls at the 2nd step
    reward, terminated, info = env.step(actions)
    assert terminated.tolist() == [True, False, False]
    assert info["episode_limit"].tolist() == [False, False, False]
    reward, terminated, info = env.step(actions)
    assert terminated.tolist() == [True, True, True]
    assert info["episode_limit"].tolist() == [False, True, True]  # the limit, for 1 and 2 only
    assert reward[0] == 0  # an ended copy pays nothing
    reward, terminated, info = env.step(actions)  # all ended: steps on frozen
    assert terminated.all() and not info["episode_limit"].any() and not reward.any()
    env.reset()
    del scenario.done
    _, terminated, _ = env.step(actions)
    assert not terminated.any()


# -- one random state for the whole process ---------------------------------------------------


@needs_vmas
def test_seeded_at_construction_so_sequential_jobs_do_not_leak() -> None:
    first = play(VmasEnv("balance", batch_size=B, seed=1), steps=4)
    other = play(VmasEnv("balance", batch_size=B, seed=2), steps=4)  # draws from the shared state
    again = play(VmasEnv("balance", batch_size=B, seed=1), steps=4)
    assert equal(first, again)
    assert not torch.equal(first[0], other[0])


@needs_vmas
def test_state_round_trip_continues_exactly() -> None:
    """Play 2 episodes vs save after the 1st and continue in a fresh env (built with
    another seed, another VMAS env used in between): identical observations; the global
    generators are never touched."""
    env = VmasEnv("navigation", max_steps=5, batch_size=B, seed=3)
    play(env, steps=5)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)  # as a checkpoint: loadable with weights_only
    expected = play(env, steps=5) + play(env, steps=5)

    play(VmasEnv("navigation", batch_size=B, seed=9), steps=2)
    restored = VmasEnv("navigation", max_steps=5, batch_size=B, seed=8)
    global_states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(global_states[0], torch.get_rng_state())
    assert np.array_equal(global_states[1], np.random.get_state()[1])
    assert global_states[2] == random.getstate()
    assert equal(play(restored, steps=5) + play(restored, steps=5), expected)
    with pytest.raises(ValueError, match="scenario 'navigation', this env plays 'balance'"):
        VmasEnv("balance", batch_size=B, seed=0).load_state_dict(env.state_dict())


@needs_vmas
@pytest.mark.usefixtures("vmas_schema")
def test_a_resumed_run_ends_like_one_never_stopped(tmp_path: Path) -> None:
    base = ["env=vmas", "env.scenario=balance", "env.max_steps=5", "batch_size_run=2"]
    base += ["batch_size=2", "buffer_size=4", "test_nepisode=2", "test_interval=20"]
    base += ["log_interval=20", "learner_log_interval=20", "save_model=true"]
    base += ["save_model_interval=20"]
    run(compose_config([*base, "t_max=60"]), tmp_path / "reference")
    run(compose_config([*base, "t_max=30"]), tmp_path / "resumed")
    run(compose_config([*base, "t_max=60"]), tmp_path / "resumed")  # continues in place
    rows = [
        (p / "metrics.jsonl").read_text() for p in (tmp_path / "reference", tmp_path / "resumed")
    ]
    assert rows[0] == rows[1]
    assert json.loads(rows[0].splitlines()[-1])["t_env"] >= 60


# -- configuration and errors -----------------------------------------------------------------


@pytest.mark.usefixtures("vmas_schema")
def test_preset_composes_to_the_schema_defaults() -> None:
    cfg = compose_config(["env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"])
    assert dict(cfg.env) == {
        "_target_": "marl.envs.vmas_env.VmasEnv",
        "scenario": "balance",
        "max_steps": VmasEnvConfig.max_steps,
        "reward": VmasEnvConfig.reward,
        "kwargs": {"n_agents": 4},
    }


@pytest.mark.usefixtures("vmas_schema")
def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_config(["env=vmas", "env.scenario=balance"])
    monkeypatch.setitem(sys.modules, "vmas", None)
    with pytest.raises(InstantiationException) as wrapped:  # what marl-train sees
        instantiate(cfg.env, batch_size=1, seed=0, device="cpu")
    assert isinstance(wrapped.value.__cause__, UsageError)
    assert "pip install 'marl[vmas]'" in str(wrapped.value.__cause__)


@needs_vmas
@pytest.mark.parametrize(
    ("scenario", "kwargs", "message"),
    [
        ("balance", {"continuous_actions": True}, "env=vmas plays discrete actions only"),
        ("balance", {"num_envs": 4}, "env.kwargs.num_envs is an argument of VMAS's make_env"),
        (
            "balance",
            {"max_steps": 4},
            "env.kwargs.max_steps is an argument of VMAS's make_env that marl sets; "
            "set env.max_steps instead.",
        ),
        ("balance", {"n_agnts": 4}, "env.kwargs: Scenario kwargs: {'n_agnts': 4} passed but"),
        ("balanse", {}, "env.scenario='balanse' is not a VMAS scenario; did you mean 'balance'?"),
    ],
)
def test_usage_errors(scenario: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        VmasEnv(scenario, kwargs=kwargs, batch_size=1, seed=0)
