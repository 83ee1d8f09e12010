"""Medivac healing, colossus and baneling splash, Zerg regeneration: worked by hand.

Time base: 8 game loops per agent step, 16 loops per game-second. Envs have no spawn
noise and no cooldown jitter. Unit indices (allies first):

- MMM: allies 0-1 marauders, 2-8 marines, 9 medivac; enemies 10-16 marines,
  17-18 marauders, 19 medivac.
- 1c3s5z: allies 0 colossus, 1-3 stalkers, 4-8 zealots; enemies 9 colossus,
  10-12 stalkers, 13-17 zealots.
- bane_vs_bane: allies 0-3 banelings, 4-23 zerglings; enemies 24-43 zerglings,
  44-47 banelings.
- 6h_vs_8z: allies 0-5 hydralisks; enemies 6-13 zealots.
"""

from __future__ import annotations

import pytest
import torch
from conftest import MakeEnv, Scenario

from marl.envs.base import StepResult
from marl.envs.battle.env import BattleEnv

STOP, ATTACK_0 = 1, 6
REGEN_PER_LOOP = 0.2734 / 16
ENERGY_PER_LOOP = 0.5625 / 16  # = 0.03515625


def act(env: BattleEnv, actions: dict[int, int]) -> StepResult:
    """Agents in ``actions`` act, the other living agents stop, the dead no-op."""
    row = env.avail_actions()[0, :, STOP].long()  # (N,) 1 alive, 0 dead
    for i, a in actions.items():
        row[i] = a
    return env.step(row.unsqueeze(0))


def mmm_heal(make_env: MakeEnv, scenario: Scenario, energy: float) -> BattleEnv:
    """Medivac 9 at (10, 16), marine 2 at (12, 16) with 20 of 45 hp, a far disarmed enemy."""
    env = make_env("MMM")
    scenario(env, {2: (12.0, 16.0), 9: (10.0, 16.0), 10: (30.0, 16.0)}, disarmed=(10,),
             health={2: 20.0})  # fmt: skip
    env.set_unit_state(energy=torch.tensor([energy if u == 9 else 0.0 for u in range(20)]))
    return env


def test_medivac_heals_with_energy(make_env: MakeEnv, scenario: Scenario) -> None:
    # Heal range 4 + 0.75 + 0.375 = 5.125 > 2: the medivac heals at once, 9 hp per
    # game-s = 0.5625 per loop, paying 1 energy per 3 hp, regaining 0.5625 / 16 energy
    # per loop. Step 1: 8 x 0.5625 = 4.5 hp -> 24.5; energy 50 - 1.5 + 8 x 0.03515625.
    env = mmm_heal(make_env, scenario, energy=50.0)
    heal_ally_2 = ATTACK_0 + 2
    assert bool(env.avail_actions()[0, 9, heal_ally_2])
    act(env, {9: heal_ally_2})
    assert float(env.units.health[0, 2]) == pytest.approx(24.5)
    energy = 50.0 - 1.5 + 8 * ENERGY_PER_LOOP  # 48.78125
    assert float(env.units.energy[0, 9]) == pytest.approx(energy)
    assert float(env.state()[0, 9 * 7 + 1]) == pytest.approx(energy / 200)  # energy / 200
    # 25 missing hp take 25 / 0.5625 = 44.4 loops: full (45) during step 6 (loops 40-47);
    # it then stops paying: energy 50 - 25 / 3 + 48 x 0.03515625.
    for _ in range(5):
        act(env, {9: heal_ally_2})
    assert float(env.units.health[0, 2]) == 45.0
    assert float(env.units.energy[0, 9]) == pytest.approx(50 - 25 / 3 + 48 * ENERGY_PER_LOOP)


def test_medivac_heal_is_limited_by_energy(make_env: MakeEnv, scenario: Scenario) -> None:
    # With 0.1 energy: loop 0 heals 3 x 0.1 = 0.3 hp (energy 0, then +0.03515625); each
    # later loop heals what the regenerated energy buys, 3 x 0.03515625 = 0.10546875.
    env = mmm_heal(make_env, scenario, energy=0.1)
    act(env, {9: ATTACK_0 + 2})
    assert float(env.units.health[0, 2]) == pytest.approx(20.0 + 0.3 + 7 * 3 * ENERGY_PER_LOOP)
    assert float(env.units.energy[0, 9]) == pytest.approx(ENERGY_PER_LOOP)


def test_medivac_targets_allies_never_medivacs(make_env: MakeEnv, scenario: Scenario) -> None:
    # A medivac's attack slot j is "heal ally j" (alive, not a medivac, within 6). Its
    # enemy rows' "attackable" bit reads the same slots (SMAC's quirk): enemy 0 (unit 10)
    # and enemy 1 (unit 11) are both 3 away, but the bits say "ally 0 healable" (yes) and
    # "ally 1 healable" (no: dead).
    env = make_env("MMM")
    placed = {
        0: (10.0, 16.0),
        2: (12.0, 16.0),
        5: (10.0, 22.6),
        9: (10.0, 16.5),
        10: (13.0, 16.5),
        11: (10.0, 19.5),
    }
    scenario(env, placed, disarmed=(0, 2, 5, 10, 11))
    avail = env.avail_actions()[0, 9, ATTACK_0:].tolist()  # (10,) heal ally j
    assert avail == [True, False, True] + [False] * 7  # 1 dead, 5 is 6.1 away, 9 itself
    enemy_rows = env.obs()[0, 9, 4 : 4 + 10 * 8].view(10, 8)  # attackable, dist, dx, dy, ...
    assert enemy_rows[0, :2].tolist() == pytest.approx([1.0, 3 / 9])
    assert enemy_rows[1, :2].tolist() == pytest.approx([0.0, 3 / 9])
    assert bool(env.avail_actions()[0, 0, ATTACK_0 + 1])  # a marauder: enemy 1 in range


def test_only_medivacs_left_loses(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("MMM")
    scenario(env, {9: (10.0, 16.0), 10: (30.0, 16.0)}, disarmed=(10,))
    result = act(env, {})
    assert bool(result.terminated[0]) and not bool(result.info["battle_won"][0])
    env = make_env("MMM")
    scenario(env, {2: (10.0, 16.0), 19: (30.0, 16.0)})
    result = act(env, {})
    assert bool(result.terminated[0]) and bool(result.info["battle_won"][0])


def test_enemy_medivac_heals_its_team(make_env: MakeEnv, scenario: Scenario) -> None:
    # The stock medivac (unit 19) acquires the damaged enemy marine 10 in its sight and
    # heals it: 4.5 hp in the first step. A marauder cannot shoot the air unit: SMAC
    # offers the attack (4.1 <= 6), but the order is dropped and the marauder idles.
    env = make_env("MMM")
    placed = {0: (21.0, 23.0), 10: (25.0, 20.0), 19: (25.0, 22.0)}
    scenario(env, placed, disarmed=(10,), health={10: 10.0})
    assert bool(env.avail_actions()[0, 0, ATTACK_0 + 9])
    act(env, {0: ATTACK_0 + 9})
    assert int(env.units.target[0, 19]) == 10
    assert float(env.units.health[0, 10]) == pytest.approx(14.5)
    assert int(env.units.target[0, 0]) == -1 and float(env.units.health[0, 19]) == 150.0


def test_colossus_line_splash(make_env: MakeEnv, scenario: Scenario) -> None:
    # The colossus (reach 7 + 1 + 0.5 = 8.5) fires on enemy zealot 13, 6 east of it, at
    # loop 0. The line runs from the target 2 further east, 0.5 + victim radius wide.
    # Per attack 10 (+5 vs light), 2 attacks: a zealot's shield 50 -> 20 (shield armor 0);
    # a stalker (armored, not light) 80 -> 60. Hit: zealot 14 at (17.5, 16.4) (1.5 along,
    # 0.4 aside), zealot 15 at (18.9, 16) (0.9 past the end), stalker 10 at (17, 15.4)
    # (0.6 aside <= 1.125). Missed: zealot 16 at (16, 17.2) (1.2 aside), zealot 17 at
    # (14.5, 16) (1.5 behind), the own zealot 4 on the line.
    env = make_env("1c3s5z")
    placed = {
        0: (10.0, 16.0),
        4: (17.0, 16.2),
        10: (17.0, 15.4),
        13: (16.0, 16.0),
        14: (17.5, 16.4),
        15: (18.9, 16.0),
        16: (16.0, 17.2),
        17: (14.5, 16.0),
    }
    scenario(env, placed, disarmed=(4, 10, 13, 14, 15, 16, 17))
    result = act(env, {0: ATTACK_0 + 4})  # enemy index 4 = unit 13
    shield = env.units.shield[0].tolist()
    assert [shield[u] for u in (13, 14, 15, 10)] == [20.0, 20.0, 20.0, 60.0]
    assert [shield[u] for u in (16, 17, 4)] == [50.0, 50.0, 50.0]
    assert env.units.health[0, 13:16].tolist() == [100.0, 100.0, 100.0]
    # SMAC's reward: 30 + 30 + 30 + 20 shield points dealt, scaled by 1870 / 20.
    assert float(result.reward[0]) == pytest.approx(110 / (1870 / 20))


def test_baneling_explodes_and_dies(make_env: MakeEnv, scenario: Scenario) -> None:
    # Ally baneling 0 attacks enemy zergling 24, 0.5 away (reach 0.25 + 0.375 + 0.375):
    # it explodes at loop 0 and dies. Within 2.2 + 0.375 of its centre: zerglings 24 and
    # 25 (light: 16 + 19 = 35 -> dead) and baneling 44 (16 -> 14, then 8 loops of
    # regeneration). Zergling 26 (2.7 away) and the own zergling 4 are untouched.
    env = make_env("bane_vs_bane")
    placed = {
        0: (16.0, 16.0),
        4: (15.0, 16.0),
        24: (16.5, 16.0),
        25: (18.0, 16.0),
        26: (18.7, 16.0),
        44: (16.0, 17.5),
    }
    scenario(env, placed, disarmed=(4, 24, 25, 26, 44))
    act(env, {0: ATTACK_0})
    health = env.units.health[0]
    assert float(health[0]) == 0.0  # the baneling itself
    assert float(health[24]) == 0.0 and float(health[25]) == 0.0
    assert float(health[44]) == pytest.approx(14.0 + 8 * REGEN_PER_LOOP)
    assert float(health[26]) == 35.0 and float(health[4]) == 35.0


def test_banelings_cannot_hit_air_and_colossus_splash_spares_air() -> None:
    from marl.envs.battle.sim import type_columns
    from marl.envs.battle.units import type_index

    cols = type_columns(torch.device("cpu"))
    medivac = type_index("medivac")
    for unit in ("baneling", "colossus", "zealot", "zergling", "marauder"):
        assert not bool(cols.can_hit[type_index(unit), medivac]), unit
    for unit in ("marine", "stalker", "hydralisk"):
        assert bool(cols.can_hit[type_index(unit), medivac]), unit


def test_zerg_regeneration(make_env: MakeEnv, scenario: Scenario) -> None:
    # 0.2734 hp per game-second: 10 steps = 80 loops = 5 game-s -> +1.367; capped at the
    # maximum (80) and nothing for the dead.
    env = make_env("6h_vs_8z")
    scenario(env, {0: (10.0, 8.0), 1: (11.0, 8.0), 6: (20.0, 19.0)}, disarmed=(6,),
             health={0: 40.0, 1: 79.9})  # fmt: skip
    for _ in range(10):
        act(env, {})
    assert float(env.units.health[0, 0]) == pytest.approx(40.0 + 80 * REGEN_PER_LOOP, abs=1e-3)
    assert float(env.units.health[0, 1]) == 80.0
    assert float(env.units.health[0, 2]) == 0.0
    assert float(env.units.health[0, 6]) == 100.0  # a zealot: no regeneration
