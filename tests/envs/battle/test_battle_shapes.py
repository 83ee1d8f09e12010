"""SMAC's sizes for all 23 maps (and SMACv2's), and the batched outputs' shapes and dtypes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from marl.envs.base import BatchedEnv, ReplayEnv
from marl.envs.battle.env import SIMULATOR, BattleEnv, BattleEnvConfig
from marl.envs.battle.maps import MAPS, TYPE_ONE_HOTS, get_map

# map -> (n_agents, n_actions, obs_shape, state_shape, episode_limit, max_reward),
# SMAC's values at default settings (battle-spec.md §2).
SMAC_TABLE = {
    "3m": (3, 9, 30, 48, 60, 365),
    "8m": (8, 14, 80, 168, 120, 640),
    "25m": (25, 31, 250, 950, 150, 1575),
    "5m_vs_6m": (5, 12, 55, 98, 70, 530),
    "8m_vs_9m": (8, 15, 85, 179, 120, 695),
    "10m_vs_11m": (10, 17, 105, 243, 150, 805),
    "27m_vs_30m": (27, 36, 285, 1170, 180, 1850),
    "2s3z": (5, 11, 80, 120, 120, 1020),
    "3s5z": (8, 14, 128, 216, 150, 1510),
    "3s5z_vs_3s6z": (8, 15, 136, 230, 170, 1670),
    "3s_vs_3z": (3, 9, 36, 54, 150, 680),
    "3s_vs_4z": (3, 10, 42, 61, 200, 840),
    "3s_vs_5z": (3, 11, 48, 68, 250, 1000),
    "MMM": (10, 16, 160, 290, 150, 1015),
    "MMM2": (10, 18, 176, 322, 180, 1205),
    "1c3s5z": (9, 15, 162, 270, 180, 1870),
    "2m_vs_1z": (2, 7, 16, 26, 150, 360),
    "corridor": (6, 30, 156, 282, 400, 1280),
    "6h_vs_8z": (6, 14, 78, 140, 150, 1480),
    "2s_vs_1sc": (2, 7, 17, 27, 300, 510),
    "so_many_baneling": (7, 38, 202, 397, 100, 1480),
    "bane_vs_bane": (24, 30, 336, 984, 200, 1260),
    "2c_vs_64zg": (2, 70, 332, 342, 400, 3080),
}

# SMACv2 names -> (n_agents, n_actions, obs_shape, state_shape, episode_limit): SMACv2's
# get_obs_size/get_state_size with its sc2_gen_*.yaml (unit_type_bits 3, obs_own_pos;
# e.g. protoss_5_vs_5: 4 + 5 x 9 + 4 x 9 + (2 + 2 + 3) = 92). max_reward depends on the
# first team drawn.
SMACV2_TABLE = {
    "protoss_5_vs_5": (5, 11, 92, 130, 200),
    "terran_10_vs_11": (10, 17, 170, 306, 200),
    "zerg_20_vs_23": (20, 29, 346, 858, 200),
}


def test_table_covers_every_map() -> None:
    assert set(SMAC_TABLE) == set(MAPS)
    assert len(MAPS) == 23


@pytest.mark.parametrize("map_name", sorted(SMACV2_TABLE))
def test_smacv2_env_info(map_name: str) -> None:
    env = BattleEnv(map_name, batch_size=2, seed=0)
    info = env.get_env_info()
    n_agents, n_actions, obs, state, limit = SMACV2_TABLE[map_name]
    got = (info.n_agents, info.n_actions, info.obs_shape, info.state_shape, info.episode_limit)
    assert got == (n_agents, n_actions, obs, state, limit)
    assert env.obs().shape == (2, n_agents, obs)
    assert env.state().shape == (2, state)
    assert env.avail_actions().shape == (2, n_agents, n_actions)
    # SMAC's layout without SMACv2's own position: 2 fewer observation features.
    smac_layout = BattleEnv(map_name, batch_size=1, seed=0, obs_own_pos=False)
    assert smac_layout.get_env_info().obs_shape == obs - 2


@pytest.mark.parametrize("map_name", sorted(SMAC_TABLE))
def test_env_info_matches_smac(map_name: str) -> None:
    env = BattleEnv(map_name, batch_size=1, seed=0)
    info = env.get_env_info()
    n_agents, n_actions, obs, state, limit, max_reward = SMAC_TABLE[map_name]
    got = (info.n_agents, info.n_actions, info.obs_shape, info.state_shape, info.episode_limit)
    assert got == (n_agents, n_actions, obs, state, limit)
    assert env.max_reward == max_reward
    # The tensors really have those sizes.
    assert env.obs().shape == (1, n_agents, obs)
    assert env.state().shape == (1, state)
    assert env.avail_actions().shape == (1, n_agents, n_actions)


@pytest.mark.parametrize("map_name", ["3m", "2s3z", "3s_vs_4z", "MMM2", "terran_5_vs_5"])
def test_batched_shapes_and_dtypes(map_name: str) -> None:
    b = 3
    env = BattleEnv(map_name, batch_size=b, seed=1)
    assert isinstance(env, BatchedEnv) and isinstance(env, ReplayEnv)
    info = env.get_env_info()
    n, a = info.n_agents, info.n_actions
    obs, state, avail = env.obs(), env.state(), env.avail_actions()
    assert obs.shape == (b, n, info.obs_shape) and obs.dtype == torch.float32
    assert state.shape == (b, info.state_shape) and state.dtype == torch.float32
    assert avail.shape == (b, n, a) and avail.dtype == torch.bool
    actions = torch.ones(b, n, dtype=torch.long)  # stop is always available to the living
    result = env.step(actions)
    assert result.reward.shape == (b,) and result.reward.dtype == torch.float32
    assert result.terminated.shape == (b,) and result.terminated.dtype == torch.bool
    assert set(result.info) == {"battle_won", "dead_allies", "dead_enemies", "episode_limit"}
    for value in result.info.values():
        assert value.shape == (b,)
    assert result.info["battle_won"].dtype == torch.bool
    assert result.info["episode_limit"].dtype == torch.bool


@pytest.mark.parametrize(
    "map_name", ["3m", "2s3z", "3s_vs_4z", "MMM2", "2c_vs_64zg", "terran_5_vs_5"]
)
def test_features_lie_in_unit_range(map_name: str) -> None:
    """The env declares unit_range (the buffer stores its features in 8 bits): check it
    over whole random battles, with every optional feature on."""
    flags = {"obs_last_action": True, "obs_timestep_number": True, "state_timestep_number": True}
    env = BattleEnv(map_name, batch_size=4, seed=2, **flags)
    assert env.get_env_info().unit_range
    g = torch.Generator().manual_seed(0)
    done = torch.zeros(4, dtype=torch.bool)
    while not done.all():
        assert env.obs().abs().max() <= 1 and env.state().abs().max() <= 1
        avail = env.avail_actions().float()  # (B, N, A)
        actions = torch.multinomial(avail.flatten(0, 1), 1, generator=g).view(avail.shape[:2])
        done |= env.step(actions).terminated
    assert env.obs().abs().max() <= 1 and env.state().abs().max() <= 1


@pytest.mark.parametrize(
    ("flag", "obs_delta", "state_delta"),
    [
        ("obs_last_action", 2 * 9, 0),  # 2 allies x 9 actions
        ("obs_timestep_number", 1, 0),
        ("state_last_action", 0, -27),  # the default True adds 3 x 9
        ("state_timestep_number", 0, 1),
    ],
)
def test_optional_features_change_sizes_like_smac(
    flag: str, obs_delta: int, state_delta: int
) -> None:
    base = BattleEnv("3m", batch_size=2, seed=0).get_env_info()
    value = flag != "state_last_action"
    flags: dict[str, Any] = {flag: value}
    env = BattleEnv("3m", batch_size=2, seed=0, **flags)
    info = env.get_env_info()
    assert info.obs_shape == base.obs_shape + obs_delta
    assert info.state_shape == base.state_shape + state_delta
    assert env.obs().shape[-1] == info.obs_shape
    assert env.state().shape[-1] == info.state_shape


def test_obs_instead_of_state() -> None:
    env = BattleEnv("3m", batch_size=2, seed=0, obs_instead_of_state=True)
    assert env.get_env_info().state_shape == 3 * 30
    torch.testing.assert_close(env.state(), env.obs().reshape(2, -1))


def test_smac_env_info_keys_and_honesty() -> None:
    env = BattleEnv("2s3z", batch_size=1, seed=0)
    info = env.smac_env_info()
    assert set(info) >= {
        "state_shape",
        "obs_shape",
        "n_actions",
        "n_agents",
        "episode_limit",
        "agent_features",
        "enemy_features",
    }
    agent = ["health", "energy/cooldown", "rel_x", "rel_y", "shield", "type_0", "type_1"]
    assert info["agent_features"] == agent
    assert info["enemy_features"] == ["health", "rel_x", "rel_y", "shield", "type_0", "type_1"]
    assert info["simulator"] == SIMULATOR
    assert "approximation" in info["simulator"] and "not SMAC" in info["simulator"]


def test_unknown_map_lists_known_maps() -> None:
    with pytest.raises(ValueError, match=r"known maps are .*'3m'.*protoss_5_vs_5"):
        BattleEnv("4m", batch_size=1, seed=0)


def test_config_schema_matches_constructor() -> None:
    config = BattleEnvConfig()
    assert config._target_ == "marl.envs.battle.env.BattleEnv"
    fields = {k: v for k, v in vars(config).items() if k != "_target_"}
    env = BattleEnv(**fields, batch_size=1, seed=0)
    assert env.map_name == "3m" and env.step_mul == 8


@pytest.mark.parametrize("map_name", sorted(MAPS))
def test_allies_listed_in_smac_agent_order(map_name: str) -> None:
    spec = get_map(map_name)
    ally_order = TYPE_ONE_HOTS[spec.map_type][0]
    ranks = [ally_order.index(u) for u in spec.ally_units()]
    assert ranks == sorted(ranks)
    assert spec.ally_units() == sorted(spec.ally_units())  # RL type ids are alphabetical


def test_vectorised_big_batch_steps() -> None:
    env = BattleEnv("3m", batch_size=64, seed=0)
    for _ in range(3):
        avail = env.avail_actions()  # (64, 3, 9)
        actions = avail.float().argmax(-1)  # (64, 3) the first available action
        result = env.step(actions)
    assert result.reward.shape == (64,)
