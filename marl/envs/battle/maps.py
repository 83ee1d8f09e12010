"""SMAC maps of the battle simulator, as data: one frozen row per map.

Facts from ../shared/reference/battle-spec.md §2: teams, time limits, spawn points,
the enemies' order and the pathable ground. Every map is 32 x 32. A team spawns as a
compact grid around its spawn point (or one point per group where the reference gives
several). The enemies get an attack-move order to the map's target point (2m_vs_1z: a
point drawn uniformly between the two marines' spawns; 2s_vs_1sc: no order at all).

Terrain is a union of rectangles (``frame.Rect``) that the ``cells`` of the reference's
``t3SyncCliffLevel`` grid suggest; see ``terrain.py`` for movement and waypoints:

- most maps: the horizontal strip of ground cells y = 7..24 (``7 <= y < 25``);
- 3s_vs_*: open everywhere;
- 2m_vs_1z and bane_vs_bane: an octagon over x, y = 5..26 (three overlapping
  rectangles: corners cut by 4 cells);
- corridor: a lower-left area (x 1-15, y 1-12) and an upper-right area (x 11-30,
  y 13-30), joined by a choke rectangle over x 11-15, y 11-14 that overlaps both;
- 6h_vs_8z: the box x 7-22, y 7-20; 2s_vs_1sc: the box x 7-20, y 7-24;
- so_many_baneling: a band along the diagonal (seven overlapping 9 x 9 squares
  centred on x = y = 5, 9, ..., 29);
- 2c_vs_64zg: ground around a plateau (x 7-24, y 13-20) whose south and north edges
  (rows y = 12 and y = 21, x 5-26) are cliffs; the plateau is reached by the ramps at
  x 4-6 and 25-27 from the ground strips x < 5 and x >= 27. Colossi ignore cliffs
  (``cliff_pathable`` is the whole map); zerglings go round by the ramps.

Allies are listed in SMAC's agent order: sorted by RL unit type id, which is the
alphabetical order of the type names (marauder < marine < medivac, colossus <
stalker < zealot, baneling < zergling; the simulator then sorts units of one type by
x, y at every reset, as SMAC does). Enemies are listed in the raw API order, which
the simulator keeps.

``TYPE_ONE_HOTS`` gives, per SMAC ``map_type``, the order of the ally and the enemy
unit-type one-hots (SMAC's ``get_unit_type_id``), including its quirk: on stalker +
zealot maps the enemy one-hot puts the zealot first and the ally one-hot the stalker.
The ``*_gen`` rows are SMACv2's (``smacv2.py`` draws those teams).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from marl.envs.battle.frame import Rect
from marl.envs.battle.units import UNIT_TYPES

Point = tuple[float, float]

MAP_SIZE = (32.0, 32.0)  # (width, height) of every SMAC map, camera bounds 0-32
STRIP = (Rect(0.0, 7.0, 32.0, 25.0),)  # ground cells y = 7..24
OPEN = (Rect(0.0, 0.0, 32.0, 32.0),)  # the whole map
ALLY_SPAWN = (9.0, 16.0)
ENEMY_SPAWN = (23.0, 16.0)
OCTAGON = (
    Rect(5.0, 9.0, 27.0, 23.0),
    Rect(7.0, 7.0, 25.0, 25.0),
    Rect(9.0, 5.0, 23.0, 27.0),
)
CORRIDOR = (
    Rect(1.0, 1.0, 16.0, 13.0),  # lower-left area
    Rect(11.0, 11.0, 16.0, 15.0),  # the choke, overlapping both areas
    Rect(11.0, 13.0, 31.0, 31.0),  # upper-right area
)
DIAGONAL_BAND = tuple(
    Rect(max(0.0, c - 4.5), max(0.0, c - 4.5), min(32.0, c + 4.5), min(32.0, c + 4.5))
    for c in (5.0, 9.0, 13.0, 17.0, 21.0, 25.0, 29.0)
)
PLATEAU_GROUND = (
    Rect(0.0, 0.0, 32.0, 12.0),  # south ground (cliff row y = 12 above it)
    Rect(0.0, 22.0, 32.0, 32.0),  # north ground (cliff row y = 21 below it)
    Rect(0.0, 0.0, 5.0, 32.0),  # west ground strip
    Rect(27.0, 0.0, 32.0, 32.0),  # east ground strip
    Rect(3.0, 13.0, 29.0, 21.0),  # west ramp + plateau + east ramp, overlapping the strips
)

# 2c_vs_64zg's t3SyncCliffLevel: the plateau at 128 over x 7-24, y 13-20, reached by
# ramps over y 13-18 graded 72, 88, 104 (x 4-6, west) and 104, 88, 72 (x 25-27, east).
PLATEAU_HEIGHTS = (
    (Rect(7.0, 13.0, 25.0, 21.0), 128 / 255),
    *(
        (Rect(x, 13.0, x + 1.0, 19.0), level / 255)
        for x, level in ((4.0, 72), (5.0, 88), (6.0, 104), (25.0, 104), (26.0, 88), (27.0, 72))
    ),
)

# map_type -> (ally one-hot order, enemy one-hot order), as SMAC's get_unit_type_id.
TYPE_ONE_HOTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "marines": (("marine",), ("marine",)),
    "stalkers": (("stalker",), ("zealot",)),
    "zealots": (("zealot",), ("zergling",)),
    "hydralisks": (("hydralisk",), ("zealot",)),
    "colossus": (("colossus",), ("zergling",)),
    "stalkers_and_zealots": (("stalker", "zealot"), ("zealot", "stalker")),
    "colossi_stalkers_zealots": (
        ("colossus", "stalker", "zealot"),
        ("colossus", "stalker", "zealot"),
    ),
    "MMM": (("marauder", "marine", "medivac"), ("marauder", "marine", "medivac")),
    "bane": (("baneling", "zergling"), ("baneling", "zergling")),
    "protoss_gen": (("stalker", "zealot", "colossus"), ("stalker", "zealot", "colossus")),
    "terran_gen": (("marine", "marauder", "medivac"), ("marine", "marauder", "medivac")),
    "zerg_gen": (("zergling", "hydralisk", "baneling"), ("zergling", "hydralisk", "baneling")),
}
MEDIVAC_MAP_TYPES = ("MMM", "terran_gen")  # SMAC's only_medivac_left applies here


@dataclass(frozen=True)
class Group:
    """``count`` units of one type, spawning around ``spawn`` (None: the team's point)."""

    unit: str
    count: int
    spawn: Point | None = None


@dataclass(frozen=True)
class TeamDistribution:
    """SMACv2's weighted_teams + surrounded_and_reflect for one race and team size."""

    race: str
    n_agents: int
    n_enemies: int
    unit_types: tuple[str, ...]
    weights: tuple[float, ...]
    exceptions: tuple[str, ...]


@dataclass(frozen=True)
class MapSpec:
    """One SMAC map: teams, time limit, spawns, enemy order, terrain and observation facts."""

    name: str
    allies: tuple[Group, ...]
    """Groups in SMAC's agent order (empty for SMACv2 maps: ``team`` draws them)."""
    enemies: tuple[Group, ...]
    """Groups in the raw API order."""
    episode_limit: int
    """Agent steps before a timeout."""
    map_type: str
    """SMAC's map_type (a key of TYPE_ONE_HOTS)."""
    unit_type_bits: int
    """Length of the unit-type one-hot (0 on single-type maps)."""
    a_race: str
    """Race of the agents (P gives shield features)."""
    b_race: str
    """Race of the built-in opponent."""
    ally_spawn: Point = ALLY_SPAWN
    enemy_spawn: Point = ENEMY_SPAWN
    attack_target: Point | None = ALLY_SPAWN
    """Where the enemies attack-move to; None: they get no order (they stay idle)."""
    attack_target_end: Point | None = None
    """If set, the target is drawn uniformly on the segment attack_target-attack_target_end."""
    attack_units: bool = False
    """The map orders the enemies to attack the agents' units themselves (2c_vs_64zg:
    they follow the colossi), not a point: ``attack_target`` is then only their first
    heading."""
    pathable: tuple[Rect, ...] = STRIP
    """Ground: the union of rectangles ground units (and SMAC's pathing grid) may use."""
    cliff_pathable: tuple[Rect, ...] | None = None
    """What cliff walkers (colossi) may use; None: the same as ``pathable``."""
    heights: tuple[tuple[Rect, float], ...] = ()
    """Raised areas and their SMAC height (cliff level / 255), painted in order over the
    ground (64/255 where pathable, else 0): an approximation of SMAC's terrain heights
    (``features.py``)."""
    map_size: Point = MAP_SIZE
    team: TeamDistribution | None = None
    """SMACv2-style random teams and start positions (``smacv2.py``), else None."""

    @property
    def n_agents(self) -> int:
        return self.team.n_agents if self.team else sum(g.count for g in self.allies)

    @property
    def n_enemies(self) -> int:
        return self.team.n_enemies if self.team else sum(g.count for g in self.enemies)

    def ally_units(self) -> list[str]:
        """One unit type name per agent, in agent order (fixed teams only)."""
        return [g.unit for g in self.allies for _ in range(g.count)]

    def enemy_units(self) -> list[str]:
        """One unit type name per enemy, in enemy order (fixed teams only)."""
        return [g.unit for g in self.enemies for _ in range(g.count)]

    def spawn_points(self) -> list[Point]:
        """Spawn point of every unit (allies, then enemies), fixed teams only."""
        return [
            g.spawn or default
            for groups, default in (
                (self.allies, self.ally_spawn),
                (self.enemies, self.enemy_spawn),
            )
            for g in groups
            for _ in range(g.count)
        ]


def _one(unit: str, n: int, at: Point | None = None) -> tuple[Group, ...]:
    return (Group(unit, n, at),)


def _marines(name: str, n_allies: int, n_enemies: int, limit: int) -> MapSpec:
    return MapSpec(
        name, _one("marine", n_allies), _one("marine", n_enemies), limit, "marines", 0, "T", "T"
    )


def _protoss(name: str, allies: tuple[int, int], enemies: tuple[int, int], limit: int) -> MapSpec:
    """A stalker + zealot map: (stalkers, zealots) per side."""
    return MapSpec(
        name,
        (Group("stalker", allies[0]), Group("zealot", allies[1])),
        (Group("stalker", enemies[0]), Group("zealot", enemies[1])),
        limit,
        "stalkers_and_zealots",
        2,
        "P",
        "P",
    )


def _stalkers_vs_zealots(n_zealots: int, limit: int) -> MapSpec:
    name = f"3s_vs_{n_zealots}z"
    return MapSpec(
        name, _one("stalker", 3), _one("zealot", n_zealots), limit, "stalkers", 0, "P", "P",
        pathable=OPEN,
    )  # fmt: skip


def _mmm(name: str, enemies: tuple[int, int, int], limit: int) -> MapSpec:
    """Marines, marauders and a medivac: allies 7/2/1, enemies (marines, marauders, medivacs)."""
    allies = (Group("marauder", 2), Group("marine", 7), Group("medivac", 1))
    foes = (Group("marine", enemies[0]), Group("marauder", enemies[1]))
    return MapSpec(name, allies, (*foes, Group("medivac", enemies[2])), limit, "MMM", 3, "T", "T")


MAPS: dict[str, MapSpec] = {
    m.name: m
    for m in (
        _marines("3m", 3, 3, 60),
        _marines("8m", 8, 8, 120),
        _marines("25m", 25, 25, 150),
        _marines("5m_vs_6m", 5, 6, 70),
        _marines("8m_vs_9m", 8, 9, 120),
        _marines("10m_vs_11m", 10, 11, 150),
        _marines("27m_vs_30m", 27, 30, 180),
        _mmm("MMM", (7, 2, 1), 150),
        _mmm("MMM2", (8, 3, 1), 180),
        _protoss("2s3z", (2, 3), (2, 3), 120),
        _protoss("3s5z", (3, 5), (3, 5), 150),
        _protoss("3s5z_vs_3s6z", (3, 5), (3, 6), 170),
        _stalkers_vs_zealots(3, 150),
        _stalkers_vs_zealots(4, 200),
        _stalkers_vs_zealots(5, 250),
        MapSpec(
            "1c3s5z",
            (Group("colossus", 1), Group("stalker", 3), Group("zealot", 5)),
            (Group("colossus", 1), Group("stalker", 3), Group("zealot", 5)),
            180, "colossi_stalkers_zealots", 3, "P", "P",
        ),
        MapSpec(
            "2m_vs_1z",
            (Group("marine", 1, (13.0, 12.0)), Group("marine", 1, (19.0, 12.0))),
            _one("zealot", 1, (16.0, 19.0)),
            150, "marines", 0, "T", "P",
            attack_target=(13.0, 12.0), attack_target_end=(19.0, 12.0), pathable=OCTAGON,
        ),
        MapSpec(
            "corridor", _one("zealot", 6, (19.0, 19.1)), _one("zergling", 24, (27.9, 28.2)),
            400, "zealots", 0, "P", "Z", attack_target=(4.5, 4.3), pathable=CORRIDOR,
        ),
        MapSpec(
            "6h_vs_8z", _one("hydralisk", 6, (14.6, 9.5)), _one("zealot", 8, (14.4, 16.8)),
            150, "hydralisks", 0, "Z", "P", attack_target=(14.6, 9.5),
            pathable=(Rect(7.0, 7.0, 23.0, 21.0),),
        ),
        MapSpec(
            "2s_vs_1sc",
            (Group("stalker", 1, (11.1, 10.3)), Group("stalker", 1, (17.0, 10.4))),
            _one("spine_crawler", 1, (13.9, 20.0)),
            300, "stalkers", 0, "P", "Z", attack_target=None,
            pathable=(Rect(7.0, 7.0, 21.0, 25.0),),
        ),
        MapSpec(
            "so_many_baneling", _one("zealot", 7, (11.5, 12.0)),
            _one("baneling", 32, (27.9, 28.2)), 100, "zealots", 0, "P", "Z",
            attack_target=(4.5, 4.3), pathable=DIAGONAL_BAND,
        ),
        MapSpec(
            "bane_vs_bane",
            (Group("baneling", 4, (16.0, 8.0)), Group("zergling", 20, (16.0, 11.0))),
            (Group("zergling", 20, (16.0, 21.0)), Group("baneling", 4, (16.0, 24.0))),
            200, "bane", 2, "Z", "Z", attack_target=(16.0, 8.0), pathable=OCTAGON,
        ),
        MapSpec(
            "2c_vs_64zg", _one("colossus", 2, (16.0, 16.0)), _one("zergling", 64, (16.0, 9.0)),
            400, "colossus", 0, "P", "Z", attack_target=(16.0, 16.0), attack_units=True,
            pathable=PLATEAU_GROUND, cliff_pathable=OPEN, heights=PLATEAU_HEIGHTS,
        ),
    )
}  # fmt: skip


SMACV2_LIMIT = 200
SMACV2_UNIT_TYPE_BITS = 3
_SMACV2_NAME = re.compile(r"^(protoss|terran|zerg)_(\d+)_vs_(\d+)$")
SMACV2_NAMES = tuple(
    f"{race}_{n}_vs_{m}"
    for race in ("protoss", "terran", "zerg")
    for n, m in ((5, 5), (10, 10), (20, 20), (10, 11), (20, 23))
)

# race -> (unit types, weights, exception types, race letter), SMACv2's sc2_gen_*.yaml
RACES: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...], str]] = {
    "protoss": (("stalker", "zealot", "colossus"), (0.45, 0.45, 0.1), (), "P"),
    "terran": (("marine", "marauder", "medivac"), (0.45, 0.45, 0.1), ("medivac",), "T"),
    "zerg": (("zergling", "hydralisk", "baneling"), (0.45, 0.45, 0.1), ("baneling",), "Z"),
}


def smacv2_map(name: str) -> MapSpec | None:
    """The MapSpec of a SMACv2-style name, or None if ``name`` is not one.

    ``{protoss,terran,zerg}_N_vs_M`` (SMACv2's README lists 5_vs_5, 10_vs_10, 20_vs_20,
    10_vs_11 and 20_vs_23) plays on an open 32 x 32 map with an episode limit of 200 and
    3 unit-type bits, as SMACv2's ``10gen_*`` maps; ``smacv2.py`` draws its teams.
    """
    match = _SMACV2_NAME.match(name)
    if match is None:
        return None
    race, n, m = match.group(1), int(match.group(2)), int(match.group(3))
    if n < 1 or m < 1:
        raise ValueError(f"SMACv2 map {name!r} needs at least one unit per side.")
    types, weights, exceptions, letter = RACES[race]
    team = TeamDistribution(race, n, m, types, weights, exceptions)
    return MapSpec(
        name, (), (), SMACV2_LIMIT, f"{race}_gen", SMACV2_UNIT_TYPE_BITS, letter, letter,
        pathable=OPEN, team=team,
    )  # fmt: skip


def get_map(name: str) -> MapSpec:
    """The map called ``name`` (a SMAC map or a SMACv2 name such as ``protoss_5_vs_5``).

    A ValueError lists the known maps otherwise.
    """
    if name not in MAPS:
        spec = smacv2_map(name)
        if spec is None:
            raise ValueError(
                f"Unknown battle map {name!r}; known maps are {sorted(MAPS)} and the "
                f"SMACv2-style {{protoss,terran,zerg}}_N_vs_M names such as {SMACV2_NAMES}."
            )
        return spec
    spec = MAPS[name]
    for group in spec.allies + spec.enemies:
        if group.unit not in UNIT_TYPES:
            raise ValueError(f"Map {name!r} uses unknown unit type {group.unit!r}.")
    return spec
