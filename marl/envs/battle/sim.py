"""Game-loop mechanics of the battle simulator, vectorised over B copies and U units.

One call of ``game_loop`` advances every copy by one SC2 game loop (1/16 game-second).
All units act simultaneously on the state at the start of the loop:

1. Orders whose target died end (an ally's attack order becomes idle; an enemy's
   attack-move drops the target). Enemies on attack-move without a target acquire the
   nearest living ally within their sight.
2. A unit with a target fires when the target is within weapon range, edge to edge
   (centre distance <= range + both radii), and its cooldown is ready; out of range it
   walks towards the target, stopping at range. A move order walks towards its point
   and ends there; an attack-move without a target walks towards the map's target.
   Positions are clamped into the pathable area (centre at least a radius inside).
3. Damage of all shots of the loop is applied in unit order: per attack,
   (damage + bonus vs armored/light) goes to shields first (shield armor 0), the rest
   to health minus armor, at least 0.5 when any reaches health; attacks per shot
   (zealot 2) land one after another.
4. Cooldowns restart at the weapon's cooldown in loops (fraction carried, plus
   optional jitter); units at 0 health are dead (they neither move nor fire, and
   their targets drop them); shields regenerate 2 per game-second after 10
   game-seconds without damage.

On maps without shields the damage of a shot is fixed per (shooter, target) pair and
is summed per target with one scatter; with shields the shots of a loop are applied
in unit order through a (B, U, U) prefix sum, so a shield that breaks mid-volley
passes the rest of the damage on exactly.

Units are indexed allies first (N), then enemies (M): U = N + M. Shapes: B copies,
U units, R pathable rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from marl.envs.battle.maps import MapSpec
from marl.envs.battle.units import LOOPS_PER_GAME_SECOND, unit_type

IDLE, MOVE, ATTACK, ATTACK_MOVE = 0, 1, 2, 3  # order codes
NO_TARGET = -1
MIN_DAMAGE = 0.5  # an attack that reaches health deals at least this much
SHIELD_REGEN_DELAY = int(10 * LOOPS_PER_GAME_SECOND)  # loops without damage before regen
SHIELD_REGEN_PER_LOOP = 2.0 / LOOPS_PER_GAME_SECOND
_EPS = 1e-6
RANGE_SLACK = 1e-3  # a unit that walked to exactly its range counts as in range


@dataclass
class UnitTable:
    """Static per-unit facts of one map, as tensors on the env's device."""

    n_allies: int
    n_enemies: int
    names: tuple[str, ...]  # per unit
    health_max: torch.Tensor  # (U,)
    shield_max: torch.Tensor  # (U,)
    armor: torch.Tensor  # (U,)
    speed: torch.Tensor  # (U,) map units per loop
    sight2: torch.Tensor  # (M,) squared sight range of the enemies (stock AI acquisition)
    radius: torch.Tensor  # (U,)
    attacks: torch.Tensor  # (U,) long
    max_attacks: int
    cooldown: torch.Tensor  # (U,) loops
    max_cd: torch.Tensor  # (U,) SMAC's cooldown divisor
    hit: torch.Tensor  # (U, U) raw damage per attack of unit s on unit t (0 within a team)
    hit_health: torch.Tensor  # (U, U) health damage per shot of s on an unshielded t
    has_shields: bool  # any unit has shields (else the cheaper health-only volley)
    reach: torch.Tensor  # (U, U) centre distance within which s can hit t
    rows: torch.Tensor  # (U,) long, 0..U-1
    idle: torch.Tensor  # () long IDLE, no_target () long NO_TARGET, zero () float: constants
    no_target: torch.Tensor
    zero: torch.Tensor
    area_lo: torch.Tensor  # (U, R, 2) lowest centre position per unit and rectangle
    area_hi: torch.Tensor  # (U, R, 2) highest centre position
    pathing: torch.Tensor  # (W * H,) bool, cell (i, j) at i * H + j
    map_size: tuple[int, int]  # (W, H) in cells
    attack_target: torch.Tensor  # (2,) where enemies attack-move to

    @property
    def n_units(self) -> int:
        return self.n_allies + self.n_enemies

    @classmethod
    def build(cls, spec: MapSpec, device: torch.device) -> UnitTable:
        """Tensors for ``spec``'s units, allies first."""
        names = tuple(spec.ally_units() + spec.enemy_units())
        types = [unit_type(n) for n in names]
        n = spec.n_agents
        is_ally = torch.tensor([i < n for i in range(len(names))], device=device)  # (U,)

        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)  # (U,)

        attacks = torch.tensor([t.attacks for t in types], dtype=torch.long, device=device)
        damage, radius = col([t.damage for t in types]), col([t.radius for t in types])
        bonus_arm, bonus_light = (
            col([t.bonus_armored for t in types]),
            col([t.bonus_light for t in types]),
        )
        armored, light = (
            col([float(t.armored) for t in types]),
            col([float(t.light) for t in types]),
        )
        raw = (
            damage[:, None] + bonus_arm[:, None] * armored[None] + bonus_light[:, None] * light
        )  # (U, U)
        enemies = is_ally[:, None] != is_ally[None, :]  # (U, U)
        wrange = col([t.weapon_range for t in types])
        reach = wrange[:, None] + radius[:, None] + radius[None, :]  # (U, U)
        lo = torch.tensor([[r.x0, r.y0] for r in spec.pathable], device=device)  # (R, 2)
        hi = torch.tensor([[r.x1, r.y1] for r in spec.pathable], device=device)  # (R, 2)
        hit = torch.where(enemies, raw, torch.zeros_like(raw))  # (U, U)
        armor = col([t.armor for t in types])
        per_shot = (raw - armor).clamp(min=MIN_DAMAGE) * attacks.unsqueeze(1)  # (U, U)
        per_shot = torch.where(raw > 0, per_shot, torch.zeros_like(raw))  # (U, U) no weapon
        return cls(
            n_allies=n,
            n_enemies=spec.n_enemies,
            names=names,
            health_max=col([t.health for t in types]),
            shield_max=col([t.shield for t in types]),
            armor=armor,
            speed=col([t.speed_per_loop for t in types]),
            sight2=col([t.sight**2 for t in types])[n:],
            radius=radius,
            attacks=attacks,
            max_attacks=max(t.attacks for t in types),
            cooldown=col([t.cooldown_loops for t in types]),
            max_cd=col([t.max_cd for t in types]),
            hit=hit,
            hit_health=torch.where(enemies, per_shot, torch.zeros_like(raw)),
            has_shields=any(t.shield > 0 for t in types),
            reach=reach,
            rows=torch.arange(len(names), device=device),
            idle=torch.tensor(IDLE, device=device),
            no_target=torch.tensor(NO_TARGET, device=device),
            zero=torch.tensor(0.0, device=device),
            area_lo=lo[None] + radius[:, None, None],
            area_hi=hi[None] - radius[:, None, None],
            pathing=_pathing_grid(spec, device),
            map_size=(int(spec.map_size[0]), int(spec.map_size[1])),
            attack_target=torch.tensor(spec.attack_target, device=device),
        )


def _pathing_grid(spec: MapSpec, device: torch.device) -> torch.Tensor:
    """Cell (i, j) is pathable when its centre lies in a pathable rectangle, (W * H,)."""
    w, h = int(spec.map_size[0]), int(spec.map_size[1])
    cx = torch.arange(w, device=device).float() + 0.5  # (W,)
    cy = torch.arange(h, device=device).float() + 0.5  # (H,)
    grid = torch.zeros(w, h, dtype=torch.bool, device=device)  # (W, H)
    for r in spec.pathable:
        in_x = (cx >= r.x0) & (cx < r.x1)  # (W,)
        in_y = (cy >= r.y0) & (cy < r.y1)  # (H,)
        grid |= in_x[:, None] & in_y[None, :]  # (W, H)
    return grid.reshape(-1)  # (W * H,)


@dataclass
class UnitState:
    """Everything about the units that changes, for B copies."""

    pos: torch.Tensor  # (B, U, 2)
    health: torch.Tensor  # (B, U) absolute hit points, 0 when dead
    shield: torch.Tensor  # (B, U)
    cooldown: torch.Tensor  # (B, U) loops until the weapon is ready (<= 0: ready)
    since_hit: torch.Tensor  # (B, U) long, loops since the unit last took damage
    order: torch.Tensor  # (B, U) long, IDLE | MOVE | ATTACK | ATTACK_MOVE
    goal: torch.Tensor  # (B, U, 2) point of a move or attack-move order
    target: torch.Tensor  # (B, U) long, unit index being attacked, NO_TARGET if none

    def clone(self) -> UnitState:
        return UnitState(**{f.name: getattr(self, f.name).clone() for f in fields(self)})

    def keep_where(self, keep: torch.Tensor, old: UnitState) -> None:
        """Restore ``old`` values in copies where ``keep`` (B,) is True."""
        for f in fields(self):
            new = getattr(self, f.name)
            mask = keep.view(-1, *([1] * (new.dim() - 1)))  # (B, 1, ...)
            setattr(self, f.name, torch.where(mask, getattr(old, f.name), new))

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name).clone() for f in fields(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any], device: torch.device) -> UnitState:
        return cls(**{f.name: state[f.name].to(device).clone() for f in fields(cls)})


def alive(s: UnitState) -> torch.Tensor:
    """(B, U) bool."""
    return s.health > 0


def gather_units(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, u]] for x (B, U) or (B, U, D) and index (B, U') long."""
    if x.dim() == 2:
        return x.gather(1, index)  # (B, U')
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, U', D)


def clamp_to_area(pos: torch.Tensor, tab: UnitTable) -> torch.Tensor:
    """Move every centre to the nearest point of the (radius-shrunk) pathable area."""
    if tab.area_lo.shape[1] == 1:
        return torch.clamp(pos, min=tab.area_lo[:, 0], max=tab.area_hi[:, 0])  # (B, U, 2)
    inside = torch.clamp(pos.unsqueeze(2), min=tab.area_lo, max=tab.area_hi)  # (B, U, R, 2)
    moved = (inside - pos.unsqueeze(2)).square().sum(-1)  # (B, U, R)
    best = moved.argmin(-1)  # (B, U)
    index = best[..., None, None].expand(-1, -1, 1, 2)  # (B, U, 1, 2)
    return inside.gather(2, index).squeeze(2)  # (B, U, 2)


def length(v: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last dim of size 2 (faster than vector_norm on big batches)."""
    return (v[..., 0].square() + v[..., 1].square()).sqrt()


def _retarget(s: UnitState, tab: UnitTable, live: torch.Tensor) -> torch.Tensor:
    """Drop dead targets (an attack order on one ends); enemies acquire the nearest ally.

    Returns which units have a target, (B, U) bool; updates ``s.target`` and ``s.order``.
    """
    index = s.target.clamp(min=0)  # (B, U)
    has = (s.target >= 0) & live.gather(1, index) & live  # (B, U)
    s.order = torch.where(has | (s.order != ATTACK), s.order, tab.idle)  # (B, U)
    target = torch.where(has, s.target, tab.no_target)  # (B, U)
    n = tab.n_allies
    need = (s.order[:, n:] == ATTACK_MOVE) & ~has[:, n:] & live[:, n:]  # (B, M)
    # On the CPU a loop where every enemy has a target skips the search (same result).
    if s.pos.device.type != "cpu" or bool(need.any()):
        grab, found = _acquire(s, tab, live, need)  # (B, M), (B, M)
        target = torch.cat([target[:, :n], torch.where(grab, found, target[:, n:])], 1)
    s.target = target  # (B, U)
    return target >= 0


def _acquire(
    s: UnitState, tab: UnitTable, live: torch.Tensor, need: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stock AI: an attack-move without a target takes the nearest living ally in sight."""
    n = tab.n_allies
    x, y = s.pos[..., 0], s.pos[..., 1]  # (B, U), (B, U)
    dx = x[:, n:].unsqueeze(2) - x[:, :n].unsqueeze(1)  # (B, M, N)
    dy = y[:, n:].unsqueeze(2) - y[:, :n].unsqueeze(1)  # (B, M, N)
    dist2 = (dx.square() + dy.square()).masked_fill(~live[:, None, :n], float("inf"))  # (B, M, N)
    nearest, found = dist2.min(dim=2)  # (B, M), (B, M)
    return need & (nearest <= tab.sight2), found


def _move(
    s: UnitState,
    tab: UnitTable,
    live: torch.Tensor,
    has: torch.Tensor,
    chase: torch.Tensor,
    gap: torch.Tensor,
    dist: torch.Tensor,
    reach: torch.Tensor,
) -> None:
    """Walk towards targets out of range (stopping at range), move and attack-move points."""
    walk = ((s.order == MOVE) | ((s.order == ATTACK_MOVE) & ~has)) & live  # (B, U)
    to_goal = s.goal - s.pos  # (B, U, 2)
    goal_dist = length(to_goal)  # (B, U)
    delta = torch.where(chase.unsqueeze(-1), gap, to_goal)  # (B, U, 2)
    span = torch.where(chase, dist, goal_dist)  # (B, U)
    room = span - reach * chase  # (B, U) distance left before stopping
    travel = torch.minimum(tab.speed, room).clamp(min=0) * (chase | walk)  # (B, U)
    step = delta * (travel / span.clamp(min=_EPS)).unsqueeze(-1)  # (B, U, 2)
    s.pos = clamp_to_area(s.pos + step, tab)  # (B, U, 2)
    arrived = (s.order == MOVE) & (goal_dist <= tab.speed)  # (B, U)
    s.order = torch.where(arrived, tab.idle, s.order)  # (B, U)


def _volley_health_only(
    s: UnitState, tab: UnitTable, fire: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Shots on a map without shields: fixed damage per shooter-target pair, (B, U) received."""
    damage = tab.hit_health[tab.rows, index] * fire  # (B, U) per shooter
    received = torch.zeros_like(s.health).scatter_add_(1, index, damage)  # (B, U) per target
    s.health = (s.health - received).clamp(min=0)  # (B, U)
    return received


def _volley_with_shields(
    s: UnitState, tab: UnitTable, fire: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Shots land one after another in unit order: shields first, then health minus armor."""
    aim = (index.unsqueeze(-1) == tab.rows) & fire.unsqueeze(-1)  # (B, U, U) shooter -> target
    hit = torch.where(aim, tab.hit, tab.zero)  # (B, U, U) raw damage per attack
    health, shield = s.health, s.shield  # (B, U), (B, U)
    for k in range(tab.max_attacks):
        raw = hit if k == 0 else hit * (tab.attacks > k).unsqueeze(-1)  # (B, U, U)
        before = raw.cumsum(1) - raw  # (B, U, U) raw damage of earlier shooters on t
        on_shield = torch.minimum(raw, (shield.unsqueeze(1) - before).clamp(min=0))  # (B, U, U)
        rest = raw - on_shield  # (B, U, U)
        on_health = torch.where(rest > 0, (rest - tab.armor).clamp(min=MIN_DAMAGE), tab.zero)
        shield = shield - on_shield.sum(1)  # (B, U)
        health = health - on_health.sum(1)  # (B, U)
    received = (s.health - health) + (s.shield - shield)  # (B, U)
    s.health, s.shield = health.clamp(min=0), shield  # (B, U), (B, U)
    return received


def _regenerate_shields(
    s: UnitState, tab: UnitTable, received: torch.Tensor, live: torch.Tensor
) -> None:
    """2 shield per game-second after 10 game-seconds without damage."""
    s.since_hit = (s.since_hit + 1).masked_fill(received > 0, 0)  # (B, U)
    regen = (s.since_hit >= SHIELD_REGEN_DELAY) & live  # (B, U)
    grown = torch.minimum(s.shield + SHIELD_REGEN_PER_LOOP, tab.shield_max)  # (B, U)
    s.shield = torch.where(regen, grown, s.shield)  # (B, U)


def game_loop(s: UnitState, tab: UnitTable, restart: torch.Tensor) -> torch.Tensor:
    """Advance every copy one game loop; returns each unit's shot target or -1, (B, U).

    ``restart`` (B, U) is the cooldown, in loops, of a weapon that fires this loop
    (the weapon's cooldown plus any jitter); the fraction of a loop by which the weapon
    was ready early is carried over, so the average rate of fire is exact.
    """
    live = s.health > 0  # (B, U)
    has = _retarget(s, tab, live)  # (B, U)
    index = s.target.clamp(min=0)  # (B, U)
    gap = gather_units(s.pos, index) - s.pos  # (B, U, 2)
    dist = length(gap)  # (B, U)
    reach = tab.reach[tab.rows, index]  # (B, U) centre distance within which it hits
    in_range = has & (dist <= reach + RANGE_SLACK)  # (B, U)
    fire = in_range & (s.cooldown <= 0)  # (B, U)
    _move(s, tab, live, has, has & ~in_range, gap, dist, reach)
    # On the CPU a loop in which nobody fires skips the damage step (same result).
    if fire.device.type != "cpu" or bool(fire.any()):
        if tab.has_shields:
            received = _volley_with_shields(s, tab, fire, index)  # (B, U)
        else:
            received = _volley_health_only(s, tab, fire, index)  # (B, U)
    else:
        received = torch.zeros_like(s.health)  # (B, U)
    if tab.has_shields:
        _regenerate_shields(s, tab, received, live)
    carry = torch.where(s.cooldown > -1, s.cooldown, tab.zero)  # (B, U) how early it was ready
    s.cooldown = (torch.where(fire, restart + carry, s.cooldown) - 1).clamp(min=-1)  # (B, U)
    return torch.where(fire, s.target, tab.no_target)  # (B, U)
