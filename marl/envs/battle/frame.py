"""What a battle replay records each agent step, for rendering (no torch, plain data).

The env records every copy of its batch while recording is on; the renderer turns a
list of frames into an animated GIF. Units are indexed allies first, then
enemies, in the env's own order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rect:
    """An axis-aligned pathable area, in map units."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class BattleInfo:
    """Static facts of the battle being recorded."""

    map_name: str
    map_size: tuple[float, float]  # (width, height), SMAC maps are 32 x 32
    pathable: tuple[Rect, ...]  # union of rectangles units may stand on
    unit_types: tuple[str, ...]  # per unit, e.g. "marine"
    radius: tuple[float, ...]  # per unit
    is_ally: tuple[bool, ...]  # per unit
    max_health: tuple[float, ...]  # per unit
    max_shield: tuple[float, ...]  # per unit (0 without shields)


@dataclass(frozen=True)
class BattleFrame:
    """Unit states after one agent step (or at reset, step 0)."""

    step: int
    x: tuple[float, ...]  # per unit
    y: tuple[float, ...]
    health: tuple[float, ...]  # absolute hit points, 0 when dead
    shield: tuple[float, ...]
    alive: tuple[bool, ...]
    attacking: tuple[int, ...]  # per unit: index of the unit it fired at this step, -1 if none
    outcome: str = ""  # "", or at the last frame "won", "lost", "draw", "timeout"


@dataclass
class BattleReplay:
    """One recorded episode."""

    info: BattleInfo
    frames: list[BattleFrame] = field(default_factory=list)
