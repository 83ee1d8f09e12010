"""SMACv2-style maps: teams and start positions drawn per copy and episode, reproducibly."""

from __future__ import annotations

import copy

import pytest
import torch

from marl.envs.battle.env import BattleEnv
from marl.envs.battle.maps import RACES, SMACV2_NAMES, get_map
from marl.envs.battle.rng import CopyRNG
from marl.envs.battle.smacv2 import draw_positions, draw_teams
from marl.envs.battle.units import TYPE_NAMES


def team_names(env: BattleEnv, copy_index: int) -> tuple[str, ...]:
    return env.tab.names(copy_index)


@pytest.mark.parametrize("race", ["protoss", "terran", "zerg"])
def test_teams_have_the_race_and_sizes(race: str) -> None:
    env = BattleEnv(f"{race}_10_vs_11", batch_size=8, seed=0)
    allowed = set(RACES[race][0])
    for b in range(8):
        names = team_names(env, b)
        assert len(names) == 21 and set(names) <= allowed
        allies, enemies = names[:10], names[10:]
        assert list(allies) == sorted(allies)  # SMAC's agent order (RL ids alphabetical)
        assert sorted(enemies[:10]) == sorted(allies)  # enemies copy the ally team
    assert env.smac_env_info()["n_agents"] == 10


def test_same_seed_same_team_other_seed_or_episode_another() -> None:
    a = BattleEnv("protoss_5_vs_5", batch_size=4, seed=7)
    b = BattleEnv("protoss_5_vs_5", batch_size=4, seed=7)
    c = BattleEnv("protoss_5_vs_5", batch_size=4, seed=8)
    assert torch.equal(a.tab.types, b.tab.types)
    torch.testing.assert_close(a.units.pos, b.units.pos, rtol=0, atol=0)
    assert not torch.equal(a.units.pos, c.units.pos)
    starts = [a.units.pos.clone()]
    for _ in range(3):
        a.reset()
        starts.append(a.units.pos.clone())
    assert len({tuple(p.flatten().tolist()) for p in starts}) == 4  # new positions each episode
    teams = set()
    for _ in range(6):
        b.reset()
        teams.add(tuple(b.tab.types.flatten().tolist()))
    assert len(teams) > 1  # new teams in later episodes


def test_copy_zero_of_a_batch_draws_like_a_single_env() -> None:
    single = BattleEnv("zerg_5_vs_5", batch_size=1, seed=3)
    batch = BattleEnv("zerg_5_vs_5", batch_size=5, seed=3)
    for _ in range(3):
        assert torch.equal(batch.tab.types[:1], single.tab.types)
        torch.testing.assert_close(batch.units.pos[:1], single.units.pos, rtol=0, atol=0)
        single.reset()
        batch.reset()
    assert len({tuple(t) for t in batch.tab.types.tolist()}) > 1  # copies differ


def test_weights_and_exceptions() -> None:
    # 2048 copies x 5 draws: type frequencies near 0.45 / 0.45 / 0.1, and no team of
    # medivacs only (Terran's exception type).
    team = get_map("terran_5_vs_5").team
    assert team is not None
    allies, enemies = draw_teams(CopyRNG(0, 2048, torch.device("cpu")), team)  # (B, 5) each
    names = [TYPE_NAMES[k] for k in allies.flatten().tolist()]
    for unit, weight in zip(team.unit_types, team.weights, strict=True):
        assert names.count(unit) / len(names) == pytest.approx(weight, abs=0.02)
    medivac = TYPE_NAMES.index("medivac")
    assert not (allies == medivac).all(1).any()
    assert torch.equal(allies, enemies)


def test_start_positions_surround_or_reflect() -> None:
    team = get_map("protoss_10_vs_11").team
    assert team is not None
    allies, enemies, surrounded = draw_positions(CopyRNG(1, 512, torch.device("cpu")), team)
    assert 0.4 < surrounded.float().mean().item() < 0.6  # p = 0.5
    s, r = surrounded, ~surrounded
    assert (allies[s] == 16.0).all()  # surrounded: every ally at the centre
    corner_side = (enemies[s] - 16.0).abs()  # enemies on the diagonals, >= 2 out per axis
    assert (corner_side >= 2.0 - 1e-5).all() and (corner_side <= 16.0).all()
    assert ((corner_side[..., 0] - corner_side[..., 1]).abs() < 1e-4).all()
    assert (allies[r][..., 0] < 15.0).all()  # reflect: allies left of x = 15
    mirrored = torch.stack([32.0 - allies[r][..., 0], allies[r][..., 1]], -1)  # (R, 10, 2)
    torch.testing.assert_close(enemies[r][:, :10], mirrored)
    assert (enemies[r][:, 10:, 0] >= 16.0).all()  # the extra enemy: right half


def test_env_starts_enemies_on_attack_move_and_reward_uses_first_team() -> None:
    env = BattleEnv("terran_5_vs_5", batch_size=6, seed=2, reward_scale=False)
    first = env._max_reward.clone()  # (6,)
    points = (env.tab.health_max + env.tab.shield_max)[:, 5:].sum(1)  # (6,)
    torch.testing.assert_close(first, 5 * 10 + 200 + points)
    env.reset()
    torch.testing.assert_close(env._max_reward, first)  # fixed at the first reset, as SMACv2


def test_state_dict_round_trip_keeps_the_teams() -> None:
    env = BattleEnv("terran_10_vs_10", batch_size=3, seed=5)
    env.reset()
    saved = copy.deepcopy(env.state_dict())
    gen = torch.Generator().manual_seed(0)

    def play(e: BattleEnv) -> list[torch.Tensor]:
        out = []
        for _ in range(10):
            avail = e.avail_actions().float()  # (3, N, A)
            flat = torch.multinomial(avail.view(-1, avail.shape[-1]), 1, generator=gen)
            out.append(e.step(flat.view(avail.shape[:2])).reward)
            out.append(e.obs())
        return out

    gen.manual_seed(1)
    after = play(env)
    other = BattleEnv("terran_10_vs_10", batch_size=3, seed=99)
    other.load_state_dict(saved)
    assert torch.equal(other.tab.types, saved["types"])
    gen.manual_seed(1)
    again = play(other)
    for x, y in zip(after, again, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_smacv2_names_parse() -> None:
    assert "zerg_20_vs_23" in SMACV2_NAMES
    spec = get_map("zerg_20_vs_23")
    assert (spec.n_agents, spec.n_enemies, spec.unit_type_bits, spec.episode_limit) == (
        20,
        23,
        3,
        200,
    )
    with pytest.raises(ValueError, match="Unknown battle map"):
        get_map("orc_5_vs_5")


def test_own_features_with_position() -> None:
    # SMACv2 own block: health, shield, x / 32, y / 32, type one-hot (stalker, zealot,
    # colossus); the agent's type bits match its unit.
    env = BattleEnv("protoss_5_vs_5", batch_size=2, seed=0, spawn_noise=0.0)
    own = env.obs()[:, :, -7:]  # (2, 5, 7)
    pos = env.units.pos[:, :5] / 32  # (2, 5, 2)
    torch.testing.assert_close(own[..., 2:4], pos)
    assert (own[..., :2] == 1.0).all()
    order = ("stalker", "zealot", "colossus")
    for b in range(2):
        for i, name in enumerate(env.tab.names(b)[:5]):
            assert own[b, i, 4:].tolist() == [float(name == t) for t in order]
