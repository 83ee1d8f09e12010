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
