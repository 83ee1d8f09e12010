"""SMAC's observation and state layouts, value by value, on hand-placed units."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import MakeEnv, Scenario


def test_3m_obs_and_state_worked(make_env: MakeEnv, scenario: Scenario) -> None:
    # Agent 0 at (10, 16); agent 1 at (11, 17); agent 2 dead. Enemy 0 at (14, 16) with
    # 30 hp; enemy 1 at (19.5, 16), 9.5 away (sight is 9: not seen); enemy 2 at (10, 22),
    # exactly 6 away (seen and attackable).
    env = make_env("3m")
    placed = {0: (10.0, 16.0), 1: (11.0, 17.0), 3: (14.0, 16.0), 4: (19.5, 16.0), 5: (10.0, 22.0)}
    scenario(env, placed, disarmed=(3, 4, 5), health={3: 30.0})
    obs = env.obs()[0, 0].tolist()
    r2 = math.sqrt(2)
    expected = (
        [1.0, 1.0, 1.0, 1.0]  # move N, S, E, W
        + [1.0, 4 / 9, 4 / 9, 0.0, 30 / 45]  # enemy 0: attackable, dist, dx, dy, health
        + [0.0] * 5  # enemy 1: out of sight
        + [1.0, 6 / 9, 0.0, 6 / 9, 1.0]  # enemy 2
        + [1.0, r2 / 9, 1 / 9, 1 / 9, 1.0]  # agent 1: visible, dist, dx, dy, health
        + [0.0] * 5  # agent 2: dead
        + [1.0]  # own health
    )
    assert obs == pytest.approx(expected)
    state = env.state()[0].tolist()
    expected_state = (
        [1.0, 0.0, -6 / 32, 0.0]  # agent 0: health, cooldown, (x - 16) / 32, (y - 16) / 32
        + [1.0, 0.0, -5 / 32, 1 / 32]
        + [0.0] * 4  # agent 2: dead
        + [30 / 45, -2 / 32, 0.0]  # enemy 0: health, rel x, rel y
        + [1.0, 3.5 / 32, 0.0]
        + [1.0, -6 / 32, 6 / 32]
        + [0.0] * 27  # last actions: none yet
    )
    assert state == pytest.approx(expected_state)


def test_state_cooldown_and_last_action(make_env: MakeEnv, scenario: Scenario) -> None:
    # After a shot at loop 0 the marine's cooldown is 13.664 - 8 = 5.664 loops at the end
    # of the step; SMAC divides by max_cd 15. The last action (6) is one-hot in the state.
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,))
    env.step(torch.tensor([[6, 0, 0]]))
    state = env.state()[0]
    assert state[1].item() == pytest.approx(5.664 / 15, abs=1e-5)
    last = state[21:].view(3, 9)
    assert last[0].tolist() == [0.0] * 6 + [1.0, 0.0, 0.0]
    assert last[1].tolist() == [1.0] + [0.0] * 8


def test_2s3z_type_one_hot_quirk(make_env: MakeEnv, scenario: Scenario) -> None:
    # Allies: stalker = type 0, zealot = type 1. Enemies (SMAC's stock ids 73/74):
    # zealot = type 0, stalker = type 1. Enemy feature row: attackable, dist, dx, dy,
    # health, shield, type_0, type_1 (8); own: health, shield, type_0, type_1.
    env = make_env("2s3z")
    placed = {0: (10.0, 16.0), 2: (10.0, 17.0), 5: (14.0, 16.0), 7: (14.0, 17.0)}
    scenario(env, placed, disarmed=(5, 7), shield={7: 25.0})
    obs = env.obs()[0]
    assert obs.shape[-1] == 80
    stalker_obs, zealot_obs = obs[0], obs[2]
    enemy_stalker = stalker_obs[4:12].tolist()
    enemy_zealot = stalker_obs[4 + 2 * 8 : 4 + 3 * 8].tolist()  # enemy index 2 is unit 7
    assert enemy_stalker == pytest.approx([1.0, 4 / 9, 4 / 9, 0.0, 1.0, 1.0, 0.0, 1.0])
    assert enemy_zealot[4:] == pytest.approx([1.0, 0.5, 1.0, 0.0])
    assert stalker_obs[-4:].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert zealot_obs[-4:].tolist() == [1.0, 1.0, 0.0, 1.0]
    # State rows: ally [health, cd, x, y, shield, t0, t1]; enemy [health, x, y, shield, t0, t1].
    state = env.state()[0]
    allies, enemies = state[:35].view(5, 7), state[35:65].view(5, 6)
    assert allies[0, -2:].tolist() == [1.0, 0.0] and allies[2, -2:].tolist() == [0.0, 1.0]
    assert enemies[0, -2:].tolist() == [0.0, 1.0] and enemies[2, -2:].tolist() == [1.0, 0.0]
    assert enemies[2, 3].item() == pytest.approx(0.5)  # 25 / 50 shield


def test_obs_last_action_of_visible_allies(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3m", obs_last_action=True)
    scenario(env, {0: (10.0, 16.0), 1: (11.0, 16.0), 2: (10.0, 20.0), 3: (30.0, 16.0)})
    env.step(torch.tensor([[1, 4, 2]]))
    obs = env.obs()[0, 0]
    ally_rows = obs[4 + 3 * 5 : 4 + 3 * 5 + 2 * 14].view(2, 14)  # 5 features + 9 actions
    assert ally_rows[0, 5:].tolist() == [0.0] * 4 + [1.0] + [0.0] * 4  # agent 1 moved east
    assert ally_rows[1, 5:].tolist() == [0.0] * 2 + [1.0] + [0.0] * 6  # agent 2 moved north


def test_timestep_features(make_env: MakeEnv) -> None:
    env = make_env("3m", obs_timestep_number=True, state_timestep_number=True)
    env.step(torch.ones(1, 3, dtype=torch.long))
    env.step(torch.ones(1, 3, dtype=torch.long))
    assert env.obs()[0, :, -1].tolist() == pytest.approx([2 / 60] * 3)
    assert env.state()[0, -1].item() == pytest.approx(2 / 60)


# SMAC's get_obs_size at default flags (battle-spec.md §2), and SMACv2's protoss_5_vs_5:
# 4 moves + 5 enemies x 9 + 4 allies x 9 + own (health, shield, x, y, 3 type bits).
BASE_OBS = {"3m": 30, "2s3z": 80, "protoss_5_vs_5": 4 + 5 * 9 + 4 * 9 + 7}


@pytest.mark.parametrize("map_name", sorted(BASE_OBS))
@pytest.mark.parametrize(("pathing", "height"), [(True, False), (False, True), (True, True)])
def test_pathing_and_height_obs_sizes(
    make_env: MakeEnv, map_name: str, pathing: bool, height: bool
) -> None:
    # SMAC's get_obs_move_feats_size: +8 pathing, +9 heights; the state and the feature
    # names (state columns) do not change.
    plain = make_env(map_name)
    env = make_env(map_name, obs_pathing_grid=pathing, obs_terrain_height=height)
    size = BASE_OBS[map_name] + 8 * pathing + 9 * height
    info = env.smac_env_info()
    assert info["obs_shape"] == size == env.obs().shape[-1]
    assert info["state_shape"] == plain.smac_env_info()["state_shape"]
    assert info["agent_features"] == plain.smac_env_info()["agent_features"]
    assert info["enemy_features"] == plain.smac_env_info()["enemy_features"]
    whole = make_env(map_name, obs_pathing_grid=pathing, obs_instead_of_state=True)
    assert whole.get_env_info().state_shape == whole.n_agents * (BASE_OBS[map_name] + 8 * pathing)


GROUND = 64 / 255  # cliff level of the ground / 255


def test_3m_pathing_and_heights_by_hand(make_env: MakeEnv, scenario: Scenario) -> None:
    # Strip y 7..24. Agent 0 at cell (10, 8), just above the strip's south edge; agent 1
    # at cell (0, 8) on the west edge: points x < 0 are off the map and read 1 (SMAC).
    # Points (move_amount 2): N (x, y+4), S (x, y-4), E (x+4, y), W (x-4, y), NE (x+2,
    # y+2), SW (x-2, y-2), SE (x+2, y-2), NW (x-2, y+2), then own cell for heights.
    env = make_env("3m", batch_size=2, obs_pathing_grid=True, obs_terrain_height=True)
    scenario(env, {0: (10.5, 8.7), 1: (0.6, 8.2), 3: (30.0, 20.0)})
    obs = env.obs()
    first = obs[0, 0, 4:21].tolist()
    assert first[:8] == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]  # S, SW, SE: y 4 or 6, void
    g = GROUND
    assert first[8:] == pytest.approx([g, 0.0, g, g, g, 0.0, 0.0, g, g])
    edge = obs[0, 1, 4:21].tolist()
    assert edge[:8] == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]  # W, SW, NW off the map: 1
    assert edge[8:] == pytest.approx([g, 0.0, g, 1.0, g, 1.0, 0.0, 1.0, g])
    assert obs[0, 2].abs().sum().item() == 0.0  # dead agent 2: all zeros
    assert torch.equal(obs[1], obs[0])  # every copy, the same units
    # Copies apart: copy 1's agent 0 one cell north reads the strip everywhere.
    pos = env.units.pos.clone()  # (B, U, 2)
    pos[1, 0] = torch.tensor([10.5, 11.7])
    env.set_unit_state(pos=pos)
    assert env.obs()[1, 0, 4:12].tolist() == [1.0] * 8
    assert env.obs()[0, 0, 4:12].tolist() == first[:8]


def test_2c_vs_64zg_plateau_edge_heights(make_env: MakeEnv, scenario: Scenario) -> None:
    # A colossus at cell (8, 17) on the plateau (128, x 7-24, y 13-20), next to its
    # north edge (y 21: void) and the west ramp (x 4, 5, 6 graded 72, 88, 104).
    env = make_env("2c_vs_64zg", obs_pathing_grid=True, obs_terrain_height=True)
    scenario(env, {0: (8.5, 17.5), 2: (16.0, 5.0)})
    obs = env.obs()[0, 0, 4:21].tolist()
    # N (8, 21), S (8, 13), E (12, 17), W (4, 17), NE (10, 19), SW (6, 15), SE (10, 15),
    # NW (6, 19): only N is off the ground.
    assert obs[:8] == [0.0] + [1.0] * 7
    expected = [0, 128, 128, 72, 128, 104, 128, 64, 128]  # NW (6, 19) is ground beside it
    assert obs[8:] == pytest.approx([level / 255 for level in expected])
