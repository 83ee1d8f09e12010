"""Scripted mechanics with their arithmetic worked out by hand.

Time base: 8 game loops per agent step, 16 loops per game-second, cooldowns in loops =
faster-seconds x 22.4. Envs here have no spawn noise and no cooldown delay unless a
test asks. Units are indexed allies first: on 3m allies 0-2, enemies 3-5; on 2s3z
allies 0-1 stalkers and 2-4 zealots, enemies 5-6 stalkers and 7-9 zealots.
"""

from __future__ import annotations

import pytest
import torch
from conftest import MakeEnv, Scenario

from marl.envs.base import StepResult
from marl.envs.battle.env import BattleEnv

STOP, NORTH, SOUTH, EAST, WEST, ATTACK_0 = 1, 2, 3, 4, 5, 6


def act(env: BattleEnv, *actions: int) -> StepResult:
    return env.step(torch.tensor([list(actions)]))


def marine_duel(make_env: MakeEnv, scenario: Scenario, gap: float, **kwargs: float) -> BattleEnv:
    """3m with ally 0 at (10, 16) and a disarmed enemy 3 ``gap`` east of it; rest dead."""
    env = make_env("3m", **kwargs)
    scenario(env, {0: (10.0, 16.0), 3: (10.0 + gap, 16.0)}, disarmed=(3,))
    return env


def test_marine_damage_and_kill_time(make_env: MakeEnv, scenario: Scenario) -> None:
    # Centre distance 5, edge distance 5 - 2 x 0.375 = 4.25 <= range 5: fires at once.
    # Cooldown 0.61 x 22.4 = 13.664 loops; shot k is fired at loop ceil(13.664 k):
    # 0, 14, 28, 41, 55, 69, 82, 96, i.e. in steps 1, 2, 4, 6, 7, 9, 11, 13 (loop // 8 + 1).
    # 6 damage per shot, 45 hp: alive with 3 hp after 7 shots, dead on the 8th.
    env = marine_duel(make_env, scenario, gap=5.0)
    health = []
    for step in range(1, 13):
        result = act(env, ATTACK_0, 0, 0)
        health.append(float(env.units.health[0, 3]))
        assert not bool(result.terminated[0]), step
    assert health == [39, 33, 33, 27, 27, 21, 15, 15, 9, 9, 3, 3]
    result = act(env, ATTACK_0, 0, 0)
    assert float(env.units.health[0, 3]) == 0.0
    assert bool(result.terminated[0]) and bool(result.info["battle_won"][0])
    # The ally never moved: no walking needed.
    assert env.units.pos[0, 0].tolist() == [10.0, 16.0]


def test_walk_in_then_fire(make_env: MakeEnv, scenario: Scenario) -> None:
    # Centre distance 6: attack available (<= 6) but edge distance 6 - 0.75 = 5.25 > 5.
    # Loop 0: both marines walk 2.25 / 16 = 0.140625 towards each other (the disarmed
    # enemy's stock AI chases too): distance 6 - 0.28125 = 5.71875 <= 5 + 0.75, so both
    # stop and the ally fires at loop 1. After the step: enemy at 39 hp.
    env = marine_duel(make_env, scenario, gap=6.0)
    assert bool(env.avail_actions()[0, 0, ATTACK_0])
    act(env, ATTACK_0, 0, 0)
    assert float(env.units.health[0, 3]) == 39.0
    assert env.units.pos[0, 0].tolist() == [10.140625, 16.0]
    assert env.units.pos[0, 3].tolist() == [15.859375, 16.0]


def test_a_new_order_replaces_the_attack(make_env: MakeEnv, scenario: Scenario) -> None:
    # The loop-0 shot lands in step 1; a move order in step 2 replaces the attack order,
    # so the shot due at loop 14 never comes: 45 - 6 = 39.
    env = marine_duel(make_env, scenario, gap=5.0)
    act(env, ATTACK_0, 0, 0)
    act(env, WEST, 0, 0)
    assert float(env.units.health[0, 3]) == 39.0


def test_move_distance_per_step(make_env: MakeEnv, scenario: Scenario) -> None:
    # Marine speed 2.25 per game-second = 0.140625 per loop, x 8 loops = 1.125 per step
    # (the order points move_amount = 2 away, so it is still walking when the step ends).
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 3: (30.0, 16.0)}, disarmed=(3,))
    act(env, EAST, 0, 0)
    assert env.units.pos[0, 0].tolist() == [11.125, 16.0]
    act(env, NORTH, 0, 0)
    assert env.units.pos[0, 0].tolist() == [11.125, 17.125]
    act(env, STOP, 0, 0)
    assert env.units.pos[0, 0].tolist() == [11.125, 17.125]


def test_units_stay_in_the_pathable_strip(make_env: MakeEnv, scenario: Scenario) -> None:
    # Ground cells y = 7..24 (7 <= y < 25); a marine's centre stays 0.375 inside: y <= 24.625.
    # At y = 23.9 north probes cell int(24.9) = 24: available. One step north would reach
    # 25.025; the unit stops at 24.625, where north probes int(25.625) = 25: unavailable.
    env = make_env("3m")
    scenario(env, {0: (10.0, 23.9), 3: (30.0, 16.0)}, disarmed=(3,))
    assert bool(env.avail_actions()[0, 0, NORTH])
    act(env, NORTH, 0, 0)
    assert env.units.pos[0, 0, 1].item() == pytest.approx(24.625)
    avail = env.avail_actions()[0, 0]
    assert not bool(avail[NORTH]) and bool(avail[SOUTH])


@pytest.mark.parametrize(("y", "south"), [(8.0, True), (7.9, False)])
def test_move_availability_at_the_south_edge(
    make_env: MakeEnv, scenario: Scenario, y: float, south: bool
) -> None:
    # South probes cell int(y - 1): int(7.0) = 7 is ground, int(6.9) = 6 is not.
    env = make_env("3m")
    scenario(env, {0: (10.0, y), 3: (30.0, 16.0)}, disarmed=(3,))
    assert bool(env.avail_actions()[0, 0, SOUTH]) == south


def test_open_map_has_no_strip(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3s_vs_3z")
    scenario(env, {0: (10.0, 26.0), 3: (30.0, 2.0)}, disarmed=(3,))
    assert env.avail_actions()[0, 0, NORTH:ATTACK_0].all()


def test_attack_availability_by_distance_six(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3m")
    placed = {0: (10.0, 16.0), 3: (16.0, 16.0), 4: (10.0, 22.01), 5: (13.0, 16.0)}
    scenario(env, placed, disarmed=(3, 4, 5), health={5: 0.0})
    avail = env.avail_actions()[0, 0]
    # enemy 0 at exactly 6: yes; enemy 1 at 6.01: no; enemy 2 dead: no.
    assert avail[ATTACK_0:].tolist() == [True, False, False]


def test_dead_agents_only_noop_and_zero_obs(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 1: (11.0, 16.0), 3: (14.0, 16.0)}, disarmed=(3,))
    avail, obs, state = env.avail_actions()[0], env.obs()[0], env.state()[0]
    assert avail[2].tolist() == [True] + [False] * 8
    assert avail[0, 0].item() is False and avail[0, STOP].item() is True
    assert not obs[2].any()
    assert not state[8:12].any()  # agent 2's state row
    with pytest.raises(ValueError, match="cannot perform action"):
        act(env, 0, STOP, 0)  # no-op for a living agent


def test_stalker_armor_bonus_and_shields(make_env: MakeEnv, scenario: Scenario) -> None:
    # Stalker vs stalker: 13 + 5 (armored) = 18 per shot on shields (shield armor 0);
    # on health 18 - 1 armor = 17. Cooldown 1.34 x 22.4 = 30.016 loops: shots at loops
    # 0, 31, 61, 91, 121 = steps 1, 4, 8, 12, 16. Shields 80 -> 62, 44, 26, 8; the 5th
    # shot puts 8 on shields and (10 - 1) = 9 on health: 71 hp, 0 shield.
    env = make_env("2s3z")
    scenario(env, {0: (10.0, 16.0), 5: (16.0, 16.0)}, disarmed=(5,))
    points = []
    for _ in range(16):
        act(env, ATTACK_0, 0, 0, 0, 0)
        points.append((float(env.units.shield[0, 5]), float(env.units.health[0, 5])))
    assert points[0] == (62.0, 80.0)
    assert points[3] == (44.0, 80.0) and points[7] == (26.0, 80.0) and points[11] == (8.0, 80.0)
    assert points[15] == (0.0, 71.0)
    # Without shields every shot is 17: 80 -> 63.
    env = make_env("2s3z")
    scenario(env, {0: (10.0, 16.0), 5: (16.0, 16.0)}, disarmed=(5,), shield={5: 0.0})
    act(env, ATTACK_0, 0, 0, 0, 0)
    assert float(env.units.health[0, 5]) == 63.0


def test_shields_regenerate_after_ten_seconds(make_env: MakeEnv, scenario: Scenario) -> None:
    # One stalker shot at loop 0 of step 1 takes the enemy's shield to 62. Regeneration
    # starts 10 game-s = 160 loops later (loop 160 = the first loop of step 21) at
    # 2 per game-s = 1 per step: 62 through step 20, 63 after step 21, 64 after step 22.
    # With reward_only_positive, SMAC takes abs(): the regenerated point pays 1 / (1020 / 20).
    env = make_env("2s3z")
    scenario(env, {0: (10.0, 16.0), 5: (16.0, 16.0)}, disarmed=(5,))
    act(env, ATTACK_0, 0, 0, 0, 0)
    rewards = [float(act(env, STOP, 0, 0, 0, 0).reward[0]) for _ in range(2, 23)]  # steps 2-22
    assert float(env.units.shield[0, 5]) == 64.0
    assert rewards[:19] == [0.0] * 19  # steps 2-20
    assert rewards[19] == pytest.approx(1 / 51)  # step 21


def test_zealot_double_attack_and_armor(make_env: MakeEnv, scenario: Scenario) -> None:
    # Zealot: 2 attacks of 8 per shot. On an unshielded zealot (armor 1): 2 x 7 = 14.
    # On a zealot with 4 shield: hit 1 puts 4 on shield, (4 - 1) = 3 on health; hit 2
    # 8 - 1 = 7: health 100 - 10 = 90, shield 0. Melee: edge range 0.1, radii 0.5 each,
    # so centres 1.0 apart are in range.
    for shield, health in ((0.0, 86.0), (4.0, 90.0)):
        env = make_env("2s3z")
        scenario(env, {2: (10.0, 16.0), 7: (11.0, 16.0)}, disarmed=(7,), shield={7: shield})
        act(env, 0, 0, ATTACK_0 + 2, 0, 0)
        assert (float(env.units.health[0, 7]), float(env.units.shield[0, 7])) == (health, 0.0)


def test_shots_in_one_loop_resolve_simultaneously(make_env: MakeEnv, scenario: Scenario) -> None:
    # Two armed marines with 6 hp each fire at loop 0: both die in the same loop. The
    # battle ends (both sides dead) without a win, and SMAC's get_stats counts a game.
    env = make_env("3m")
    scenario(env, {0: (10.0, 16.0), 3: (15.0, 16.0)}, health={0: 6.0, 3: 6.0})
    result = act(env, ATTACK_0, 0, 0)
    assert float(env.units.health[0, 0]) == 0.0 and float(env.units.health[0, 3]) == 0.0
    assert bool(result.terminated[0]) and not bool(result.info["battle_won"][0])
    assert env.get_stats()["battles_game"] == 1 and env.get_stats()["battles_won"] == 0


def test_enemy_attack_moves_and_acquires_nearest(make_env: MakeEnv, scenario: Scenario) -> None:
    # The enemy attack-moves from (25, 16) towards (9, 16) at 1.125 per step. Ally 0 at
    # (9, 13) is the nearest ally; it enters the enemy's sight (9) once
    # (x - 9)^2 + 3^2 <= 81, i.e. x <= 17.49, during step 7. The enemy then takes
    # ally 0 (not ally 1 at (9, 20), 4 away from the path) and shoots it.
    env = make_env("3m")
    scenario(env, {0: (9.0, 13.0), 1: (9.0, 20.0), 3: (25.0, 16.0)})
    act(env, STOP, STOP, 0)
    assert env.units.pos[0, 3].tolist() == [23.875, 16.0]
    for _ in range(5):
        act(env, STOP, STOP, 0)
    assert int(env.units.target[0, 3]) == -1  # step 6: x = 18.25, nothing in sight yet
    for _ in range(6):
        act(env, STOP, STOP, 0)
    assert int(env.units.target[0, 3]) == 0
    assert float(env.units.health[0, 0]) < 45.0 and float(env.units.health[0, 1]) == 45.0


def test_cooldowns_restart_with_sc2s_random_delay(make_env: MakeEnv, scenario: Scenario) -> None:
    # A marine's cooldown is 0.61 x 22.4 = 13.664 loops. In the loop it fires, the
    # cooldown restarts at 13.664 + delay + carry - 1, where carry (in (-1, 0]) is how
    # early it was ready: so delay = after + 1 - 13.664 - before, SC2's -1..+2 loops.
    env = make_env("3m", batch_size=64, step_mul=1, cooldown_jitter=True)
    scenario(env, {0: (10.0, 16.0), 3: (13.0, 16.0)}, disarmed=(3,), health={3: 1e6})
    delays = []
    for _ in range(50):
        before = env.units.cooldown[:, 0].clone()  # (B,)
        env.step(torch.full((64, 3), ATTACK_0).where(env.avail_actions()[..., ATTACK_0], 0))
        after = env.units.cooldown[:, 0]  # (B,)
        fired = after > before  # (B,)
        delays += (after + 1 - 13.664 - before)[fired].tolist()
    assert len(delays) > 150
    assert -1.0 - 1e-4 <= min(delays) < -0.8 and 1.8 < max(delays) <= 2.0 + 1e-4
    assert 0.3 < sum(delays) / len(delays) < 0.7  # uniform: mean 0.5
