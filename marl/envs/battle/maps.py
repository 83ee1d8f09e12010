"""SMAC maps of the battle simulator, as data: one frozen row per map.

Facts from ../shared/reference/battle-spec.md §2. Every map is 32 x 32. Allies spawn
around (9, 16), enemies around (23, 16), and the enemies get an attack-move order to
the allies' spawn point. The pathable area of most maps is the horizontal strip of
ground cells y = 7..24 (the ``t3SyncCliffLevel`` grid), i.e. ``7 <= y < 25`` in map
units; the 3s_vs_* maps are open everywhere.

Allies are listed in SMAC's agent order: sorted by RL unit type id, which puts
marauder < marine < medivac and colossus < stalker < zealot (the simulator then sorts
units of one type by x, y at every reset, as SMAC does). Enemies are listed in the raw
API order, which the simulator keeps.

``TYPE_ONE_HOTS`` gives, per SMAC ``map_type``, the order of the ally and the enemy
unit-type one-hots (SMAC's ``get_unit_type_id``), including its quirk: on stalker +
zealot maps the enemy one-hot puts the zealot first and the ally one-hot the stalker.
"""

from __future__ import annotations

from dataclasses import dataclass

from marl.envs.battle.frame import Rect
from marl.envs.battle.units import UNIT_TYPES

MAP_SIZE = (32.0, 32.0)  # (width, height) of every SMAC map, camera bounds 0-32
STRIP = (Rect(0.0, 7.0, 32.0, 25.0),)  # ground cells y = 7..24
OPEN = (Rect(0.0, 0.0, 32.0, 32.0),)  # the whole map
ALLY_SPAWN = (9.0, 16.0)
ENEMY_SPAWN = (23.0, 16.0)

# map_type -> (ally one-hot order, enemy one-hot order), as SMAC's get_unit_type_id.
TYPE_ONE_HOTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "marines": (("marine",), ("marine",)),
    "stalkers": (("stalker",), ("zealot",)),
    "zealots": (("zealot",), ("zergling",)),
    "hydralisks": (("hydralisk",), ("zealot",)),
    "stalkers_and_zealots": (("stalker", "zealot"), ("zealot", "stalker")),
    "colossi_stalkers_zealots": (
        ("colossus", "stalker", "zealot"),
        ("colossus", "stalker", "zealot"),
    ),
    "MMM": (("marauder", "marine", "medivac"), ("marauder", "marine", "medivac")),
    "bane": (("baneling", "zergling"), ("baneling", "zergling")),
}


@dataclass(frozen=True)
class MapSpec:
    """One SMAC map: teams, time limit, spawns, terrain and observation facts."""

    name: str
    allies: tuple[tuple[str, int], ...]
    """(unit type, count) groups in SMAC's agent order."""
    enemies: tuple[tuple[str, int], ...]
    """(unit type, count) groups in the raw API order."""
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
    ally_spawn: tuple[float, float] = ALLY_SPAWN
    enemy_spawn: tuple[float, float] = ENEMY_SPAWN
    attack_target: tuple[float, float] = ALLY_SPAWN
    """Where the enemies attack-move to."""
    pathable: tuple[Rect, ...] = STRIP
    """Union of rectangles units may stand on."""
    map_size: tuple[float, float] = MAP_SIZE

    @property
    def n_agents(self) -> int:
        return sum(n for _, n in self.allies)

    @property
    def n_enemies(self) -> int:
        return sum(n for _, n in self.enemies)

    def ally_units(self) -> list[str]:
        """One unit type name per agent, in agent order."""
        return [name for name, n in self.allies for _ in range(n)]

    def enemy_units(self) -> list[str]:
        """One unit type name per enemy, in enemy order."""
        return [name for name, n in self.enemies for _ in range(n)]


def _marines(name: str, n_allies: int, n_enemies: int, limit: int) -> MapSpec:
    return MapSpec(
        name, (("marine", n_allies),), (("marine", n_enemies),), limit, "marines", 0, "T", "T"
    )


def _protoss(name: str, allies: tuple[int, int], enemies: tuple[int, int], limit: int) -> MapSpec:
    """A stalker + zealot map: (stalkers, zealots) per side."""
    return MapSpec(
        name,
        (("stalker", allies[0]), ("zealot", allies[1])),
        (("stalker", enemies[0]), ("zealot", enemies[1])),
        limit,
        "stalkers_and_zealots",
        2,
        "P",
        "P",
    )


def _stalkers_vs_zealots(n_zealots: int, limit: int) -> MapSpec:
    name = f"3s_vs_{n_zealots}z"
    return MapSpec(
        name, (("stalker", 3),), (("zealot", n_zealots),), limit, "stalkers", 0, "P", "P",
        pathable=OPEN,
    )  # fmt: skip


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
        _protoss("2s3z", (2, 3), (2, 3), 120),
        _protoss("3s5z", (3, 5), (3, 5), 150),
        _protoss("3s5z_vs_3s6z", (3, 5), (3, 6), 170),
        _stalkers_vs_zealots(3, 150),
        _stalkers_vs_zealots(4, 200),
        _stalkers_vs_zealots(5, 250),
    )
}


def get_map(name: str) -> MapSpec:
    """The map called ``name``; a ValueError listing the known maps otherwise."""
    if name not in MAPS:
        raise ValueError(f"Unknown battle map {name!r}; known maps are {sorted(MAPS)}.")
    spec = MAPS[name]
    for unit, _ in spec.allies + spec.enemies:
        if unit not in UNIT_TYPES:
            raise ValueError(f"Map {name!r} uses unknown unit type {unit!r}.")
    return spec
