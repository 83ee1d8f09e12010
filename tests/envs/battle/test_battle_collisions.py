"""Unit collisions and the stock AI's target choice, worked by hand.

Units have their SC2 radii and do not overlap: after walking, the unit that walked into
another takes the overlap (both half when both did), turned by ``sim.SLIDE`` so units
meeting head-on slide past. Colossi walk over small ground units, air units over
ground ones, and a static unit is never pushed. Envs here play one game loop per step
(``step_mul=1``) where the test checks every loop. Units are indexed allies first.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import KERNELS, MakeEnv, Scenario, use_kernel

from marl.envs.battle import maps, sim
from marl.envs.battle.env import BattleEnv
from marl.envs.battle.frame import Rect
from marl.envs.battle.maps import Group, MapSpec
from marl.envs.battle.sim import ATTACK, NEIGHBOURS, contacts
from marl.envs.battle.units import MELEE_RANGE

STOP, EAST, WEST, ATTACK_0 = 1, 4, 5, 6
TOLERANCE = 0.02  # overlap allowed after a loop, in map units


def step(env: BattleEnv, actions: dict[int, int]) -> None:
    """Agents in ``actions`` act, the other living agents stop, the dead no-op."""
    row = env.avail_actions()[0, :, STOP].long()  # (N,) 1 alive, 0 dead
    for i, a in actions.items():
        row[i] = a
    env.step(row.unsqueeze(0))


def overlaps(env: BattleEnv, units: list[int] | None = None) -> torch.Tensor:
    """r_u + r_v - |u - v| over pairs of living units (of ``units``), (K, K)."""
    pos, radius = env.units.pos[0], env.tab.radius[0]  # (U, 2), (U,)
    keep = torch.tensor(units) if units is not None else (env.units.health[0] > 0).nonzero()[:, 0]
    gap = torch.cdist(pos[keep], pos[keep])  # (K, K)
    deep = radius[keep].unsqueeze(1) + radius[keep].unsqueeze(0) - gap  # (K, K)
    return deep.fill_diagonal_(-math.inf)


def in_reach(env: BattleEnv, target: int, attackers: slice) -> int:
    """Living attackers whose edge is within melee range of ``target``'s edge."""
    pos, radius, live = env.units.pos[0], env.tab.radius[0], env.units.health[0] > 0
    gap = (pos[attackers] - pos[target]).norm(dim=-1)  # (K,)
    reach = radius[target] + radius[attackers] + MELEE_RANGE + 1e-3  # (K,)
    return int(((gap <= reach) & live[attackers]).sum())


def ring(big: float, small: float) -> int:
    """How many units of radius ``small`` fit round one of radius ``big`` in melee reach."""
    return math.floor(math.pi / math.asin(small / (big + small + MELEE_RANGE)))


def test_two_units_ordered_through_each_other_slide_past(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    env = make_env("3m", step_mul=1)
    scenario(env, {0: (10.0, 16.0), 1: (14.0, 16.0), 5: (30.0, 24.0)}, disarmed=(5,))
    worst = -math.inf
    for _ in range(120):  # 7.5 game-s: each walks 2.25 per second, east and west
        step(env, {0: EAST, 1: WEST})
        worst = max(worst, float(overlaps(env, [0, 1]).max()))
    assert worst <= TOLERANCE
    x = env.units.pos[0, :2, 0]  # (2,)
    assert float(x[0]) > 14.0 and float(x[1]) < 10.0  # they passed each other


def test_without_collisions_they_walk_through_each_other(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    env = make_env("3m", step_mul=1, collisions=False)
    scenario(env, {0: (10.0, 16.0), 1: (14.0, 16.0), 5: (30.0, 24.0)}, disarmed=(5,))
    worst = -math.inf
    for _ in range(40):
        step(env, {0: EAST, 1: WEST})
        worst = max(worst, float(overlaps(env, [0, 1]).max()))
    assert worst > 0.6  # nearly on one point (0.0625 apart at the closest loop)
    assert env.units.pos[0, :2, 1].tolist() == [16.0, 16.0]  # straight lines


def most_in_reach_of_ally_0(env: BattleEnv, at: tuple[float, float], steps: int) -> int:
    """Ally 0 stands at ``at``, unkillable, every other ally dead, everybody disarmed; the
    enemies come. The most enemies in melee reach of it after any of ``steps`` steps."""
    u, n = env.tab.n_units, env.n_agents
    pos = env.units.pos[0].clone()  # (U, 2)
    pos[0] = torch.tensor(at)
    health = env.tab.health_max[0].clone()  # (U,)
    health[1:n] = 0.0
    health[0] = 1e6
    env.set_unit_state(pos=pos, health=health, cooldown=torch.full((u,), 1e9))
    most = 0
    for _ in range(steps):
        step(env, {})
        most = max(most, in_reach(env, 0, slice(n, u)))
    return most


def test_zerglings_fill_the_ring_round_a_zealot_and_wait_behind(make_env: MakeEnv) -> None:
    # corridor: 24 zerglings attack-move on one zealot that stands still (the other
    # zealots dead, everybody disarmed). At most ring(0.5, 0.375) = 7 fit in reach.
    env = make_env("corridor")
    most = most_in_reach_of_ally_0(env, (20.0, 20.0), 60)
    assert ring(0.5, 0.375) == 7
    assert 6 <= most <= 7  # the ring fills, never past what fits
    assert float(overlaps(env).max()) <= 0.35  # the crowd behind stays loose


def test_zerglings_ring_a_colossus_they_may_walk_under(make_env: MakeEnv) -> None:
    # 2c_vs_64zg: the zerglings attack the colossi; one colossus is left, standing. The
    # colossus (massive) does not push zerglings, but those in reach stand and the rest
    # are held behind them: never more than ring(1.0, 0.375) = 12 in reach.
    most = most_in_reach_of_ally_0(make_env("2c_vs_64zg"), (16.0, 16.0), 30)
    assert ring(1.0, 0.375) == 12
    assert 8 <= most <= 12


def test_layers_colossus_over_zerglings_colossi_collide(make_env: MakeEnv) -> None:
    env = make_env("2c_vs_64zg", step_mul=1)
    u, n = env.tab.n_units, env.n_agents
    pos = env.units.pos[0].clone()  # (U, 2)
    pos[0] = torch.tensor([10.0, 16.0])  # colossus 0
    pos[1] = torch.tensor([13.0, 16.0])  # colossus 1
    pos[n] = torch.tensor([10.0, 16.0])  # a zergling right under colossus 0
    health = env.tab.health_max[0].clone()  # (U,)
    health[n + 1 :] = 0.0
    env.set_unit_state(pos=pos, health=health, cooldown=torch.full((u,), 1e9))
    step(env, {0: STOP, 1: STOP})
    assert float(overlaps(env, [0, n]).max()) > 1.3  # the zergling stands under colossus 0
    for _ in range(40):
        step(env, {0: EAST, 1: WEST})
        assert float(overlaps(env, [0, 1]).max()) <= TOLERANCE  # colossi do not overlap


def test_a_choke_passes_units_in_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two rooms joined by a passage 1.5 wide: a zealot (radius 0.5) fits, two abreast
    # (2.0) do not. Four enemy zealots attack-move from the west room to the east one
    # (the one ally, a zergling, waits there); they go through one behind the other.
    spec = MapSpec(
        "choke_test", (Group("zergling", 1, (28.0, 16.0)),), (Group("zealot", 4, (6.0, 16.0)),),
        400, "zealots", 0, "Z", "P", attack_target=(25.0, 16.0),
        pathable=(Rect(2.0, 10.0, 12.0, 22.0), Rect(11.0, 15.25, 21.0, 16.75),
                  Rect(20.0, 10.0, 30.0, 22.0)),
    )  # fmt: skip
    monkeypatch.setitem(maps.MAPS, "choke_test", spec)
    env = BattleEnv("choke_test", batch_size=1, seed=0, step_mul=1)
    env.set_unit_state(cooldown=torch.full((5,), 1e9), health=torch.tensor([1e6] + [100.0] * 4))
    zealots = [1, 2, 3, 4]
    worst, abreast = -math.inf, 0
    for _ in range(300):
        step(env, {})
        worst = max(worst, float(overlaps(env, zealots).max()))
        x = env.units.pos[0, 1:, 0]  # (4,)
        inside = x[(x > 12.5) & (x < 19.5)]  # wholly in the passage
        gaps = (inside.unsqueeze(0) - inside.unsqueeze(1)).abs()  # (K, K)
        abreast = max(abreast, int((gaps + torch.eye(len(inside)) * 9 < 0.9).sum()))
    assert worst <= 0.2  # the wall's clamp at the mouth may undo a push for a loop
    assert abreast == 0  # in the passage, no two within 0.9 of each other along it
    assert bool((env.units.pos[0, 1:, 0] > 20.0).all())  # all four came through


def test_an_enemy_turns_on_the_ally_that_attacks_it(make_env: MakeEnv, scenario: Scenario) -> None:
    # 3s_vs_3z: enemy zealot 3 acquires stalker 0, the nearest (3 away, in sight), and
    # walks to it. Stalker 1, 5 away, attacks the zealot (in its reach 6 + 0.625 + 0.5):
    # SC2's AI prefers a unit attacking it, so the zealot turns on stalker 1.
    env = make_env("3s_vs_3z", step_mul=1)
    scenario(env, {0: (13.0, 16.0), 1: (21.0, 16.0), 3: (16.0, 16.0)}, disarmed=(0, 1, 3))
    step(env, {0: STOP, 1: STOP})
    assert int(env.units.target[0, 3]) == 0
    step(env, {0: STOP, 1: ATTACK_0})
    assert int(env.units.target[0, 3]) == 1


def test_an_enemy_switches_to_an_ally_within_its_weapon_range(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    # 3m: enemy marine 3 (reach 5.75) holds ally 0 at 5 as its target; ally 0 walks away
    # west out of reach while ally 1 stands 5.5 away: the enemy takes ally 1 (in range)
    # instead of chasing.
    env = make_env("3m", step_mul=1)
    scenario(env, {0: (15.0, 16.0), 1: (20.0, 10.5), 3: (20.0, 16.0)}, disarmed=(0, 1, 3))
    step(env, {0: STOP, 1: STOP})
    assert int(env.units.target[0, 3]) == 0
    for _ in range(8):
        step(env, {0: WEST, 1: STOP})
    assert int(env.units.target[0, 3]) == 1


def test_2c_vs_64zg_zerglings_are_ordered_to_attack_the_colossi(make_env: MakeEnv) -> None:
    env = make_env("2c_vs_64zg")
    n = env.n_agents
    step(env, {})
    s = env.units
    assert bool((s.order[0, n:] == ATTACK).all())
    first = s.target[0, n:]  # (M,) each zergling's colossus: the nearer one
    assert set(first.tolist()) <= {0, 1}
    health = s.health[0].clone()  # (U,)
    health[0] = 0.0
    cooldown = torch.full((env.tab.n_units,), 1e9)
    env.set_unit_state(health=health, cooldown=cooldown)
    step(env, {})
    assert bool((env.units.target[0, n:] == 1).all())  # all on the colossus left


def test_smacv2_enemies_hunt_the_nearest_ally_every_half_second() -> None:
    # protoss_5_vs_5: put every ally in a corner, far out of the enemies' sight: each
    # 0.5 game-s (8 loops) the map re-orders the enemies without a target to attack-move
    # to the nearest ally's position, so they come.
    env = BattleEnv("protoss_5_vs_5", batch_size=1, seed=0)
    u, n = env.tab.n_units, env.n_agents
    pos = env.units.pos[0].clone()  # (U, 2)
    pos[:n] = torch.tensor([[1.0 + i, 1.0] for i in range(n)])
    pos[n:] = torch.tensor([[31.0 - i, 31.0] for i in range(u - n)])
    env.set_unit_state(pos=pos, cooldown=torch.full((u,), 1e9))
    before = (env.units.pos[0, n:] - pos[:n].mean(0)).norm(dim=-1)  # (M,)
    for _ in range(4):
        step(env, {})
    after = (env.units.pos[0, n:] - pos[:n].mean(0)).norm(dim=-1)  # (M,)
    assert bool((after < before - 3.0).all())


def test_big_maps_check_each_units_nearest_partners(make_env: MakeEnv) -> None:
    # 2c_vs_64zg (66 units): each unit checks its 8 nearest collision partners in a
    # step. A colossus has one partner (the other colossus; zerglings pass under it),
    # a zergling the 8 zerglings nearest to it.
    env = make_env("2c_vs_64zg")
    near = contacts(env.units, env.tab)
    assert near is not None and near.touch.shape == (1, 66, NEIGHBOURS)
    n = env.n_agents
    partners = near.partners.view(1, 66, NEIGHBOURS)[0]  # (U, K)
    real = near.touch[0] > 0  # (U, K)
    assert partners[0][real[0]].tolist() == [1]  # colossus 0: only colossus 1
    pos = env.units.pos[0]  # (U, 2)
    gap = (pos[n:] - pos[n]).norm(dim=-1)  # (M,) zergling n to every zergling
    gap[0] = math.inf
    chosen = gap[partners[n] - n].sort().values  # (K,) distances of its partners
    assert torch.allclose(chosen, gap.sort().values[:NEIGHBOURS])  # the nearest (ties: any)
    assert contacts(make_env("3m").units, make_env("3m").tab) is None  # small: every pair


def reference_pushes(
    pos: torch.Tensor,
    tab: sim.UnitTable,
    live: torch.Tensor,
    step: torch.Tensor,
    partners: list[list[list[int]]],
) -> torch.Tensor:
    """The collision pass written out pair by pair: positions after pushing, (B, U, 2).
    ``partners[b][u]``: the units u checks in copy b."""
    out = pos.clone()
    for b in range(pos.shape[0]):
        where = pos[b] + tab.tie + (~live[b]).unsqueeze(-1) * tab.away  # (U, 2)
        for u, others in enumerate(partners[b]):
            total = torch.zeros(2)
            for v in others:
                touch = float(tab.touch[b, u, v])
                gap = where[u] - where[v]
                dist = float(gap.norm())
                if touch - dist <= 0:
                    continue
                into = float(step[b, u] @ gap) < 0
                back = float(step[b, v] @ gap) > 0
                share = float(into) if into != back else float(tab.push[b, u, v])
                total += gap * (touch - dist) * share / max(dist, 1e-6)
            c, s = math.cos(sim.SLIDE), math.sin(sim.SLIDE)
            out[b, u] += torch.stack([total[0] * c - total[1] * s, total[0] * s + total[1] * c])
    return out


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    "map_name", ["2s3z", "1c3s5z", "2s_vs_1sc", "MMM2", "2c_vs_64zg", "protoss_5_vs_5"]
)
def test_collision_pass_equals_its_pair_by_pair_definition(
    map_name: str, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Units dropped at random into a small square, some dead, random walking steps: the
    # batched pass moves every unit as the definition written out pair by pair does.
    # torch ops: every pair on small maps, K partners on big ones; the C kernel: every
    # pair. Layers (colossus), a static unit (spine crawler), air (medivac), per-copy
    # teams (SMACv2).
    use_kernel(kernel, monkeypatch)
    env = BattleEnv(map_name, batch_size=3, seed=0)
    gen = torch.Generator().manual_seed(0)
    b, u = 3, env.tab.n_units
    units = env.units
    units.pos = 10 + 4 * torch.rand(b, u, 2, generator=gen)  # (B, U, 2) crowded
    units.health[:, ::5] = 0  # some dead
    live = units.health > 0  # (B, U)
    step = (torch.rand(b, u, 2, generator=gen) - 0.5) * live.unsqueeze(-1)  # (B, U, 2)
    near = None if sim.every_pair(env.tab, b, compiled=False) else contacts(units, env.tab)
    if near is None:
        partners = [[[v for v in range(u) if v != w] for w in range(u)]] * b
    else:
        rows = near.partners.view(near.touch.shape)  # (B, U, K)
        real = near.touch > 0  # (B, U, K) slots with a partner
        partners = [[rows[c, w, real[c, w]].tolist() for w in range(u)] for c in range(b)]
    got = sim._separate(units.pos, env.tab, live, step, near)
    want = reference_pushes(units.pos, env.tab, live, step, partners)
    assert not torch.equal(got, units.pos)  # something was pushed
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("map_name", ["2c_vs_64zg", "protoss_5_vs_5"])
def test_compiled_pass_in_planes_equals_the_pair_by_pair_definition(map_name: str) -> None:
    # env.compile from PLANES_MIN_COPIES copies: every pair, laid out copies-last and
    # compiled on its own (a few seconds of compiling per map). Layers (colossus over
    # zerglings), per-copy teams (SMACv2).
    env = BattleEnv(map_name, batch_size=3, seed=0)
    gen = torch.Generator().manual_seed(1)
    b, u = 3, env.tab.n_units
    pos = 10 + 4 * torch.rand(b, u, 2, generator=gen)  # (B, U, 2) crowded
    live = torch.rand(b, u, generator=gen) > 0.2  # (B, U) some dead
    step = (torch.rand(b, u, 2, generator=gen) - 0.5) * live.unsqueeze(-1)  # (B, U, 2)
    tab = env.tab
    got = sim._separate_planes_fused()(pos, live, step, tab.tie, tab.away, tab.touch, tab.push)
    everyone = [[[v for v in range(u) if v != w] for w in range(u)]] * b
    want = reference_pushes(pos, tab, live, step, everyone)
    assert not torch.equal(got, pos)  # something was pushed
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_compiled_big_batches_go_to_planes_without_contacts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tab = BattleEnv("corridor", batch_size=1, seed=0).tab  # 30 units
    if tab.native:  # the C kernel checks every pair eager, and as the pass apart compiled
        assert sim.every_pair(tab, 1, compiled=False)
        assert sim.pass_apart(tab, sim.PLANES_MIN_COPIES, compiled=True)
        assert not sim.in_planes(tab, sim.PLANES_MIN_COPIES, compiled=True)
        assert not sim.every_pair(tab, sim.PLANES_MIN_COPIES - 1, compiled=True)  # fused
    use_kernel("torch", monkeypatch)  # torch ops: K partners eager, planes compiled
    tab = BattleEnv("corridor", batch_size=1, seed=0).tab
    assert not sim.every_pair(tab, sim.PLANES_MIN_COPIES, compiled=False)
    assert not sim.every_pair(tab, sim.PLANES_MIN_COPIES - 1, compiled=True)
    assert sim.every_pair(tab, sim.PLANES_MIN_COPIES, compiled=True)
    assert sim.every_pair(BattleEnv("3m", batch_size=1, seed=0).tab, 1, compiled=False)
    # Small maps compiled to scalar loops go to planes from PLANES_MIN_COPIES_SMALL copies;
    # 3s5z's 16 units fill the vectors, so its loop's own pass stays.
    small, many = BattleEnv("2s3z", batch_size=1, seed=0).tab, sim.PLANES_MIN_COPIES_SMALL
    assert sim.in_planes(small, many, compiled=True)
    assert not sim.in_planes(small, many - 1, compiled=True)
    assert not sim.in_planes(BattleEnv("3s5z", batch_size=1, seed=0).tab, many, compiled=True)
    xy = torch.arange(24.0).view(3, 4, 2)  # (B, U, 2)
    assert torch.equal(sim.copies_last(xy), xy.permute(1, 2, 0))  # (U, 2, B)
    one = torch.ones(1, 4, 2)  # one copy: the planes are a copy, not a view of it
    assert sim.copies_last(one).data_ptr() != one.data_ptr()


@pytest.mark.slow
def test_compiled_corridor_in_planes_plays_like_eager_with_every_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The torch ops: corridor at PLANES_MIN_COPIES copies, compiled (every pair,
    copies-last) and eager told to check every pair too: the same positions to float
    rounding over the first steps (rounding differences grow once units fight; about
    20 s of compiling). Eager itself checks each unit's 8 nearest partners, which on
    corridor's packed zerglings parts from every pair within 3 steps in about one copy
    in seven."""
    use_kernel("torch", monkeypatch)
    b = sim.PLANES_MIN_COPIES
    eager = BattleEnv("corridor", batch_size=b, seed=3)
    eager.tab = dataclasses.replace(eager.tab, near_k=0)
    envs = [eager, BattleEnv("corridor", batch_size=b, seed=3, compile=True)]
    gen = [torch.Generator().manual_seed(5) for _ in envs]
    for env in envs:
        env.reset()
    for _ in range(5):
        for env, g in zip(envs, gen, strict=True):
            avail = env.avail_actions().float()  # (B, N, A)
            env.step(torch.multinomial(avail.flatten(0, 1), 1, generator=g).view(b, -1))
        torch.testing.assert_close(envs[0].units.pos, envs[1].units.pos, rtol=0, atol=1e-3)
