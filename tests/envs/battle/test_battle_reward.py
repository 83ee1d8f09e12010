"""SMAC's reward and termination on scripted scenarios, worked out by hand.

3m: max_reward = 3 enemies x 10 + 200 + 3 x 45 = 365, so rewards are divided by
365 / 20 = 18.25. Units: allies 0-2, enemies 3-5; actions: 0 no-op, 1 stop, 6 attack
enemy 0.
"""

from __future__ import annotations

import pytest
import torch
from conftest import MakeEnv, Scenario

from marl.envs.base import StepResult
from marl.envs.battle.env import BattleEnv

SCALE = 365 / 20
STOP, ATTACK_0 = 1, 6


def act(env: BattleEnv, *actions: int) -> StepResult:
    return env.step(torch.tensor([list(actions)]))


def test_max_reward_is_smacs(make_env: MakeEnv) -> None:
    assert make_env("3m").max_reward == 365
    assert make_env("2s3z").max_reward == 5 * 10 + 200 + 2 * 160 + 3 * 150


def test_damage_kill_and_win_rewards(make_env: MakeEnv, scenario: Scenario) -> None:
    # Ally 0 shoots a disarmed enemy 3 (the only living enemy) from 5 away: 6 damage at
    # loops 0, 14, 28, 41, 55, 69, 82 (steps 1, 2, 4, 6, 7, 9, 11) pays 6 / 18.25 each.
    # Step 13 (loop 96) kills it: previous 3 hp + 10 kill bonus + 200 win = 213.
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,))
    rewards = [float(act(env, ATTACK_0, 0, 0).reward[0]) for _ in range(13)]
    damage_steps = {1, 2, 4, 6, 7, 9, 11}
    expected = [6 / SCALE if s in damage_steps else 0.0 for s in range(1, 13)] + [213 / SCALE]
    assert rewards == pytest.approx(expected)
    assert sum(rewards) == pytest.approx((45 + 10 + 200) / SCALE)


def test_unscaled_reward(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3m", reward_scale=False)
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,))
    assert float(act(env, ATTACK_0, 0, 0).reward[0]) == 6.0


def test_only_positive_ignores_damage_taken(make_env: MakeEnv, scenario: Scenario) -> None:
    # Both marines armed, 5 apart: both fire at loop 0. Only positive: 6 dealt -> 6.
    # Otherwise: 6 dealt - 0.5 x 6 taken = 3.
    for only_positive, expected in ((True, 6.0), (False, 3.0)):
        env = make_env("3m", reward_only_positive=only_positive)
        scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)})
        assert float(act(env, ATTACK_0, 0, 0).reward[0]) == pytest.approx(expected / SCALE)


def test_negative_reward_on_death_and_defeat(make_env: MakeEnv, scenario: Scenario) -> None:
    # The last ally (6 hp) and the enemy fire at loop 0. The ally dies: 6 dealt
    # - 0.5 x 6 (its previous hp) - 0.5 x 10 (death) + reward_defeat (-5) = -7. Lost.
    env = make_env("3m", reward_only_positive=False, reward_defeat=-5.0)
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, health={0: 6.0})
    result = act(env, ATTACK_0, 0, 0)
    assert float(result.reward[0]) == pytest.approx(-7 / SCALE)
    assert bool(result.terminated[0]) and not bool(result.info["battle_won"][0])
    assert int(result.info["dead_allies"][0]) == 3 and int(result.info["dead_enemies"][0]) == 2


@pytest.mark.parametrize(("scale", "factor"), [(True, 1 / SCALE), (False, 1.0)])
def test_sparse_reward(make_env: MakeEnv, scenario: Scenario, scale: bool, factor: float) -> None:
    # Sparse: 0 per step, +1 on a win, -1 on a loss; SMAC still scales it (1 / 18.25).
    env = make_env("3m", reward_sparse=True, reward_scale=scale)
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,), health={3: 12.0})
    first, second = act(env, ATTACK_0, 0, 0), act(env, ATTACK_0, 0, 0)  # 12 -> 6 -> 0
    assert float(first.reward[0]) == 0.0
    assert float(second.reward[0]) == pytest.approx(factor)
    assert bool(second.info["battle_won"][0])
    env = make_env("3m", reward_sparse=True, reward_scale=scale)
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(0,), health={0: 6.0})
    assert float(act(env, STOP, 0, 0).reward[0]) == pytest.approx(-factor)


def test_win_terminates_with_battle_won(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,), health={3: 6.0})
    result = act(env, ATTACK_0, 0, 0)
    assert bool(result.terminated[0]) and bool(result.info["battle_won"][0])
    assert not bool(result.info["episode_limit"][0])
    stats = env.get_stats()
    assert (stats["battles_won"], stats["battles_game"], stats["win_rate"]) == (1, 1, 1.0)


@pytest.mark.parametrize("continuing", [False, True])
def test_timeout(make_env: MakeEnv, scenario: Scenario, continuing: bool) -> None:
    # Nobody can fire: the 60th step of 3m times out. terminated True, battle_won False,
    # episode_limit only with continuing_episode (SMAC); the battle counts as a draw.
    env = make_env("3m", continuing_episode=continuing)
    everyone = {u: (10.0 + 2 * u, 16.0) for u in range(6)}
    scenario(env, everyone, disarmed=tuple(range(6)))
    assert env.get_stats()["win_rate"] == 0.0  # no battle yet: 0, not a division by zero
    for step in range(1, 61):
        result = env.step(torch.ones(1, 3, dtype=torch.long))
        assert bool(result.terminated[0]) == (step == 60)
    assert not bool(result.info["battle_won"][0])
    assert bool(result.info["episode_limit"][0]) == continuing
    stats = env.get_stats()
    assert (stats["battles_game"], stats["timeouts"], stats["battles_draw"]) == (1, 1, 1)
    assert stats["restarts"] == 0


def test_ended_copy_stays_frozen(make_env: MakeEnv, scenario: Scenario) -> None:
    # Copy 0 wins in step 1 (its only enemy has 6 hp); copy 1 keeps playing. Stepping
    # copy 0 again, even with actions that are no longer valid, pays 0 and changes nothing.
    env = make_env("3m", batch_size=2)
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, disarmed=(3,))
    health = env.units.health.clone()  # (2, 6)
    health[0, 3] = 6.0
    env.set_unit_state(health=health)
    first = env.step(torch.tensor([[ATTACK_0, 0, 0], [ATTACK_0, 0, 0]]))
    assert first.terminated.tolist() == [True, False]
    obs, state = env.obs()[0], env.state()[0]
    second = env.step(torch.tensor([[0, 5, 7], [ATTACK_0, 0, 0]]))
    assert float(second.reward[0]) == 0.0 and not bool(second.terminated[0])
    torch.testing.assert_close(env.obs()[0], obs)
    torch.testing.assert_close(env.state()[0], state)
    assert float(env.units.health[1, 3]) == 33.0  # copy 1 played on: shots at loops 0, 14
    assert env.get_stats()["battles_game"] == 1
