"""Unit types of the battle simulator, as data: one frozen row per StarCraft II unit.

Numbers come from ../shared/reference/battle-spec.md §3: hit points, shields, armor,
speed, sight and radius from the SMAC maps' RL ``UnitData.xml``; weapons from smaclite's
unit files. Speeds are per *game*-second (16 game loops); weapon cooldowns are in
"faster" seconds, which the simulator turns into game loops (x 22.4). ``max_cd`` is
SMAC's ``unit_max_cooldown``, the divisor of the state's cooldown feature.

Adding a unit type is adding a row to ``UNIT_TYPES``; its special mechanics are named
by columns the simulator reads (``sim.py``):

- ``ability``: ``heal`` (medivac: heals a friendly non-medivac unit with energy instead
  of attacking), ``splash`` (colossus: line splash beyond the target), ``suicide``
  (baneling: explodes on attack, radius splash, dies);
- ``mover``: ``ground`` (stays on the map's pathable ground), ``cliff`` (colossus:
  also walks up and down cliffs), ``air`` (medivac: flies anywhere, hit only by
  weapons that shoot air), ``static`` (spine crawler: never moves);
- ``targets``: ``both``, ``ground`` or ``none`` (what its weapon can hit);
- ``regen``: health regenerated per game-second (Zerg: 0.2734).

The baneling's 16 (+19 vs light) is SC2's value (battle-spec.md marks it unverified;
smaclite uses 80). The spine crawler's sight (11, the reference has none) is SC2's and
unused: a static unit acquires targets within its weapon range only. Zerg
regeneration is taken per game-second, like the speeds. Energy facts of the medivac
are the ``MEDIVAC_*`` constants; splash geometry the ``*_SPLASH_*`` ones (``sim.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

LOOPS_PER_GAME_SECOND = 16.0  # SC2 game loops per game-second
LOOPS_PER_FASTER_SECOND = 22.4  # game loops per "faster" (real-time) second
MELEE_RANGE = 0.1  # weapon range of melee units, edge to edge
ZERG_REGEN = 0.2734  # health per game-second, every living Zerg unit

MEDIVAC_HEAL_RATE = 9.0  # health per game-second while healing
MEDIVAC_HEAL_PER_ENERGY = 3.0  # health restored per energy point
MEDIVAC_ENERGY_REGEN = 0.5625  # energy per game-second
MEDIVAC_ENERGY_START = 50.0
MEDIVAC_ENERGY_MAX = 200.0

BANELING_SPLASH_RADIUS = 2.2  # explosion reach from the baneling's centre to a target's edge
COLOSSUS_SPLASH_LENGTH = 2.0  # line splash reaches this far beyond the target's centre
COLOSSUS_SPLASH_HALF_WIDTH = 0.5  # ... and this far (plus the victim's radius) to either side


@dataclass(frozen=True)
class UnitType:
    """One StarCraft II unit type, with the numbers the simulator needs."""

    name: str
    type_id: int
    """Stock SC2 unit type id (zealot 73, stalker 74, marine 48, ...)."""
    race: str
    """T, P or Z."""
    health: float
    """Maximum hit points."""
    shield: float
    """Maximum shield points (0 for non-Protoss units)."""
    armor: float
    """Health armor: subtracted from every attack that reaches health (shields have 0)."""
    speed: float
    """Movement speed in map units per game-second (16 game loops)."""
    sight: float
    """Sight range, used by the stock AI to acquire targets."""
    radius: float
    """Footprint radius; weapon ranges are measured edge to edge."""
    damage: float
    """Damage per attack."""
    attacks: int
    """Attacks per shot (zealot 2, colossus 2)."""
    bonus_armored: float
    """Extra damage per attack against armored targets."""
    bonus_light: float
    """Extra damage per attack against light targets."""
    armored: bool
    """Has the Armored attribute."""
    light: bool
    """Has the Light attribute."""
    weapon_range: float
    """Weapon range, edge to edge."""
    cooldown: float
    """Weapon cooldown in "faster" seconds (x 22.4 = game loops)."""
    max_cd: float
    """SMAC's ``unit_max_cooldown`` (game loops; medivac: max energy)."""
    ability: str = ""
    """Special ability: "" | heal | splash | suicide (see the module docstring)."""
    mover: str = "ground"
    """How it moves: ground | cliff | air | static."""
    targets: str = "both"
    """What its weapon can hit: both | ground | none."""
    regen: float = 0.0
    """Health regenerated per game-second (Zerg)."""

    @property
    def cooldown_loops(self) -> float:
        """Weapon cooldown in game loops."""
        return self.cooldown * LOOPS_PER_FASTER_SECOND

    @property
    def speed_per_loop(self) -> float:
        """Distance moved per game loop."""
        return self.speed / LOOPS_PER_GAME_SECOND


# Columns: name, type_id, race, health, shield, armor, speed, sight, radius,
#          damage, attacks, bonus_armored, bonus_light, armored, light, weapon_range,
#          cooldown (faster-s), max_cd[, ability, mover, targets, regen]
UNIT_TYPES: dict[str, UnitType] = {
    u.name: u
    for u in (
        UnitType("marine", 48, "T", 45.0, 0.0, 0.0, 2.25, 9.0, 0.375,
                 6.0, 1, 0.0, 0.0, False, True, 5.0, 0.61, 15.0),
        UnitType("marauder", 51, "T", 125.0, 0.0, 1.0, 2.25, 10.0, 0.5625,
                 10.0, 1, 10.0, 0.0, True, False, 6.0, 1.07, 25.0, targets="ground"),
        UnitType("medivac", 54, "T", 150.0, 0.0, 1.0, 2.75, 11.0, 0.75,
                 0.0, 1, 0.0, 0.0, True, False, 4.0, 1.0, MEDIVAC_ENERGY_MAX,
                 "heal", "air", "none"),
        UnitType("stalker", 74, "P", 80.0, 80.0, 1.0, 2.9531, 10.0, 0.625,
                 13.0, 1, 5.0, 0.0, True, False, 6.0, 1.34, 35.0),
        UnitType("zealot", 73, "P", 100.0, 50.0, 1.0, 2.25, 9.0, 0.5,
                 8.0, 2, 0.0, 0.0, False, True, MELEE_RANGE, 0.86, 22.0, targets="ground"),
        UnitType("colossus", 4, "P", 200.0, 150.0, 1.0, 2.25, 10.0, 1.0,
                 10.0, 2, 0.0, 5.0, True, False, 7.0, 1.07, 24.0, "splash", "cliff", "ground"),
        UnitType("hydralisk", 107, "Z", 80.0, 0.0, 0.0, 2.25, 9.0, 0.625,
                 12.0, 1, 0.0, 0.0, False, True, 5.0, 0.59, 10.0, regen=ZERG_REGEN),
        UnitType("zergling", 105, "Z", 35.0, 0.0, 0.0, 2.9531, 8.0, 0.375,
                 5.0, 1, 0.0, 0.0, False, True, MELEE_RANGE, 0.497, 11.0,
                 targets="ground", regen=ZERG_REGEN),
        UnitType("baneling", 9, "Z", 30.0, 0.0, 0.0, 2.5, 8.0, 0.375,
                 16.0, 1, 0.0, 19.0, False, False, 0.25, 1.0, 1.0, "suicide",
                 targets="ground", regen=ZERG_REGEN),
        UnitType("spine_crawler", 98, "Z", 300.0, 0.0, 2.0, 0.0, 11.0, 0.5,
                 25.0, 1, 5.0, 0.0, True, False, 7.0, 1.32, 30.0, mover="static",
                 targets="ground", regen=ZERG_REGEN),
    )
}  # fmt: skip

TYPE_NAMES: tuple[str, ...] = tuple(UNIT_TYPES)
"""Every unit type, in a fixed order: a type's index here is its row in the tensors."""


def unit_type(name: str) -> UnitType:
    """The row for ``name``; a clear error for an unknown type."""
    if name not in UNIT_TYPES:
        raise ValueError(f"Unknown unit type {name!r}; known types are {sorted(UNIT_TYPES)}.")
    return UNIT_TYPES[name]


def type_index(name: str) -> int:
    """Row of ``name`` in ``TYPE_NAMES`` (and in every per-type tensor)."""
    unit_type(name)
    return TYPE_NAMES.index(name)
