"""SMACv2's use_unit_ranges: per-type sight and shoot ranges in the obs and the masks."""

from __future__ import annotations

import pytest
import torch
from conftest import MakeEnv, Scenario

from marl.envs.battle.units import TYPE_NAMES

# SMACv2's StarCraft2Env.unit_sight_range / unit_shoot_range tables (before the clamp).
SMACV2_SIGHT = {
    "stalker": 10, "zealot": 9, "colossus": 10, "zergling": 8, "baneling": 8,
    "hydralisk": 9, "marine": 9, "marauder": 10, "medivac": 11,
}  # fmt: skip
SMACV2_SHOOT = {
    "stalker": 6, "zealot": 0.1, "colossus": 7, "zergling": 0.1, "baneling": 0.25,
    "hydralisk": 5, "marine": 5, "marauder": 6, "medivac": 4,
}  # fmt: skip

# 2s3z: agents 0-1 stalkers, 2-4 zealots; enemies 5-6 stalkers, 7-9 zealots. An enemy
# row is [attackable, dist, dx, dy, health, shield, type_0, type_1] from obs index 4.
ROW = 8


def enemy_row(obs: torch.Tensor, enemy: int) -> list[float]:
    start = 4 + ROW * (enemy - 5)
    return obs[start : start + ROW].tolist()


def test_ranges_are_smacv2s_tables(make_env: MakeEnv) -> None:
    env = make_env("3m", use_unit_ranges=True, min_attack_range=2.0)
    sight, shoot = env.features._type_sight.tolist(), env.features._type_shoot.tolist()
    for name, value in SMACV2_SIGHT.items():
        k = TYPE_NAMES.index(name)
        assert sight[k] == value
        assert shoot[k] == pytest.approx(max(SMACV2_SHOOT[name], 2.0))


def test_sight_by_type_and_normalisation(make_env: MakeEnv, scenario: Scenario) -> None:
    # Stalker agent 0 at (4, 10.5) (sight 10), zealot agent 2 at (4, 20) (sight 9), 9.5
    # apart. Enemy 5 is 9.5 from the stalker, enemy 7 8.5 and enemy 8 9.5 from the zealot.
    placed = {
        0: (4.0, 10.5),
        2: (4.0, 20.0),
        5: (13.5, 10.5),
        7: (12.5, 20.0),
        8: (4.0 + 9.5 * 0.8, 20.0 - 9.5 * 0.6),
    }
    on, off = make_env("2s3z", use_unit_ranges=True), make_env("2s3z")
    for env in (on, off):
        scenario(env, placed, disarmed=(5, 7, 8))
    stalker, zealot = on.obs()[0, 0], on.obs()[0, 2]
    assert enemy_row(stalker, 5)[1:4] == pytest.approx([0.95, 0.95, 0.0])  # / its own 10
    assert enemy_row(zealot, 7)[1:4] == pytest.approx([8.5 / 9, 8.5 / 9, 0.0])
    assert enemy_row(zealot, 8) == [0.0] * ROW  # 9.5 >= 9
    ally_rows = 4 + 5 * ROW
    assert stalker[ally_rows + ROW : ally_rows + ROW + 4].tolist() == pytest.approx(
        [1.0, 0.95, 0.0, 0.95]
    )  # the stalker sees the zealot (its ally row 1 is agent 2) ...
    assert zealot[ally_rows : ally_rows + ROW].tolist() == [0.0] * ROW  # ... not back
    assert enemy_row(off.obs()[0, 0], 5) == [0.0] * ROW  # SMAC's 9: not seen
    assert torch.equal(on.state(), off.state())  # SMACv2 keeps the state as SMAC


def test_shoot_range_masks_and_attackable_bits(make_env: MakeEnv, scenario: Scenario) -> None:
    # Stalker agent 0 at (4, 10): enemy 5 at 5.9, enemy 6 at 6.1. Zealot agent 2 at
    # (4, 20): enemy 6 at 3.9, enemy 7 at 1.9, enemy 8 at 2.5 (min attack range 2).
    placed = {0: (4.0, 10.0), 2: (4.0, 20.0), 5: (9.9, 10.0), 6: (4.0, 16.1)}
    placed |= {7: (5.9, 20.0), 8: (4.0, 22.5)}
    cases = (({"use_unit_ranges": True}, [0, 0, 1, 0, 0]), ({}, [0, 1, 1, 1, 0]))
    cases += (({"use_unit_ranges": True, "min_attack_range": 4.0}, [0, 1, 1, 1, 0]),)
    for kwargs, zealot_attacks in cases:
        env = make_env("2s3z", **kwargs)
        scenario(env, placed, disarmed=(5, 6, 7, 8))
        avail, obs = env.avail_actions()[0], env.obs()[0]
        assert avail[0, 6:].tolist() == [True, False, False, False, False]  # <= 6
        assert avail[2, 6:].long().tolist() == zealot_attacks
        assert [enemy_row(obs[2], e)[0] for e in (6, 7, 8)] == zealot_attacks[1:4]


def test_medivac_heals_within_its_range(make_env: MakeEnv, scenario: Scenario) -> None:
    # MMM: agent 9 is the medivac (heal range 4 with unit ranges, else 6); marines 2
    # and 3 are 5 and 3.5 away: action 6 + j heals ally j.
    placed = {9: (10.0, 16.0), 2: (15.0, 16.0), 3: (13.5, 16.0), 10: (30.0, 24.0)}
    for kwargs, far in (({"use_unit_ranges": True}, False), ({}, True)):
        env = make_env("MMM", **kwargs)
        scenario(env, placed, disarmed=(10,))
        avail = env.avail_actions()[0, 9]
        assert (avail[6 + 2].item(), avail[6 + 3].item()) == (far, True)


def test_ranges_follow_each_copys_team(make_env: MakeEnv) -> None:
    env = make_env("protoss_5_vs_5", batch_size=8, use_unit_ranges=True)
    for _ in range(2):  # the first team, then the next episode's
        names = [env.tab.names(b)[:5] for b in range(8)]
        assert len(set(names)) > 1  # the copies' teams differ
        expected = [[SMACV2_SIGHT[u] for u in team] for team in names]
        assert env.features.sight.squeeze(-1).tolist() == expected
        shoot = torch.tensor([[max(SMACV2_SHOOT[u], 2.0) for u in team] for team in names])
        assert torch.allclose(env.features.shoot.squeeze(-1), shoot)
        env.reset()


def test_off_or_smacs_ranges_change_nothing(make_env: MakeEnv) -> None:
    # Marines see 9; with min_attack_range 6 they shoot 6: SMAC's fixed ranges, so the
    # per-agent path must give SMAC's obs and masks bit for bit (and 5 must not).
    pos = torch.rand(4, 6, 2, generator=torch.Generator().manual_seed(0)) * 12 + 10
    pos[:, 3] = pos[:, 0] + torch.tensor([5.5, 0.0])  # enemy 0 within 6, not 5
    envs = [
        make_env("3m", batch_size=4, **kwargs)
        for kwargs in ({}, {"use_unit_ranges": True, "min_attack_range": 6.0},
                       {"use_unit_ranges": True})
    ]  # fmt: skip
    for env in envs:
        env.set_unit_state(pos=pos)
    smac, same, marines = envs
    assert torch.equal(same.obs(), smac.obs())
    assert torch.equal(same.avail_actions(), smac.avail_actions())
    assert not torch.equal(marines.avail_actions(), smac.avail_actions())
