"""Game-loop mechanics of the battle simulator, vectorised over B copies and U units.

One call of ``game_loop`` advances every copy by one SC2 game loop (1/16 game-second).
All units act simultaneously on the state at the start of the loop:

1. Orders whose target died (or can no longer be targeted) end: an ally's attack
   order becomes idle; an enemy's attack-move drops the target. The enemies follow
   SC2's stock AI as far as it can be written down (every rule with its source, and
   what is left out: the README's "How battle plays" section):

   - acquisition (``_acquire``): an enemy on attack-move without a target, or whose
     target is beyond its weapon range, picks among the living allies its weapon can
     hit within its sight (a static unit, the spine crawler: within its weapon range).
     All units here have SC2's attack target priority 20, so SC2's tie-breaks decide:
     an ally attacking it first (it answers being attacked), then one within its
     weapon range, then the nearest. A chasing enemy thus turns on what shoots it.
   - map orders: the map's attack-move to a point (most maps); none (2s_vs_1sc); on
     2c_vs_64zg an attack order on the colossi themselves: each zergling takes the
     nearest colossus and, when it dies, the nearest one left (``attack_units``); on
     SMACv2 maps every 0.5 game-s each enemy without a target attack-moves to the
     nearest ally (``hunt``, called by the env every 8 loops of a copy's episode).
   - an enemy medivac takes the nearest damaged friendly non-medivac in sight and
     drops it once healed; a static unit drops a target that left its range.
2. A unit with a target acts when it is within range, edge to edge (centre distance
   <= range + both radii): a weapon fires when its cooldown is ready, a medivac heals.
   Out of range it walks towards the target, stopping at range; a move order walks to
   its point and ends there; an attack-move without a target walks to its point.
   Walking goes round walls by waypoints, and centres stay in the mover's pathable
   area (``terrain.py``): ground units on the ground, colossi also over cliffs,
   medivacs anywhere on the map, the spine crawler never moves. Units then do not
   overlap (``_separate``, unless ``collisions`` is off): units of one collision
   layer (``LAYERS``: small ground units and the static one; the massive colossus,
   which walks over small units; air) are pushed apart by their radii, the unit that
   walked into another taking the overlap, so melee units fill the ring round a
   target and wait behind it, and a choke passes what fits.
3. Damage of all shots of the loop is applied in unit order: per attack,
   (damage + bonus vs armored/light) goes to shields first (shield armor 0), the rest
   to health minus armor, at least 0.5 when any reaches health; attacks per shot
   (zealot 2) land one after another. Splash adds victims to a shot, each taking the
   shot's damage against its own armor and attributes, only enemies of the shooter
   that its weapon can hit (so never air units, never its own team):

   - colossus (line splash): every unit whose centre lies within
     ``COLOSSUS_SPLASH_HALF_WIDTH`` + its radius of the segment from the target's
     centre to ``COLOSSUS_SPLASH_LENGTH`` beyond it, along the shooter -> target
     direction. (SC2's lances sweep across the target instead; this is the brief's
     simpler "line beyond the target".)
   - baneling (suicide): on "firing" it explodes; every enemy ground unit whose edge
     is within ``BANELING_SPLASH_RADIUS`` of the baneling's centre takes 16 (+19 vs
     light), and the baneling dies.

4. Medivacs heal 9 health per game-second (9/16 per loop), at most 3 health per
   energy point and never above the target's maximum; each medivac pays 1 energy per
   3 health it heals (two medivacs on one patient near full health may together pay
   for a little more than the cap lets through); energy regenerates 0.5625 per
   game-second up to 200. Zerg units regenerate 0.2734 health per game-second. A
   unit killed this loop is neither healed nor regenerated.
5. Cooldowns restart at the weapon's cooldown in loops (fraction carried, plus
   optional jitter); units at 0 health are dead (they neither move nor act, and their
   targets drop them); shields regenerate 2 per game-second after 10 game-seconds
   without damage.

Units without shields take a fixed health damage per (shooter, victim) pair, summed
with one scatter (plus a (B, S, U) sum over the S splash-capable units). Units with
shields take the shots of a loop in unit order through a (B, U, C) shooter -> victim
matrix over the C shielded units and a prefix sum over shooters, so a shield that
breaks mid-volley passes the rest of the damage on exactly. A shot's target is
never also counted as its splash victim.

Per-unit facts (``UnitTable``) are per copy, because SMACv2-style maps draw the teams
per copy; on fixed maps they are one row expanded over the copies (a view).

Units are indexed allies first (N), then enemies (M): U = N + M. Shapes: B copies,
U units, K unit types, R pathable regions, P portals.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache, lru_cache
from typing import Any, NamedTuple

import torch

from marl.envs.battle import native, terrain
from marl.envs.battle.frame import Rect
from marl.envs.battle.maps import OPEN, MapSpec
from marl.envs.battle.terrain import (
    UnitNav,
    clamp_to_area,
    pathing_grid,
    terrain_tensors,
    waypoints,
)
from marl.envs.battle.units import (
    BANELING_SPLASH_RADIUS,
    COLOSSUS_SPLASH_HALF_WIDTH,
    COLOSSUS_SPLASH_LENGTH,
    LOOPS_PER_GAME_SECOND,
    MEDIVAC_ENERGY_MAX,
    MEDIVAC_ENERGY_REGEN,
    MEDIVAC_HEAL_PER_ENERGY,
    MEDIVAC_HEAL_RATE,
    TYPE_NAMES,
    UNIT_TYPES,
)

IDLE, MOVE, ATTACK, ATTACK_MOVE = 0, 1, 2, 3  # order codes
NO_TARGET = -1
MIN_DAMAGE = 0.5  # an attack that reaches health deals at least this much
SHIELD_REGEN_DELAY = int(10 * LOOPS_PER_GAME_SECOND)  # loops without damage before regen
SHIELD_REGEN_PER_LOOP = 2.0 / LOOPS_PER_GAME_SECOND
HEAL_PER_LOOP = MEDIVAC_HEAL_RATE / LOOPS_PER_GAME_SECOND
ENERGY_PER_LOOP = MEDIVAC_ENERGY_REGEN / LOOPS_PER_GAME_SECOND
_EPS = 1e-6
RANGE_SLACK = 1e-3  # a unit that walked to exactly its range counts as in range
_NOT_IN_RANGE = 1e4  # acquisition key penalties, above any squared distance on a map
_NOT_ATTACKING = 1e6
HUNT_LOOPS = 8  # SMACv2's map re-orders idle enemies every 0.5 game-s
MOVERS = ("ground", "cliff", "air")  # terrain classes; a static unit uses the ground's
# Collision layer per mover: units collide only within one layer. The colossus (the only
# cliff walker) is SC2's only massive unit here: it walks over small ground units.
LAYERS = {"ground": 0, "static": 0, "cliff": 1, "air": 2}
NEIGHBOURS = 8  # collision partners per unit per step on maps of more than 17 units
# env.compile: Inductor vectorises a kernel's innermost dim, mostly the units. Where they
# do not fill its vectors (16 floats with AVX-512) scalar loops were faster (a 3m step at
# 1,024 copies 8.6 -> 6.1 ms, 2s3z 25 -> 19 ms, corridor's game loop 4x) and 2x slower
# on 3s5z's 16. ``cpp.simdlen`` is a width in bits: 8 matches no instruction set.
VECTOR_UNITS = 16
SCALAR_OPTIONS: dict[str, Any] = {"cpp.simdlen": 8}
# env.compile, collision pass apart from the fused loop (``pass_apart``: the C kernel's
# op, else copies-last planes, ``_separate_planes``; every pair). Measured for planes:
# on big maps (``near_k`` > 0) from 64 copies (corridor: a step at 16 copies 3.0 ms with
# partners, 3.6 in planes; at 64 copies 6.2 and 5.6), on small maps compiled to scalar
# loops from 1,024 (2s3z 18.9 -> 15.8 ms a step; at 256 copies 5.7 -> 6.3; 3m even).
PLANES_MIN_COPIES = 64
PLANES_MIN_COPIES_SMALL = 1024
PRIORITY = 0.25  # when two units walk into each other the later one takes 0.75 of it
SLIDE = 0.3  # radians: a push is turned this much, so units meeting head-on slide past


@dataclass(frozen=True)
class TypeColumns:
    """Per-type facts as (K,) tensors (and (K, K) pair tables), rows in TYPE_NAMES order."""

    health: torch.Tensor  # (K,)
    shield: torch.Tensor  # (K,)
    armor: torch.Tensor  # (K,)
    speed: torch.Tensor  # (K,) map units per loop
    sight: torch.Tensor  # (K,)
    radius: torch.Tensor  # (K,)
    attacks: torch.Tensor  # (K,) long
    cooldown: torch.Tensor  # (K,) loops
    max_cd: torch.Tensor  # (K,)
    weapon_range: torch.Tensor  # (K,)
    heals: torch.Tensor  # (K,) bool
    splash: torch.Tensor  # (K,) bool, line splash
    suicide: torch.Tensor  # (K,) bool
    static: torch.Tensor  # (K,) bool
    mover: torch.Tensor  # (K,) long index into MOVERS
    layer: torch.Tensor  # (K,) long collision layer (LAYERS)
    regen: torch.Tensor  # (K,) health per loop
    raw: torch.Tensor  # (K, K) raw damage per attack of type s on type t
    per_shot: torch.Tensor  # (K, K) health damage per shot on an unshielded t
    can_hit: torch.Tensor  # (K, K) bool, s's weapon can hit t (air/ground)


@lru_cache(maxsize=8)
def type_columns(device: torch.device) -> TypeColumns:
    """The unit table as tensors on ``device`` (cached)."""
    types = [UNIT_TYPES[n] for n in TYPE_NAMES]

    def col(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)  # (K,)

    def flag(values: list[bool]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.bool, device=device)  # (K,)

    damage = col([t.damage for t in types])
    bonus_arm, bonus_light = (
        col([t.bonus_armored for t in types]),
        col([t.bonus_light for t in types]),
    )
    armored, light = col([float(t.armored) for t in types]), col([float(t.light) for t in types])
    armor = col([t.armor for t in types])
    attacks = torch.tensor([t.attacks for t in types], dtype=torch.long, device=device)  # (K,)
    raw = damage[:, None] + bonus_arm[:, None] * armored + bonus_light[:, None] * light  # (K, K)
    per_shot = (raw - armor).clamp(min=MIN_DAMAGE) * attacks.unsqueeze(1)  # (K, K)
    air = flag([t.mover == "air" for t in types])
    hits_air = flag([t.targets == "both" for t in types])
    hits_ground = flag([t.targets in ("both", "ground") for t in types])
    can_hit = torch.where(air, hits_air[:, None], hits_ground[:, None]) & (raw > 0)  # (K, K)
    movers = [MOVERS.index(t.mover) if t.mover in MOVERS else 0 for t in types]
    return TypeColumns(
        health=col([t.health for t in types]),
        shield=col([t.shield for t in types]),
        armor=armor,
        speed=col([t.speed_per_loop for t in types]),
        sight=col([t.sight for t in types]),
        radius=col([t.radius for t in types]),
        attacks=attacks,
        cooldown=col([t.cooldown_loops for t in types]),
        max_cd=col([t.max_cd for t in types]),
        weapon_range=col([t.weapon_range for t in types]),
        heals=flag([t.ability == "heal" for t in types]),
        splash=flag([t.ability == "splash" for t in types]),
        suicide=flag([t.ability == "suicide" for t in types]),
        static=flag([t.mover == "static" for t in types]),
        mover=torch.tensor(movers, dtype=torch.long, device=device),
        layer=torch.tensor([LAYERS[t.mover] for t in types], dtype=torch.long, device=device),
        regen=col([t.regen / LOOPS_PER_GAME_SECOND for t in types]),
        raw=torch.where(can_hit, raw, torch.zeros_like(raw)),
        per_shot=torch.where(can_hit, per_shot, torch.zeros_like(raw)),
        can_hit=can_hit,
    )


@dataclass
class UnitTable:
    """Per-unit facts of one map for every copy, as tensors on the env's device.

    Every (B, ...) tensor is a view of a single row expanded over the copies when all
    copies have the same team (the fixed SMAC maps).
    """

    n_allies: int
    n_enemies: int
    types: torch.Tensor  # (B, U) long index into TYPE_NAMES
    health_max: torch.Tensor  # (B, U)
    shield_max: torch.Tensor  # (B, U)
    armor: torch.Tensor  # (B, U)
    speed: torch.Tensor  # (B, U) map units per loop
    radius: torch.Tensor  # (B, U)
    attacks: torch.Tensor  # (B, U) long
    max_attacks: int
    cooldown: torch.Tensor  # (B, U) loops
    max_cd: torch.Tensor  # (B, U) SMAC's cooldown divisor (medivac: max energy)
    heals: torch.Tensor  # (B, U) bool, medivac
    splash: torch.Tensor  # (B, U) bool, colossus line splash
    suicide: torch.Tensor  # (B, U) bool, baneling
    static: torch.Tensor  # (B, U) bool, spine crawler
    regen: torch.Tensor  # (B, U) health per loop
    hit: torch.Tensor  # (B, U, U) raw damage per attack of unit s on unit t (0: cannot)
    hit_health: torch.Tensor  # (B, U, U) health damage per shot of s on an unshielded t
    shield_cols: torch.Tensor  # (C,) long, units that have shields in some copy
    plain: torch.Tensor  # (U,) bool, units without shields in every copy
    any_plain: bool
    hit_c: torch.Tensor  # (B, U, C) raw damage per attack on the shielded units
    splash_rows: torch.Tensor  # (S,) long, units that splash (colossus, baneling) in some copy
    splash_hit: torch.Tensor  # (B, S, U) raw damage per attack of those units
    splash_hit_health: torch.Tensor  # (B, S, U) health damage per shot of those units
    valid: torch.Tensor  # (B, U, U) bool, s may target t (attack an enemy, or heal a friend)
    reach: torch.Tensor  # (B, U, U) centre distance within which s can hit (heal) t
    acquire2: torch.Tensor  # (B, M, N) squared distance within which enemy m acquires ally a
    enemy_reach2: torch.Tensor  # (B, M, N) squared reach of enemy m's weapon on ally a
    threat2: torch.Tensor  # (B, M, N) squared reach of ally a's weapon on enemy m
    sight2: torch.Tensor  # (B, M) squared sight of the enemies (medivac heal targets)
    nav: UnitNav
    touch: torch.Tensor  # (B, U, U) r_u + r_v where u and v collide (u pushed), else 0
    push: torch.Tensor  # (B, U, U) share of an overlap that u moves away from v (0: no contact)
    tie: torch.Tensor  # (U, 2) tiny fixed offsets that split units standing on one point
    away: torch.Tensor  # (U, 2) offsets that put dead units far from all and each other
    collide: bool  # some pair of units collides (and collisions are on)
    native: bool  # the collision pass runs in the C kernel (``native``: on the CPU, built)
    near_k: int  # collision partners per unit on big maps (``contacts``); 0: every pair
    has_shields: bool  # any unit has shields (the shield volley is needed)
    any_heal: bool
    any_splash: bool
    any_suicide: bool
    any_static: bool
    any_regen: bool
    enemy_heal: bool  # some enemy is a medivac
    check_valid: bool  # some enemy pair cannot be hit, or there are medivacs
    acquire_all: bool  # every enemy can hit every ally (no mask in the acquisition)
    hunt: bool  # every 0.5 game-s enemies without a target head for the nearest ally (SMACv2)
    attack_units: bool  # the enemies' order is to attack the agents' units (2c_vs_64zg)
    rows: torch.Tensor  # (U,) long, 0..U-1
    is_enemy: torch.Tensor  # (U,) bool
    idle: torch.Tensor  # () long IDLE, no_target () long NO_TARGET, zero () float: constants
    no_target: torch.Tensor
    zero: torch.Tensor
    pathing: torch.Tensor  # (W * H,) bool ground pathing grid, cell (i, j) at i * H + j
    map_size: tuple[int, int]  # (W, H) in cells

    @property
    def n_units(self) -> int:
        return self.n_allies + self.n_enemies

    def names(self, copy: int = 0) -> tuple[str, ...]:
        """Unit type name of every unit of one copy."""
        return tuple(TYPE_NAMES[k] for k in self.types[copy].tolist())

    @classmethod
    def build(
        cls,
        spec: MapSpec,
        types: torch.Tensor,
        batch_size: int,
        device: torch.device,
        collisions: bool = True,
    ) -> UnitTable:
        """Tables for ``types`` (B', U) long, allies first; B' = 1 (shared team) or B."""
        c = type_columns(device)
        b, u = batch_size, types.shape[1]
        n = spec.n_agents
        types = types.to(device)  # (B', U)
        kinds = sorted(set(types.flatten().tolist()))

        def grow(x: torch.Tensor) -> torch.Tensor:
            return x.expand(b, *x.shape[1:])  # (B, ...)

        def per_unit(column: torch.Tensor) -> torch.Tensor:
            return grow(column[types])  # (B, U)

        def pair(table: torch.Tensor) -> torch.Tensor:
            return table[types.unsqueeze(-1), types.unsqueeze(-2)]  # (B', U, U)

        rows = torch.arange(u, device=device)  # (U,)
        is_enemy = rows >= n  # (U,)
        enemies = is_enemy[:, None] != is_enemy[None, :]  # (U, U)
        heals = c.heals[types]  # (B', U)
        can_heal = heals.unsqueeze(-1) & ~heals.unsqueeze(-2) & ~enemies  # (B', U, U)
        can_heal = can_heal & (rows[:, None] != rows[None, :])  # (B', U, U) not itself
        hit = torch.where(enemies, pair(c.raw), c.raw.new_zeros(()))  # (B', U, U)
        hit_health = torch.where(enemies, pair(c.per_shot), c.raw.new_zeros(()))  # (B', U, U)
        shielded = (c.shield[types] > 0).any(0)  # (U,)
        cols = shielded.nonzero().flatten()  # (C,)
        splashing = (c.splash[types] | c.suicide[types]).any(0)  # (U,)
        splash_rows = splashing.nonzero().flatten()  # (S,)
        radius = c.radius[types]  # (B', U)
        reach = pair(c.weapon_range[:, None].expand(-1, len(TYPE_NAMES)))  # (B', U, U)
        reach = reach + radius.unsqueeze(-1) + radius.unsqueeze(-2)  # (B', U, U)
        sight2 = c.sight[types][:, n:].square()  # (B', M)
        static = c.static[types]  # (B', U)
        acquire2 = torch.where(
            static[:, n:, None], reach[:, n:, :n].square(), sight2.unsqueeze(-1)
        )  # (B', M, N)
        push = _push_shares(c, types, collisions)  # (B', U, U)
        ground = spec.pathable
        classes: tuple[tuple[Rect, ...], ...] = (ground, spec.cliff_pathable or ground, OPEN)
        areas = terrain_tensors(classes, device)  # in MOVERS order
        present = [TYPE_NAMES[k] for k in kinds]
        return cls(
            n_allies=n,
            n_enemies=u - n,
            types=grow(types),
            health_max=per_unit(c.health),
            shield_max=per_unit(c.shield),
            armor=per_unit(c.armor),
            speed=per_unit(c.speed),
            radius=grow(radius),
            attacks=per_unit(c.attacks),
            max_attacks=max(UNIT_TYPES[k].attacks for k in present),
            cooldown=per_unit(c.cooldown),
            max_cd=per_unit(c.max_cd),
            heals=grow(heals),
            splash=per_unit(c.splash),
            suicide=per_unit(c.suicide),
            static=grow(static),
            regen=per_unit(c.regen),
            hit=grow(hit),
            hit_health=grow(hit_health),
            shield_cols=cols,
            plain=~shielded,
            any_plain=bool((~shielded).any()),
            hit_c=grow(hit[:, :, cols]),
            splash_rows=splash_rows,
            splash_hit=grow(hit[:, splash_rows]),
            splash_hit_health=grow(hit_health[:, splash_rows]),
            valid=grow((hit > 0) | can_heal),
            reach=grow(reach),
            acquire2=grow(acquire2),
            enemy_reach2=grow(reach[:, n:, :n].square()),
            threat2=grow(reach[:, :n, n:].transpose(1, 2).square()),
            sight2=grow(sight2),
            nav=UnitNav.build(areas, c.mover[types], radius, b),
            touch=grow((radius.unsqueeze(-1) + radius.unsqueeze(-2)) * (push > 0)),
            push=grow(push),
            tie=_tie_offsets(u, device),
            away=1e4 * (rows.unsqueeze(-1) + 1.0).expand(u, 2),
            collide=bool((push > 0).any()),
            native=native.available(device),
            near_k=NEIGHBOURS if u > 2 * NEIGHBOURS + 1 else 0,
            has_shields=any(UNIT_TYPES[k].shield > 0 for k in present),
            any_heal=any(UNIT_TYPES[k].ability == "heal" for k in present),
            any_splash=any(UNIT_TYPES[k].ability == "splash" for k in present),
            any_suicide=any(UNIT_TYPES[k].ability == "suicide" for k in present),
            any_static=any(UNIT_TYPES[k].mover == "static" for k in present),
            any_regen=any(UNIT_TYPES[k].regen > 0 for k in present),
            enemy_heal=bool(heals[:, n:].any()),
            check_valid=bool(heals.any()) or not bool((hit > 0)[:, enemies].all()),
            acquire_all=bool((hit[:, n:, :n] > 0).all()),
            hunt=spec.team is not None,
            attack_units=spec.attack_units,
            rows=rows,
            is_enemy=is_enemy,
            idle=torch.tensor(IDLE, device=device),
            no_target=torch.tensor(NO_TARGET, device=device),
            zero=torch.tensor(0.0, device=device),
            pathing=pathing_grid(ground, (int(spec.map_size[0]), int(spec.map_size[1])), device),
            map_size=(int(spec.map_size[0]), int(spec.map_size[1])),
        )


def _push_shares(c: TypeColumns, types: torch.Tensor, collisions: bool) -> torch.Tensor:
    """Share of an overlap of u and v that u moves, (B', U, U): units of one collision
    layer collide; a static unit never moves (its partner takes the whole overlap)."""
    layer = c.layer[types]  # (B', U)
    static = c.static[types]  # (B', U)
    u = types.shape[1]
    contact = layer.unsqueeze(-1) == layer.unsqueeze(-2)  # (B', U, U)
    contact = contact & ~torch.eye(u, dtype=torch.bool, device=types.device)  # (B', U, U)
    if not collisions:
        contact = torch.zeros_like(contact)
    fixed_u, fixed_v = static.unsqueeze(-1), static.unsqueeze(-2)  # (B', U, 1), (B', 1, U)
    rows = torch.arange(u, device=types.device)  # (U,)
    later = (rows.unsqueeze(-1) > rows.unsqueeze(-2)).float()  # (U, U) u after v
    share = 0.5 + PRIORITY * (2 * later - 1)  # (U, U) the later unit gives way more
    share = torch.where(fixed_v, 1.0, share) * ~fixed_u  # (B', U, U)
    return share * contact  # (B', U, U)


def _tie_offsets(u: int, device: torch.device) -> torch.Tensor:
    """Tiny fixed offsets (U, 2), one direction per unit (golden-angle steps), added to
    positions when pushing units apart, so units on one point spread out the same way
    every time; 1e-4 moves nothing that matters (positions are float32 on a 32 map)."""
    angle = torch.arange(u, device=device, dtype=torch.float32) * 2.399963  # (U,)
    return torch.stack([angle.cos(), angle.sin()], -1) * 1e-4  # (U, 2)


@dataclass
class UnitState:
    """Everything about the units that changes, for B copies."""

    pos: torch.Tensor  # (B, U, 2)
    health: torch.Tensor  # (B, U) absolute hit points, 0 when dead
    shield: torch.Tensor  # (B, U)
    energy: torch.Tensor  # (B, U) medivac energy (0 for other units)
    cooldown: torch.Tensor  # (B, U) loops until the weapon is ready (<= 0: ready)
    since_hit: torch.Tensor  # (B, U) long, loops since the unit last took damage
    order: torch.Tensor  # (B, U) long, IDLE | MOVE | ATTACK | ATTACK_MOVE
    goal: torch.Tensor  # (B, U, 2) point of a move or attack-move order
    target: torch.Tensor  # (B, U) long, unit index being attacked (healed), NO_TARGET if none

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
        values = dict(state)
        values.setdefault("energy", torch.zeros_like(state["health"]))  # part-1 checkpoints
        return cls(**{f.name: values[f.name].to(device).clone() for f in fields(cls)})


def alive(s: UnitState) -> torch.Tensor:
    """(B, U) bool."""
    return s.health > 0


def gather_units(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, u]] for x (B, U) or (B, U, D) and index (B, U') long."""
    if x.dim() == 2:
        return x.gather(1, index)  # (B, U')
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, U', D)


def gather_pairs(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, u, index[b, u]] for x (B, U, U) and index (B, U) long, (B, U)."""
    return x.gather(2, index.unsqueeze(-1)).squeeze(-1)  # (B, U)


def length(v: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last dim of size 2 (faster than vector_norm on big batches)."""
    return (v[..., 0].square() + v[..., 1].square()).sqrt()


def _retarget(s: UnitState, tab: UnitTable, live: torch.Tensor) -> torch.Tensor:
    """Drop targets that died or no longer qualify; enemies acquire targets by SC2's rules.

    An enemy on attack-move (or an idle static one) looks for a target when it has none
    or when its target is out of its weapon range (``_acquire``), so a chasing enemy
    turns on an ally that shoots it and on one it can hit now. On ``attack_units`` maps
    an enemy's attack order whose unit died passes to the nearest living ally it can hit.
    Returns which units have a target, (B, U) bool; updates ``s.target`` and ``s.order``.
    """
    index = s.target.clamp(min=0)  # (B, U)
    has = (s.target >= 0) & live.gather(1, index) & live  # (B, U)
    if tab.check_valid:
        has = has & gather_pairs(tab.valid, index)  # (B, U)
    dist = length(gather_units(s.pos, index) - s.pos)  # (B, U)
    out = dist > gather_pairs(tab.reach, index) + RANGE_SLACK  # (B, U) beyond weapon range
    if tab.any_static:  # a static unit cannot follow a target out of range
        has = has & ~(tab.static & out)  # (B, U)
    if tab.enemy_heal:  # the stock AI's medivac moves on once its patient is healed
        healed = gather_units(s.health, index) >= gather_units(tab.health_max, index)  # (B, U)
        has = has & ~(tab.heals & tab.is_enemy & healed)  # (B, U)
    keep = has | (s.order != ATTACK)  # (B, U)
    if tab.attack_units:  # the map's attack order stands when its unit dies
        keep = keep | tab.is_enemy  # (B, U)
    s.order = torch.where(keep, s.order, tab.idle)  # (B, U)
    target = torch.where(has, s.target, tab.no_target)  # (B, U)
    n = tab.n_allies
    on_order = s.order[:, n:] == ATTACK_MOVE  # (B, M)
    seek = on_order | (tab.static[:, n:] & (s.order[:, n:] == IDLE))  # (B, M)
    need = seek & live[:, n:] & (~has[:, n:] | out[:, n:])  # (B, M)
    # On the CPU a loop where no enemy looks for a target skips the search (same result).
    if terrain.busy(need):
        grab, found = _acquire(s, tab, live, need)  # (B, M), (B, M)
        target = torch.cat([target[:, :n], torch.where(grab, found, target[:, n:])], 1)  # (B, U)
    if tab.attack_units:
        follow = (s.order[:, n:] == ATTACK) & live[:, n:] & (target[:, n:] < 0)  # (B, M)
        if terrain.busy(follow):
            nearest, found = _nearest_ally(s, tab, live)  # (B, M), (B, M)
            follow = follow & torch.isfinite(nearest)  # (B, M)
            target = torch.cat([target[:, :n], torch.where(follow, found, target[:, n:])], 1)
    s.target = target  # (B, U)
    return target >= 0


def _acquire(
    s: UnitState, tab: UnitTable, live: torch.Tensor, need: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stock AI's choice among the living allies it can hit within its acquisition range.

    Every unit here has SC2's attack target priority 20, so the tie-breaks decide, as the
    default tactical AI does: an ally that is attacking it (that ally's target, within
    that ally's reach) first, then an ally within its own weapon range, then the nearest.
    An enemy medivac instead takes the nearest damaged friendly non-medivac in sight.
    Returns (acquired (B, M) bool, unit index (B, M) long).
    """
    n = tab.n_allies
    x, y = s.pos[..., 0], s.pos[..., 1]  # (B, U), (B, U)
    dx = x[:, n:].unsqueeze(2) - x[:, :n].unsqueeze(1)  # (B, M, N)
    dy = y[:, n:].unsqueeze(2) - y[:, :n].unsqueeze(1)  # (B, M, N)
    dist2 = dx.square() + dy.square()  # (B, M, N)
    ok = live[:, None, :n] & (dist2 <= tab.acquire2)  # (B, M, N)
    if not tab.acquire_all:
        ok = ok & tab.valid[:, n:, :n]  # (B, M, N)
    attacking = s.target[:, None, :n] == tab.rows[n:, None]  # (B, M, N) ally's target is m
    attacking = attacking & (dist2 <= tab.threat2)  # (B, M, N) ... and m is in its reach
    key = dist2 + _NOT_IN_RANGE * (dist2 > tab.enemy_reach2)  # (B, M, N)
    key = key + _NOT_ATTACKING * ~attacking  # (B, M, N)
    best, found = key.masked_fill(~ok, float("inf")).min(dim=2)  # (B, M), (B, M)
    grab = need & torch.isfinite(best)  # (B, M)
    if tab.enemy_heal:
        ex = x[:, n:].unsqueeze(2) - x[:, n:].unsqueeze(1)  # (B, M, M)
        ey = y[:, n:].unsqueeze(2) - y[:, n:].unsqueeze(1)  # (B, M, M)
        hurt = live & (s.health < tab.health_max)  # (B, U)
        near2 = ex.square() + ey.square()  # (B, M, M)
        fine = hurt[:, None, n:] & tab.valid[:, n:, n:]  # (B, M, M) damaged, healable
        fine = fine & (near2 <= tab.sight2.unsqueeze(-1))  # (B, M, M) in sight
        closest, patient = near2.masked_fill(~fine, float("inf")).min(dim=2)  # (B, M), (B, M)
        healer = tab.heals[:, n:]  # (B, M)
        grab = torch.where(healer, need & torch.isfinite(closest), grab)  # (B, M)
        found = torch.where(healer, patient + n, found)  # (B, M)
    return grab, found


def _nearest_ally(
    s: UnitState, tab: UnitTable, live: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every enemy the nearest living ally it can hit, anywhere on the map.

    Returns (squared distance (B, M), inf when there is none; ally index (B, M) long).
    """
    n = tab.n_allies
    gap = s.pos[:, :n].unsqueeze(1) - s.pos[:, n:].unsqueeze(2)  # (B, M, N, 2)
    dist2 = gap[..., 0].square() + gap[..., 1].square()  # (B, M, N)
    ok = live[:, None, :n] & tab.valid[:, n:, :n]  # (B, M, N)
    return dist2.masked_fill(~ok, float("inf")).min(dim=2)  # (B, M), (B, M)


def hunt(s: UnitState, tab: UnitTable, due: torch.Tensor) -> None:
    """SMACv2's map script, run every 0.5 game-s in the copies where ``due`` (B,) is set:
    every living enemy without a target attack-moves to the nearest ally it can hit."""
    n = tab.n_allies
    live = alive(s)  # (B, U)
    nearest, found = _nearest_ally(s, tab, live)  # (B, M), (B, M)
    go = due.unsqueeze(1) & live[:, n:] & (s.target[:, n:] < 0) & torch.isfinite(nearest)
    goal = torch.where(go.unsqueeze(-1), gather_units(s.pos, found), s.goal[:, n:])  # (B, M, 2)
    order = torch.where(go, ATTACK_MOVE, s.order[:, n:])  # (B, M)
    s.goal = torch.cat([s.goal[:, :n], goal], 1)  # (B, U, 2)
    s.order = torch.cat([s.order[:, :n], order], 1)  # (B, U)


def _move(
    s: UnitState,
    tab: UnitTable,
    live: torch.Tensor,
    has: torch.Tensor,
    in_range: torch.Tensor,
    target_pos: torch.Tensor,
    reach: torch.Tensor,
) -> torch.Tensor:
    """Each unit's walk this loop, (B, U, 2): towards a target out of range (stopping at
    range), to a move or attack-move point. A move order that arrives ends."""
    chase = has & ~in_range  # (B, U)
    walk = ((s.order == MOVE) | ((s.order == ATTACK_MOVE) & ~has)) & live  # (B, U)
    goal_dist = length(s.goal - s.pos)  # (B, U)
    dest = torch.where(chase.unsqueeze(-1), target_pos, s.goal)  # (B, U, 2)
    stop = reach * chase  # (B, U) distance from dest at which to stop
    if tab.nav.routed:
        moving = (chase | walk) & ~tab.static  # (B, U)
        point, routed = waypoints(s.pos, dest, moving, tab.nav)  # (B, U, 2), (B, U)
        dest = torch.where(routed.unsqueeze(-1), point, dest)  # (B, U, 2)
        stop = torch.where(routed, tab.zero, stop)  # (B, U)
    delta = dest - s.pos  # (B, U, 2)
    span = length(delta)  # (B, U)
    travel = torch.minimum(tab.speed, span - stop).clamp(min=0) * (chase | walk)  # (B, U)
    step = delta * (travel / span.clamp(min=_EPS)).unsqueeze(-1)  # (B, U, 2)
    arrived = (s.order == MOVE) & (goal_dist <= tab.speed)  # (B, U)
    s.order = torch.where(arrived, tab.idle, s.order)  # (B, U)
    return step


class Contacts(NamedTuple):
    """The collision partners each unit checks during one agent step, on big maps."""

    partners: torch.Tensor  # (B, U * K) long, each unit's K nearest partners, flattened
    touch: torch.Tensor  # (B, U, K) r_u + r_v (0: no partner in that slot)
    push: torch.Tensor  # (B, U, K) u's share when both or neither walked


def scalar_loops(n_units: int) -> bool:
    """env.compile: whether the game loop compiles to scalar loops (``SCALAR_OPTIONS``)."""
    return n_units % VECTOR_UNITS != 0


def pass_apart(tab: UnitTable, batch_size: int, compiled: bool) -> bool:
    """Compiled: whether the collision pass is its own call beside the fused game loop,
    checking every pair: the C kernel's op where it is built (``tab.native``), else
    copies-last planes (``_separate_planes``). On big maps from ``PLANES_MIN_COPIES``
    copies, on small maps compiled to scalar loops from ``PLANES_MIN_COPIES_SMALL``;
    below that the pass is fused into the loop (cheaper than a call at few copies)."""
    if not (compiled and tab.collide):
        return False
    if tab.near_k > 0:
        return batch_size >= PLANES_MIN_COPIES
    return scalar_loops(tab.n_units) and batch_size >= PLANES_MIN_COPIES_SMALL


def in_planes(tab: UnitTable, batch_size: int, compiled: bool) -> bool:
    """Whether the collision pass runs in copies-last planes (``_separate_planes``)."""
    return pass_apart(tab, batch_size, compiled) and not tab.native


def every_pair(tab: UnitTable, batch_size: int, compiled: bool) -> bool:
    """Whether the collision pass checks every pair of units (no ``contacts`` needed):
    on small maps, in the C kernel eager, and as a pass apart when compiled."""
    if tab.near_k == 0 or pass_apart(tab, batch_size, compiled):
        return True
    return tab.native and not compiled


def _spread(
    pos: torch.Tensor, live: torch.Tensor, tie: torch.Tensor, away: torch.Tensor
) -> torch.Tensor:
    """Positions for collisions, (B, U, 2): units on one point made distinct (tiny fixed
    offsets ``tab.tie``), the dead set far apart, out of everyone's way (``tab.away``)."""
    spread = pos + tie  # (B, U, 2)
    return torch.where(live.unsqueeze(-1), spread, spread + away)  # (B, U, 2)


def contacts(s: UnitState, tab: UnitTable) -> Contacts | None:
    """Each unit's ``tab.near_k`` nearest collision partners now, for the next step's
    loops (None on maps small enough to check every pair). A unit walks at most 1.5 in
    a step, so the partners it can touch are near it at the start; K = 8 holds the six
    that can touch one unit in a packed crowd. An approximation all the same: on
    corridor's packed zerglings, positions part from the every-pair pass's within 3
    steps in about one copy in seven (38 of 256). Used by torch ops only: the C kernel
    and compiled runs of ``PLANES_MIN_COPIES`` copies or more check every pair
    (``every_pair``)."""
    if tab.near_k == 0:
        return None
    where = _spread(s.pos, alive(s), tab.tie, tab.away)  # (B, U, 2)
    gap = where.unsqueeze(2) - where.unsqueeze(1)  # (B, U, U, 2)
    d2 = gap[..., 0].square() + gap[..., 1].square()  # (B, U, U)
    d2 = d2.masked_fill(tab.touch == 0, math.inf)  # (B, U, U) only partners
    index = d2.topk(tab.near_k, dim=2, largest=False).indices  # (B, U, K)
    return Contacts(
        index.flatten(1), tab.touch.gather(2, index), tab.push.gather(2, index)
    )  # (B, U * K), (B, U, K), (B, U, K)


def _separate(
    pos: torch.Tensor,
    tab: UnitTable,
    live: torch.Tensor,
    step: torch.Tensor,
    near: Contacts | None = None,
) -> torch.Tensor:
    """Push overlapping living units of one collision layer apart, (B, U, 2).

    ``pos`` is after this loop's walking ``step`` (B, U, 2). For every overlapping pair
    (``r_u + r_v - |u - v|`` > 0) the unit that walked into the other takes the whole
    overlap; when both or neither did, the later unit (by index) takes ``0.5 + PRIORITY``
    of it, so two units pressing into one gap do not lock (a static unit takes none, its
    partner all: ``tab.push``). So a walker is held at the edge of a crowd and cannot
    shove it: units that stand (attacking, or stopped) keep their place, melee units
    fill the ring round a target and the rest wait behind, and a choke passes what fits.
    Each unit's summed push is turned by ``SLIDE``, the same way for every unit, so
    units meeting head-on slide past each other and a blocked walker slides round what
    blocks it. One pass per game loop over the pairs at once (a Jacobi step, so a crowd
    settles over a few loops): every pair, or each unit's ``near`` partners.

    Eager on the CPU, where it is built, the C kernel (``native``) checks every pair in
    one loop instead.
    """
    compiled = torch.compiler.is_compiling()
    if tab.native and not compiled:
        return native.separate(pos, live, step, tab.tie, tab.touch, tab.push, SLIDE, _EPS)
    where = _spread(pos, live, tab.tie, tab.away)  # (B, U, 2)
    x, y = where[..., 0], where[..., 1]  # (B, U), (B, U)
    sx, sy = step[..., 0].unsqueeze(2), step[..., 1].unsqueeze(2)  # (B, U, 1), (B, U, 1)
    if near is None:  # partners v: every unit, (B, 1, U)
        vx, vy = x.unsqueeze(1), y.unsqueeze(1)
        touch, push = tab.touch, tab.push  # (B, U, U)
    else:  # partners v: the K of each unit, (B, U, K)
        shape, index = near.touch.shape, near.partners
        vx, vy = x.gather(1, index).view(shape), y.gather(1, index).view(shape)
        touch, push = near.touch, near.push
    dx, dy = x.unsqueeze(2) - vx, y.unsqueeze(2) - vy  # (B, U, V) u - v
    # Compiled: sqrt of squares (Inductor emits a scalar std::hypot, about a third of
    # this pass); eager: one hypot op rather than four. Compiled runs round differently
    # from eager anyway (fused kernels).
    dist = (dx * dx + dy * dy).sqrt() if compiled else torch.hypot(dx, dy)  # (B, U, V)
    depth = touch - dist  # (B, U, V) overlap where > 0
    # On the CPU a loop in which no units touch skips the rest (same result).
    if not terrain.busy_above(depth, 0.0):
        return pos
    # u walked into v when its step points from u towards v: step_u . (u - v) < 0
    into = sx * dx + sy * dy < 0  # (B, U, V)
    # v walked into u: step_v . (u - v) > 0. Eager with every pair that is into[v, u], to
    # the bit (v - u is exactly -(u - v), and so is each product and sum): four ops
    # fewer. Compiled, the transposed read kept Inductor's fused loop from vectorising
    # (3s5z at 1,024 copies 25% slower), so there it is computed.
    if near is None and not compiled:
        back = into.transpose(1, 2)  # (B, U, V)
    else:
        if near is None:
            vsx, vsy = step[..., 0].unsqueeze(1), step[..., 1].unsqueeze(1)  # (B, 1, U)
        else:
            vsx = step[..., 0].gather(1, index).view(shape)  # (B, U, K)
            vsy = step[..., 1].gather(1, index).view(shape)  # (B, U, K)
        back = vsx * dx + vsy * dy > 0  # (B, U, V)
    scale = _push_scale(depth, dist, into, back, push)  # (B, U, V)
    px, py = (dx * scale).sum(2), (dy * scale).sum(2)  # (B, U), (B, U) summed pushes
    return pos + _slide(px, py)  # (B, U, 2)


def _push_scale(
    depth: torch.Tensor,
    dist: torch.Tensor,
    into: torch.Tensor,
    back: torch.Tensor,
    push: torch.Tensor,
) -> torch.Tensor:
    """Per pair, the factor on ``u - v`` that is u's push (any layout; eager, it
    overwrites ``depth`` and ``dist``): its share of the overlap over the distance."""
    share = _share(into, back, push)
    if torch.compiler.is_compiling():  # in place, Inductor would write the pairs out
        return depth.clamp(min=0) * share / dist.clamp(min=_EPS)
    return depth.clamp_(min=0).mul_(share).div_(dist.clamp_(min=_EPS))


def _share(into: torch.Tensor, back: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """Per pair, u's share of the overlap (any layout): all of it when only u walked into
    v, none when only v walked into u, else ``push`` (the later unit more)."""
    return torch.where(into != back, into, push)  # into read as 0.0 / 1.0 (type promotion)


def _slide(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Summed pushes (B, U) each turned by ``SLIDE``, as (B, U, 2) moves."""
    cos, sin = math.cos(SLIDE), math.sin(SLIDE)
    return torch.stack([px * cos - py * sin, px * sin + py * cos], -1)  # (B, U, 2)


@torch.library.custom_op("marl::copies_last", mutates_args=())
def copies_last(xy: torch.Tensor) -> torch.Tensor:
    """(B, U, 2) points as contiguous copies-last planes (U, 2, B). An op Inductor
    cannot see into, so the planes are written once (a transpose it inlines reads
    strided and is not vectorised); one 2-D transpose is the fastest eager copy."""
    b, u, _ = xy.shape
    planes = xy.reshape(b, 2 * u).t().clone(memory_format=torch.contiguous_format)
    return planes.view(u, 2, b)  # (U, 2, B) a new tensor, even at B = 1


@copies_last.register_fake
def _copies_last_shape(xy: torch.Tensor) -> torch.Tensor:
    b, u, _ = xy.shape
    return xy.new_empty((u, 2, b))


def _separate_in_planes(
    pos: torch.Tensor, tab: UnitTable, live: torch.Tensor, step: torch.Tensor
) -> torch.Tensor:
    """The compiled game loop's call out to ``_separate_planes``, compiled on its own:
    vectorised at the CPU's width, where the rest of the loop may compile to scalar code
    (the env's ``cpp.simdlen`` option). A break in the loop's graph (called from the
    loop itself, not a function below it, so the loop splits in two graphs, not four);
    an opaque op instead measured slower (Inductor then recomputes more of the loop's
    first kernel). Tensors go in, not the table (fewer guards to check on each call)."""
    fused = _separate_planes_fused()
    return fused(pos, live, step, tab.tie, tab.away, tab.touch, tab.push)  # (B, U, 2)


def prepare_compile() -> None:
    """Before the game loop is compiled: mark its call out to the planes kernel as a
    graph break (``torch.compiler.disable`` imports Dynamo, about a second, so it is
    not done at import)."""
    global _separate_in_planes
    if not hasattr(_separate_in_planes, "_torchdynamo_disable"):
        _separate_in_planes = torch.compiler.disable(_separate_in_planes)


def _separate_planes(
    pos: torch.Tensor,
    live: torch.Tensor,
    step: torch.Tensor,
    tie: torch.Tensor,
    away: torch.Tensor,
    touch: torch.Tensor,
    push: torch.Tensor,
) -> torch.Tensor:
    """``_separate`` for many copies under ``torch.compile``: every pair (no ``near``
    partners), laid out copies-last (U, V, B) so the fused kernel runs along the copies
    in vectors. In (B, U, V) the innermost dim is a few units and the kernel is scalar
    (``SCALAR_OPTIONS``) or runs in short vectors with tails. Corridor at 1,024 copies:
    the pass alone 3.4 ms a loop with 8 partners -> 1.2 ms for all 30, and no
    ``contacts`` (10-20 ms a step) to find partners."""
    x, y = copies_last(_spread(pos, live, tie, away)).unbind(1)  # (U, B), (U, B)
    sx, sy = copies_last(step).unbind(1)  # (U, B), (U, B)
    dx, dy = x.unsqueeze(1) - x.unsqueeze(0), y.unsqueeze(1) - y.unsqueeze(0)  # (U, V, B)
    inv = (dx * dx + dy * dy).clamp(min=_EPS * _EPS).rsqrt()  # (U, V, B) 1 / |u - v|
    into = sx.unsqueeze(1) * dx + sy.unsqueeze(1) * dy < 0  # (U, V, B) u walked into v
    back = sx.unsqueeze(0) * dx + sy.unsqueeze(0) * dy > 0  # (U, V, B) v walked into u
    share = _share(into, back, push.permute(1, 2, 0))  # (U, V, B)
    # _push_scale's overlap / distance as touch / distance - 1: one rsqrt, no sqrt and
    # division (a fifth faster)
    scale = share * (touch.permute(1, 2, 0) * inv - 1).clamp(min=0)  # (U, V, B)
    px, py = (dx * scale).sum(1), (dy * scale).sum(1)  # (U, B), (U, B)
    return pos + _slide(px.t(), py.t())  # (B, U, 2)


def _splash(
    tab: UnitTable,
    live: torch.Tensor,
    fire: torch.Tensor,
    index: torch.Tensor,
    pos: torch.Tensor,
    target_pos: torch.Tensor,
) -> torch.Tensor | None:
    """Splash victims besides the target, (B, S, U) bool for the S splash-capable units.

    None when no splash-capable unit fires (on the CPU; on CUDA it is computed anyway).
    """
    rows = tab.splash_rows  # (S,)
    if rows.numel() == 0:
        return None
    shot = fire[:, rows]  # (B, S)
    if not terrain.busy(shot):
        return None
    origin = pos[:, rows]  # (B, S, 2) shooter
    aim = target_pos[:, rows]  # (B, S, 2) its target
    radius = tab.radius.unsqueeze(1)  # (B, 1, U) victim radius
    extra = torch.zeros_like(tab.splash_hit, dtype=torch.bool)  # (B, S, U)
    line = shot & tab.splash[:, rows]  # (B, S)
    if tab.any_splash:
        gap = aim - origin  # (B, S, 2)
        way = gap / length(gap).clamp(min=_EPS).unsqueeze(-1)  # (B, S, 2) unit direction
        rel = pos.unsqueeze(1) - aim.unsqueeze(2)  # (B, S, U, 2) victim - target
        along = rel[..., 0] * way[..., None, 0] + rel[..., 1] * way[..., None, 1]  # (B, S, U)
        side = rel[..., 0] * way[..., None, 1] - rel[..., 1] * way[..., None, 0]  # (B, S, U)
        past = along - along.clamp(0.0, COLOSSUS_SPLASH_LENGTH)  # (B, S, U) off the segment
        width = COLOSSUS_SPLASH_HALF_WIDTH + radius  # (B, 1, U)
        on_line = past.square() + side.square() <= width.square()  # (B, S, U)
        extra = extra | (line.unsqueeze(-1) & on_line)  # (B, S, U)
    boom = shot & tab.suicide[:, rows]  # (B, S)
    if tab.any_suicide:
        rel = pos.unsqueeze(1) - origin.unsqueeze(2)  # (B, S, U, 2) victim - baneling
        blast = (BANELING_SPLASH_RADIUS + radius).square()  # (B, 1, U)
        near = rel[..., 0].square() + rel[..., 1].square() <= blast  # (B, S, U)
        extra = extra | (boom.unsqueeze(-1) & near)  # (B, S, U)
    others = index[:, rows].unsqueeze(-1) != tab.rows  # (B, S, U) not the direct target
    return extra & others & (tab.splash_hit > 0) & live.unsqueeze(1)  # (B, S, U)


def _volley(
    s: UnitState,
    tab: UnitTable,
    fire: torch.Tensor,
    index: torch.Tensor,
    extra: torch.Tensor | None,
) -> torch.Tensor:
    """Apply every shot of the loop (targets and splash victims); (B, U) damage received.

    Units without shields take a fixed health damage per shot, summed with a scatter.
    Shielded units take the shots one after another in unit order: per attack, shields
    first, then health minus armor; a (B, U, C) prefix sum over the shooters lets a
    shield that breaks mid-volley pass the rest of the damage on exactly.
    """
    rows, cols = tab.splash_rows, tab.shield_cols  # (S,), (C,)
    received = torch.zeros_like(s.health)  # (B, U)
    if tab.any_plain:
        per_shooter = gather_pairs(tab.hit_health, index) * fire  # (B, U)
        received = received.scatter_add_(1, index, per_shooter)  # (B, U)
        if extra is not None:
            splash = torch.where(extra, tab.splash_hit_health, tab.zero)  # (B, S, U)
            received = received + splash.sum(1)  # (B, U)
        if cols.numel() > 0:
            received = received * tab.plain  # (B, U) shielded units are done below
        s.health = (s.health - received).clamp(min=0)  # (B, U)
    if cols.numel() == 0:
        return received
    aim = (index.unsqueeze(-1) == cols) & fire.unsqueeze(-1)  # (B, U, C) shooter -> victim
    hit = torch.where(aim, tab.hit_c, tab.zero)  # (B, U, C) raw damage per attack
    if extra is not None:
        splash = torch.where(extra[:, :, cols], tab.splash_hit[:, :, cols], tab.zero)  # (B, S, C)
        hit = hit.index_add(1, rows, splash)  # (B, U, C)
    armor = tab.armor[:, cols].unsqueeze(1)  # (B, 1, C) victim armor
    health0, shield0 = s.health[:, cols], s.shield[:, cols]  # (B, C), (B, C)
    health, shield = health0, shield0  # (B, C), (B, C)
    for k in range(tab.max_attacks):
        raw = hit if k == 0 else hit * (tab.attacks > k).unsqueeze(-1)  # (B, U, C)
        before = raw.cumsum(1) - raw  # (B, U, C) raw damage of earlier shooters on c
        on_shield = torch.minimum(raw, (shield.unsqueeze(1) - before).clamp(min=0))  # (B, U, C)
        rest = raw - on_shield  # (B, U, C)
        on_health = torch.where(
            rest > 0, (rest - armor).clamp(min=MIN_DAMAGE), tab.zero
        )  # (B, U, C)
        shield = shield - on_shield.sum(1)  # (B, C)
        health = health - on_health.sum(1)  # (B, C)
    s.health = s.health.index_copy(1, cols, health.clamp(min=0))  # (B, U)
    s.shield = s.shield.index_copy(1, cols, shield)  # (B, U)
    return received.index_copy(1, cols, (health0 - health) + (shield0 - shield))  # (B, U)


def _heal(
    s: UnitState, tab: UnitTable, heal: torch.Tensor, index: torch.Tensor, before: torch.Tensor
) -> None:
    """Medivacs heal their targets (from the loop-start health) and pay energy for it."""
    missing = gather_units(tab.health_max - before, index)  # (B, U) per healer
    afford = s.energy * MEDIVAC_HEAL_PER_ENERGY  # (B, U)
    amount = torch.minimum(torch.minimum(afford, missing), tab.zero + HEAL_PER_LOOP)  # (B, U)
    amount = amount.clamp(min=0) * heal  # (B, U)
    s.energy = s.energy - amount / MEDIVAC_HEAL_PER_ENERGY  # (B, U)
    gained = torch.zeros_like(s.health).scatter_add_(1, index, amount)  # (B, U) per patient
    grown = torch.minimum(s.health + gained, tab.health_max)  # (B, U)
    s.health = torch.where(s.health > 0, grown, s.health)  # (B, U) the dead stay dead


def _regenerate(s: UnitState, tab: UnitTable, received: torch.Tensor, live: torch.Tensor) -> None:
    """Shields (after 10 s without damage), Zerg health and medivac energy grow back."""
    if tab.has_shields:
        s.since_hit = (s.since_hit + 1).masked_fill(received > 0, 0)  # (B, U)
        regen = (s.since_hit >= SHIELD_REGEN_DELAY) & live  # (B, U)
        grown = torch.minimum(s.shield + SHIELD_REGEN_PER_LOOP, tab.shield_max)  # (B, U)
        s.shield = torch.where(regen, grown, s.shield)  # (B, U)
    if tab.any_regen:
        grown = torch.minimum(s.health + tab.regen, tab.health_max)  # (B, U)
        s.health = torch.where(s.health > 0, grown, s.health)  # (B, U)
    if tab.any_heal:
        energy = torch.clamp(s.energy + ENERGY_PER_LOOP, max=MEDIVAC_ENERGY_MAX)  # (B, U)
        s.energy = torch.where(tab.heals & (s.health > 0), energy, s.energy)  # (B, U)


def game_loop(
    s: UnitState, tab: UnitTable, restart: torch.Tensor, near: Contacts | None = None
) -> torch.Tensor:
    """Advance every copy one game loop; returns each unit's shot target or -1, (B, U).

    ``near`` (from ``contacts``, once per agent step) limits the collision pairs on big
    maps; None checks every pair.

    ``restart`` (B, U) is the cooldown, in loops, of a weapon that fires this loop
    (the weapon's cooldown plus any jitter); the fraction of a loop by which the weapon
    was ready early is carried over, so the average rate of fire is exact.
    """
    live = s.health > 0  # (B, U)
    has = _retarget(s, tab, live)  # (B, U)
    index = s.target.clamp(min=0)  # (B, U)
    pos = s.pos  # (B, U, 2) loop-start positions
    target_pos = gather_units(pos, index)  # (B, U, 2)
    dist = length(target_pos - pos)  # (B, U)
    reach = gather_pairs(tab.reach, index)  # (B, U) centre distance within which it acts
    in_range = has & (dist <= reach + RANGE_SLACK)  # (B, U)
    ready = in_range & (s.cooldown <= 0)  # (B, U)
    fire = ready & ~tab.heals if tab.any_heal else ready  # (B, U)
    step = _move(s, tab, live, has, in_range, target_pos, reach)  # (B, U, 2)
    pos = s.pos + step  # (B, U, 2)
    if pass_apart(tab, pos.shape[0], torch.compiler.is_compiling()):
        if tab.native:  # an op Inductor calls
            args = (pos, live, step, tab.tie, tab.touch, tab.push, SLIDE, _EPS)
            pos = native.separate_op(*args)  # (B, U, 2)
        else:  # a graph break
            pos = _separate_in_planes(pos, tab, live, step)  # (B, U, 2)
    elif tab.collide:
        pos = _separate(pos, tab, live, step, near)  # (B, U, 2)
    s.pos = clamp_to_area(pos, tab.nav)  # (B, U, 2)
    before = s.health  # (B, U)
    # On the CPU a loop in which nobody fires skips the damage step (same result).
    if terrain.busy(fire):
        extra = _splash(tab, live, fire, index, pos, target_pos)  # (B, S, U) or None
        received = _volley(s, tab, fire, index, extra)  # (B, U)
        if tab.any_suicide:
            s.health = torch.where(fire & tab.suicide, tab.zero, s.health)  # (B, U) exploded
    else:
        received = torch.zeros_like(s.health)  # (B, U)
    if tab.any_heal:
        _heal(s, tab, in_range & tab.heals, index, before)
    _regenerate(s, tab, received, live)
    carry = torch.where(s.cooldown > -1, s.cooldown, tab.zero)  # (B, U) how early it was ready
    s.cooldown = (torch.where(fire, restart + carry, s.cooldown) - 1).clamp(min=-1)  # (B, U)
    return torch.where(fire, s.target, tab.no_target)  # (B, U)


@cache
def _separate_planes_fused() -> Callable[..., torch.Tensor]:
    """``_separate_planes`` compiled at the CPU's vector width, made on first use (at
    import it would cost every process the second Dynamo takes to import)."""
    return torch.compile(_separate_planes, dynamic=False)


def play_loops(
    loop_fn: Callable[..., torch.Tensor],
    s: UnitState,
    tab: UnitTable,
    restart: torch.Tensor,
    near: Contacts | None,
    played: torch.Tensor,
    live: torch.Tensor,
    record: bool,
) -> torch.Tensor:
    """One agent step's game loops: ``loop_fn`` (``game_loop``, or its compiled form) once
    per loop, SMACv2's hunt every ``HUNT_LOOPS`` of a copy's episode (``played`` (B,)
    loops so far, ``live`` (B,) copies still playing). ``restart`` (B, L, U): each loop's
    cooldown after a shot. Returns each unit's last shot target this step or -1, (B, U),
    when ``record`` (replays), else all -1.
    """
    shots = torch.full_like(s.target, NO_TARGET)  # (B, U)
    for loop in range(restart.shape[1]):
        if tab.hunt:
            hunt(s, tab, live & ((played + loop) % HUNT_LOOPS == 0))
        fired = loop_fn(s, tab, restart[:, loop], near)  # (B, U)
        if record:
            shots = torch.where(fired >= 0, fired, shots)  # (B, U)
    return shots
