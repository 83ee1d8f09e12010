"""Terrain: walls, the corridor's choke, the 2c_vs_64zg plateau, waypoints round walls.

corridor: allies 0-5 zealots (radius 0.5), enemies 6-29 zerglings (0.375); pathable:
lower-left x 1-16, y 1-13, upper-right x 11-31, y 13-31, joined by the choke rectangle
x 11-16, y 11-15. 2c_vs_64zg: allies 0-1 colossi (radius 1), enemies 2-65 zerglings;
the plateau x 7-25, y 13-21 has cliff rows y 12-13 and 21-22 (x 5-27) and ramps on
its west and east sides.
"""

from __future__ import annotations

import pytest
import torch
from conftest import MakeEnv, Scenario

from marl.envs.battle.env import BattleEnv
from marl.envs.battle.frame import Rect
from marl.envs.battle.maps import CORRIDOR, PLATEAU_GROUND

STOP, NORTH, SOUTH, EAST, WEST, ATTACK_0 = 1, 2, 3, 4, 5, 6
TOL = 1e-4


def inside(point: list[float], rects: tuple[Rect, ...], radius: float) -> bool:
    """The centre lies in the union of ``rects`` shrunk by ``radius``."""
    x, y = point
    return any(
        r.x0 + radius - TOL <= x <= r.x1 - radius + TOL
        and r.y0 + radius - TOL <= y <= r.y1 - radius + TOL
        for r in rects
    )


def step(env: BattleEnv, actions: list[int]) -> bool:
    return bool(env.step(torch.tensor([actions])).terminated[0])


def test_corridor_wall_blocks_and_the_unit_walks_through_the_choke(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    # The zealot at (8, 12.4) is under the wall (nothing is pathable at x < 11, y >= 13):
    # north is unavailable. Ordered to attack a (disarmed) zergling at (12, 14.5), 4.5
    # away across the wall, it walks east under the wall into the choke, never through
    # it, and kills the zergling.
    env = make_env("corridor")
    scenario(env, {0: (8.0, 12.4), 6: (12.0, 14.5)}, disarmed=(6,))
    avail = env.avail_actions()[0, 0]
    assert not bool(avail[NORTH]) and bool(avail[SOUTH]) and bool(avail[ATTACK_0])
    path = []
    for _ in range(20):
        ended = step(env, [ATTACK_0] + [0] * 5)
        path.append(env.units.pos[0, 0].tolist())
        if ended:
            break
    assert ended and float(env.units.health[0, 6]) == 0.0
    assert all(inside(p, CORRIDOR, 0.5) for p in path)
    assert all(p[1] <= 12.5 + TOL for p in path if p[0] < 11.5 - TOL)


def test_corridor_clamps_a_unit_placed_in_the_wall(make_env: MakeEnv, scenario: Scenario) -> None:
    # (5, 16) is wall; the nearest pathable centre of a zealot is (5, 12.5).
    env = make_env("corridor")
    scenario(env, {0: (5.0, 16.0), 6: (25.0, 25.0)}, disarmed=(6,))
    assert env.units.pos[0, 0].tolist() == pytest.approx([5.0, 12.5])


def test_corridor_zerglings_attack_move_round_the_wall(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    # A zergling at (25, 16) attack-moves to (4.5, 4.3). The straight line meets the
    # upper area's south wall at x ~ 19.7; the zergling goes by the choke (x 11-16)
    # instead and arrives in the lower-left area.
    env = make_env("corridor")
    scenario(env, {0: (29.0, 29.0), 6: (25.0, 16.0)}, disarmed=(0, 6))
    path = []
    for _ in range(40):
        step(env, [STOP] + [0] * 5)
        path.append(env.units.pos[0, 6].tolist())
    assert all(inside(p, CORRIDOR, 0.375) for p in path)
    crossing = [p for p in path if 12.0 < p[1] < 14.0]
    assert crossing and all(11.0 <= p[0] <= 16.0 for p in crossing)
    assert path[-1] == pytest.approx([4.5, 4.3], abs=0.2)


def test_colossus_walks_over_the_cliff(make_env: MakeEnv, scenario: Scenario) -> None:
    # Move availability uses SMAC's pathing grid (cliff cells are not pathable), probing
    # 1 away; the move goes 2 away at 1.125 per step. From y = 14.05 south probes cell
    # 13 (plateau): the colossus walks to 12.925, into the cliff row. There south probes
    # cell 11 (ground): it walks on to 11.8, below the cliff.
    env = make_env("2c_vs_64zg")
    scenario(env, {0: (16.0, 14.05), 2: (30.0, 2.0)}, disarmed=(2,))
    ys = []
    for _ in range(2):
        assert bool(env.avail_actions()[0, 0, SOUTH])
        step(env, [SOUTH, 0])
        ys.append(float(env.units.pos[0, 0, 1]))
    assert ys == pytest.approx([12.925, 11.8])
    # At y = 13.5 the probe hits the cliff row: south is not available.
    scenario(env, {0: (16.0, 13.5), 2: (30.0, 2.0)}, disarmed=(2,))
    assert not bool(env.avail_actions()[0, 0, SOUTH])


def test_zergling_cannot_climb_the_cliff_and_takes_the_ramp(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    # A zergling at (16, 10), right under the cliff, attacks the colossus on the plateau
    # at (16, 16), 6 away. It never crosses the cliff rows (x 5-27): it runs west to
    # the strip, up the west ramp, and reaches the colossus (melee reach 1.475).
    env = make_env("2c_vs_64zg")
    scenario(env, {0: (16.0, 16.0), 2: (16.0, 10.0)}, disarmed=(0,))
    path = []
    for _ in range(25):
        step(env, [STOP, 0])
        path.append(env.units.pos[0, 2].tolist())
    assert all(inside(p, PLATEAU_GROUND, 0.375) for p in path)
    assert min(p[0] for p in path) < 5.0  # via the west strip and ramp
    gap = (env.units.pos[0, 2] - env.units.pos[0, 0]).norm().item()
    assert gap <= 1.475 + 1e-3 and float(env.units.shield[0, 0]) < 150.0


def test_cliff_rows_clamp_ground_units_only(make_env: MakeEnv, scenario: Scenario) -> None:
    env = make_env("2c_vs_64zg")
    scenario(env, {0: (16.0, 12.5), 2: (16.0, 12.5)}, disarmed=(0, 2))
    assert env.units.pos[0, 0].tolist() == pytest.approx([16.0, 12.5])  # colossus
    assert env.units.pos[0, 2].tolist() == pytest.approx([16.0, 11.625])  # zergling


@pytest.mark.parametrize(
    "map_name", ["corridor", "2c_vs_64zg", "so_many_baneling", "bane_vs_bane", "2m_vs_1z"]
)
def test_random_play_stays_on_pathable_ground(map_name: str) -> None:
    env = BattleEnv(map_name, batch_size=2, seed=1)
    gen = torch.Generator().manual_seed(0)
    ground = env.spec.pathable
    for _ in range(30):
        avail = env.avail_actions().float()  # (2, N, A)
        flat = torch.multinomial(avail.view(-1, avail.shape[-1]), 1, generator=gen)
        env.step(flat.view(avail.shape[:2]))
        for b in range(2):
            for u, name in enumerate(env.tab.names(b)):
                if name in ("colossus", "medivac"):
                    continue
                point = env.units.pos[b, u].tolist()
                assert inside(point, ground, float(env.tab.radius[b, u])), (map_name, u, point)


@pytest.mark.parametrize(
    "values", [[[-1.0, 0.0]], [[-1.0, 0.5]], [[0.0, 0.0]], [[2.0, -3.0]], torch.zeros(0, 2)]
)
def test_busy_above_is_busy_of_the_comparison(values: list | torch.Tensor) -> None:
    from marl.envs.battle import terrain

    x = torch.as_tensor(values, dtype=torch.float32)
    assert terrain.busy_above(x, 0.0) == terrain.busy(x > 0)
