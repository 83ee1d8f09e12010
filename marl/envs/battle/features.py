"""SMAC's observations, global state and available actions, for B copies at once.

Layouts, sizes and feature order are SMAC's (``get_obs_agent``, ``get_state``,
``get_avail_agent_actions``), including its quirks: a fixed sight range of 9 and
shoot range of 6 (centre to centre) for every unit, ``int()`` truncation in the move
checks, and the unit-type one-hots of ``maps.TYPE_ONE_HOTS``.

Observation of agent i (all zeros when i is dead):

1. move: availability of actions 2-5 (north, south, east, west), then with
   obs_pathing_grid 8 pathing values and with obs_terrain_height 9 heights (below);
2. per enemy (filled when alive and closer than 9): attackable, dist/9, dx/9, dy/9,
   health, shield (Protoss enemies), type one-hot;
3. per other agent (filled when alive and closer than 9): visible, dist/9, dx/9, dy/9,
   health, shield (Protoss agents), type one-hot, last action (with obs_last_action);
4. own: health, shield (Protoss agents), with obs_own_pos (SMACv2) x/32 and y/32,
   type one-hot, then the timestep with obs_timestep_number (SMAC appends it after a
   zero slot it also reserves, so its obs is one longer than get_obs_size(); here it
   fills that slot and the sizes agree).

State: per agent [health, cooldown/max_cd (a medivac: energy/200), (x - cx)/32,
(y - cy)/32, shield, type], per enemy [health, rel x, rel y, shield, type] (zeros when
dead), then every agent's last action one-hot and the optional timestep. SMAC's
``agent_features``/``enemy_features`` name these state columns, so the obs flags below
leave them as they are.

Medivacs: an agent medivac's attack action 6 + j heals ally j (available when ally j
is alive, not a medivac and within 6; only allies j < n_enemies have an action), as
SMAC. SMAC fills the enemy rows' "attackable" bit from the same action slots, so a
medivac's enemy row j shows whether it may heal *ally* j; reproduced.

Pathing and heights (SMAC's ``get_surrounding_points``/``_pathing``/``_height``):
from the agent's cell (int(x), int(y)) the 8 points 2 * move_amount north, south,
east, west and move_amount diagonally NE, SW, SE, NW, in that order; the heights add
the agent's own cell as a ninth. A point outside the 32 x 32 map reads 1 in both.
The pathing value is SMAC's ``pathing_grid``: 1 where ground units may stand, 0
where not (SMAC converts SC2's grid to True = pathable and its move checks read it
so); here it is the map's ground grid, the cells the move masks read. SMAC's heights
are SC2's terrain-height bytes / 255. The battle maps have no height map, so this is
an APPROXIMATION from the cliff levels of the maps' ``t3SyncCliffLevel`` grids
(battle-spec.md §2) / 255: ground (pathable) cells 64/255, void cells 0, and the
raised areas of ``MapSpec.heights`` painted over them (2c_vs_64zg's plateau 128/255,
its ramps 72, 88 and 104 /255). SMAC needs an integer move_amount (it indexes with
the sums); a fractional one is floored here.

SMACv2 (``use_unit_ranges``, off by default, on every map): each agent observes and
attacks with its own type's sight and shoot range instead of 9 and 6, as SMACv2's
``StarCraft2Env.unit_sight_range``/``unit_shoot_range`` (github.com/oxwhirl/smacv2,
``smacv2/env/starcraft2/starcraft2.py``). Their tables equal ``units.py``'s sight and
weapon ranges, which are read here:

    type       sight  shoot        type       sight  shoot
    marine       9     5           zealot       9     0.1 -> 2
    marauder    10     6           colossus    10     7
    medivac     11     4 (heal)    zergling     8     0.1 -> 2
    stalker     10     6           hydralisk    9     5
                                   baneling     8     0.25 -> 2

The shoot range is at least ``min_attack_range`` (SMACv2's 2), still compared with the
centre distance. The sight range decides which enemies and allies are filled and
divides their dist, dx and dy; the shoot range decides the attack (medivac: heal)
masks and so the enemy rows' attackable bits. SMACv2 uses neither range in the state
nor for the enemies' behaviour, so neither changes here.

SMACv2 maps (``*_gen`` map types) use SMACv2's sizes with its example configs
(unit_type_bits 3, obs_own_pos). SMACv2's other options are not modelled: the conic
field of view (``conic_fov``), ``prob_obs_enemy`` (SMACv2 shares a sighted enemy with
each other agent with this probability, through per-episode tag state), its enemy
masks and its stochastic attack and health capabilities.

Unit-type one-hots and the unit ranges are per copy (SMACv2 teams differ between
copies).

Shapes: B copies, N agents, M enemies, U = N + M units, A actions, O obs, S state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from marl.envs.battle.maps import TYPE_ONE_HOTS, MapSpec
from marl.envs.battle.sim import UnitState, UnitTable, alive, length, type_columns
from marl.envs.battle.terrain import pathing_grid
from marl.envs.battle.units import TYPE_NAMES

SIGHT_RANGE = 9.0  # SMAC's unit_sight_range of every unit (without use_unit_ranges)
SHOOT_RANGE = 6.0  # SMAC's unit_shoot_range
N_ACTIONS_NO_ATTACK = 6  # no-op, stop, north, south, east, west
N_MOVES = 4
NOOP, STOP, NORTH = 0, 1, 2
MOVE_DIRECTIONS = ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))  # N, S, E, W
# SMAC's get_surrounding_points in units of move_amount (N, S, E, W at 2, then NE, SW,
# SE, NW), then the agent's own cell (heights only).
SURROUNDING = ((0, 2), (0, -2), (2, 0), (-2, 0), (1, 1), (-1, -1), (1, -1), (-1, 1), (0, 0))
N_PATHING, N_HEIGHTS = 8, 9  # SMAC's n_obs_pathing, n_obs_height
OUTSIDE = 1.0  # SMAC's pathing and height value of a point off the map
GROUND_LEVEL = 64.0  # t3SyncCliffLevel of the ground (void is 0)
HEIGHT_SCALE = 255.0  # SMAC divides SC2's height bytes by this


@dataclass(frozen=True)
class FeatureFlags:
    """SMAC's observation and state switches."""

    obs_all_health: bool = True
    obs_own_health: bool = True
    obs_last_action: bool = False
    obs_timestep_number: bool = False
    state_last_action: bool = True
    state_timestep_number: bool = False
    obs_instead_of_state: bool = False
    obs_own_pos: bool = False
    obs_pathing_grid: bool = False
    obs_terrain_height: bool = False
    use_unit_ranges: bool = False
    min_attack_range: float = 2.0


class Geometry(NamedTuple):
    """Positions of every unit relative to every agent."""

    rel: torch.Tensor  # (B, N, U, 2) unit minus agent
    dist: torch.Tensor  # (B, N, U)


def _type_codes(order: tuple[str, ...], bits: int) -> torch.Tensor:
    """Type one-hot of every unit type in SMAC's order (zeros if not listed), (K, bits)."""
    out = torch.zeros(len(TYPE_NAMES), bits)
    for i, name in enumerate(order[:bits]):
        out[TYPE_NAMES.index(name), i] = 1.0
    return out


class Features:
    """Computes SMAC's obs, state and action masks from the simulator's unit state."""

    def __init__(
        self,
        spec: MapSpec,
        tab: UnitTable,
        flags: FeatureFlags,
        move_amount: float,
        episode_limit: int,
        device: torch.device,
    ) -> None:
        self.flags = flags
        self.episode_limit = episode_limit
        self.n, self.m = spec.n_agents, spec.n_enemies
        self.n_actions = N_ACTIONS_NO_ATTACK + self.m
        self.obs_own_health = flags.obs_own_health or flags.obs_all_health
        self.shield_ally = 1 if spec.a_race == "P" else 0
        self.shield_enemy = 1 if spec.b_race == "P" else 0
        self.utb = spec.unit_type_bits
        ally_order, enemy_order = TYPE_ONE_HOTS[spec.map_type]
        self._ally_code = _type_codes(ally_order, self.utb).to(device)  # (K, T)
        self._enemy_code = _type_codes(enemy_order, self.utb).to(device)  # (K, T)
        others = [[j for j in range(self.n) if j != i] for i in range(self.n)]
        others_t = torch.tensor(others, dtype=torch.long, device=device)
        self.others = others_t.reshape(self.n, self.n - 1)  # (N, N-1)
        self.action_ids = torch.arange(self.n_actions, device=device)  # (A,)
        self.rows = torch.arange(self.n, device=device).unsqueeze(1)  # (N, 1)
        half = move_amount / 2  # SMAC checks the cell move_amount / 2 away
        self.move_probe = torch.tensor(MOVE_DIRECTIONS, device=device) * half  # (4, 2)
        self.map_cells = torch.tensor(tab.map_size, device=device)  # (2,)
        self.centre = self.map_cells.float() / 2  # (2,)
        self.max_distance = self.map_cells.float()  # (2,) playable area 0-32
        self.surround = torch.tensor(SURROUNDING, device=device) * move_amount  # (9, 2)
        self.heights = self._height_grid(spec, tab, device)  # (W * H,)
        columns = type_columns(device)
        self._type_sight = columns.sight  # (K,) SMACv2's sight ranges
        self._type_shoot = columns.weapon_range.clamp(min=flags.min_attack_range)  # (K,)
        self.set_table(tab)

    @staticmethod
    def _height_grid(spec: MapSpec, tab: UnitTable, device: torch.device) -> torch.Tensor:
        """Approximate SMAC heights per cell from cliff levels, (W * H,) float32."""
        ground = GROUND_LEVEL / HEIGHT_SCALE
        grid = torch.where(tab.pathing, ground, 0.0)  # (W * H,) ground or void
        for area, height in spec.heights:
            inside = pathing_grid((area,), tab.map_size, device)  # (W * H,)
            grid = torch.where(inside, height, grid)  # (W * H,)
        return grid

    def set_table(self, tab: UnitTable) -> None:
        """Use ``tab``'s units (their types give the one-hots), after a new team is drawn."""
        self.tab = tab
        n = self.n
        self.ally_type = self._ally_code[tab.types[:, :n]]  # (B, N, T)
        self.enemy_type = self._enemy_code[tab.types[:, n:]]  # (B, M, T)
        self.heals = tab.heals[:, :n]  # (B, N) agent medivacs
        self.any_heal = bool(self.heals.any())
        width = min(n, self.m)  # allies with a heal action slot
        self._patients = ~tab.heals[:, None, :width]  # (B, 1, n') healable allies
        self.sight: float | torch.Tensor = SIGHT_RANGE
        self.shoot: float | torch.Tensor = SHOOT_RANGE
        if self.flags.use_unit_ranges:
            self.sight = self._type_sight[tab.types[:, :n]].unsqueeze(-1)  # (B, N, 1)
            self.shoot = self._type_shoot[tab.types[:, :n]].unsqueeze(-1)  # (B, N, 1)

    # ------------------------------------------------------------------ sizes

    @property
    def enemy_feats(self) -> int:
        health = 1 + self.shield_enemy if self.flags.obs_all_health else 0
        return 4 + self.utb + health

    @property
    def ally_feats(self) -> int:
        health = 1 + self.shield_ally if self.flags.obs_all_health else 0
        last = self.n_actions if self.flags.obs_last_action else 0
        return 4 + self.utb + health + last

    @property
    def own_feats(self) -> int:
        health = 1 + self.shield_ally if self.obs_own_health else 0
        pos = 2 if self.flags.obs_own_pos else 0
        return self.utb + health + pos + int(self.flags.obs_timestep_number)

    @property
    def move_feats(self) -> int:
        pathing = N_PATHING if self.flags.obs_pathing_grid else 0
        heights = N_HEIGHTS if self.flags.obs_terrain_height else 0
        return N_MOVES + pathing + heights

    @property
    def obs_size(self) -> int:
        others = self.m * self.enemy_feats + (self.n - 1) * self.ally_feats
        return self.move_feats + others + self.own_feats

    @property
    def state_size(self) -> int:
        if self.flags.obs_instead_of_state:
            return self.obs_size * self.n
        size = self.n * len(self.agent_features) + self.m * len(self.enemy_features)
        size += self.n * self.n_actions if self.flags.state_last_action else 0
        return size + int(self.flags.state_timestep_number)

    @property
    def agent_features(self) -> list[str]:
        """SMAC's ally_state_attr_names."""
        names = ["health", "energy/cooldown", "rel_x", "rel_y"]
        names += ["shield"] * self.shield_ally
        return names + [f"type_{i}" for i in range(self.utb)]

    @property
    def enemy_features(self) -> list[str]:
        """SMAC's enemy_state_attr_names."""
        names = ["health", "rel_x", "rel_y"] + ["shield"] * self.shield_enemy
        return names + [f"type_{i}" for i in range(self.utb)]

    # ------------------------------------------------------------------ tensors

    def geometry(self, s: UnitState) -> Geometry:
        rel = s.pos.unsqueeze(1) - s.pos[:, : self.n].unsqueeze(2)  # (B, N, U, 2)
        return Geometry(rel, length(rel))  # (B, N, U)

    def _cells(self, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat grid index (clamped) and on-map flag of integer cells (..., 2), (...) each."""
        inside = ((cell >= 0) & (cell < self.map_cells)).all(-1)  # (...)
        cell = torch.minimum(cell.clamp(min=0), self.map_cells - 1)  # (..., 2)
        return cell[..., 0] * self.tab.map_size[1] + cell[..., 1], inside  # (...), (...)

    def avail_actions(self, s: UnitState, geo: Geometry) -> torch.Tensor:
        """SMAC's masks: no-op only when dead; stop; moves into pathable cells; attacks <= 6
        (with use_unit_ranges: within each agent's shoot range)."""
        n = self.n
        live = alive(s)  # (B, U)
        me = live[:, :n].unsqueeze(-1)  # (B, N, 1)
        probe = s.pos[:, :n].unsqueeze(2) + self.move_probe  # (B, N, 4, 2)
        flat, inside = self._cells(torch.trunc(probe).long())  # (B, N, 4) as SMAC's int()
        moves = inside & self.tab.pathing[flat]  # (B, N, 4)
        shoot = (geo.dist[:, :, n:] <= self.shoot) & live[:, None, n:]  # (B, N, M)
        if self.any_heal:  # a medivac's attack slots heal allies j < min(N, M)
            width = self._patients.shape[-1]
            near = geo.dist[:, :, :width] <= self.shoot  # (B, N, n')
            heal = near & live[:, None, :width] & self._patients  # (B, N, n')
            pad = heal.new_zeros(*heal.shape[:2], self.m - width)  # (B, N, M - n')
            heal = torch.cat([heal, pad], -1)  # (B, N, M)
            shoot = torch.where(self.heals.unsqueeze(-1), heal, shoot)  # (B, N, M)
        return torch.cat([~me, me, moves & me, shoot & me], dim=-1)  # (B, N, A)

    def _one_hot_actions(self, last_action: torch.Tensor) -> torch.Tensor:
        """One-hot of each agent's last action (all zeros for -1: none yet), (B, N, A)."""
        return (last_action.unsqueeze(-1) == self.action_ids).float()  # (B, N, A)

    def _fractions(self, s: UnitState) -> tuple[torch.Tensor, torch.Tensor]:
        health = s.health / self.tab.health_max  # (B, U)
        shield = s.shield / self.tab.shield_max.clamp(min=1.0)  # (B, U)
        return health, shield

    def obs(
        self,
        s: UnitState,
        geo: Geometry,
        avail: torch.Tensor,
        last_action: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        n, b = self.n, s.pos.shape[0]
        live = alive(s)  # (B, U)
        me = live[:, :n]  # (B, N)
        health, shield = self._fractions(s)  # (B, U), (B, U)
        sight = self.sight  # 9, or (B, N, 1) with use_unit_ranges
        scale = sight if isinstance(sight, float) else sight.unsqueeze(-1)  # (B, N, 1, 1)
        seen = (geo.dist < sight) & live.unsqueeze(1) & me.unsqueeze(2)  # (B, N, U)
        near = torch.cat([geo.dist.unsqueeze(-1), geo.rel], -1) / scale  # (B, N, U, 3)
        enemy = self._enemy_block(near, avail, health, shield, seen)  # (B, N, M * Fe)
        ally = self._ally_block(near, health, shield, seen, last_action)  # (B, N, (N-1) * Fa)
        own = self._own_block(s, health, shield, me, t)  # (B, N, Fo)
        moves = avail[:, :, NORTH : NORTH + N_MOVES].float()  # (B, N, 4), zero when dead
        parts = [moves, *self._surroundings(s, me), enemy.view(b, n, -1), ally.view(b, n, -1)]
        return torch.cat([*parts, own], -1)

    def _surroundings(self, s: UnitState, me: torch.Tensor) -> list[torch.Tensor]:
        """The pathing (B, N, 8) and height (B, N, 9) values around each agent, as flagged."""
        flags = self.flags
        if not (flags.obs_pathing_grid or flags.obs_terrain_height):
            return []
        own = torch.trunc(s.pos[:, : self.n]).unsqueeze(2)  # (B, N, 1, 2) SMAC's int()
        flat, inside = self._cells(torch.floor(own + self.surround).long())  # (B, N, 9)
        live = me.unsqueeze(-1).float()  # (B, N, 1)
        parts = []
        if flags.obs_pathing_grid:
            path = self.tab.pathing[flat[..., :N_PATHING]].float()  # (B, N, 8)
            parts.append(torch.where(inside[..., :N_PATHING], path, OUTSIDE) * live)
        if flags.obs_terrain_height:
            parts.append(torch.where(inside, self.heights[flat], OUTSIDE) * live)  # (B, N, 9)
        return parts

    def _enemy_block(
        self,
        near: torch.Tensor,
        avail: torch.Tensor,
        health: torch.Tensor,
        shield: torch.Tensor,
        seen: torch.Tensor,
    ) -> torch.Tensor:
        n, m = self.n, self.m
        b = near.shape[0]
        parts = [avail[:, :, N_ACTIONS_NO_ATTACK:].unsqueeze(-1).float(), near[:, :, n:]]
        if self.flags.obs_all_health:
            parts.append(health[:, None, n:, None].expand(b, n, m, 1))  # (B, N, M, 1)
            if self.shield_enemy:
                parts.append(shield[:, None, n:, None].expand(b, n, m, 1))
        if self.utb:
            parts.append(self.enemy_type.unsqueeze(1).expand(b, n, m, self.utb))  # (B, N, M, T)
        feats = torch.cat(parts, -1)  # (B, N, M, Fe)
        return feats * seen[:, :, n:].unsqueeze(-1)  # (B, N, M, Fe)

    def _ally_block(
        self,
        near: torch.Tensor,
        health: torch.Tensor,
        shield: torch.Tensor,
        seen: torch.Tensor,
        last_action: torch.Tensor,
    ) -> torch.Tensor:
        n = self.n
        near = near[:, self.rows, self.others]  # (B, N, N-1, 3)
        seen = seen[:, self.rows, self.others]  # (B, N, N-1)
        parts = [torch.ones_like(near[..., :1]), near]
        if self.flags.obs_all_health:
            parts.append(health[:, :n][:, self.others].unsqueeze(-1))  # (B, N, N-1, 1)
            if self.shield_ally:
                parts.append(shield[:, :n][:, self.others].unsqueeze(-1))
        if self.utb:
            parts.append(self.ally_type[:, self.others])  # (B, N, N-1, T)
        if self.flags.obs_last_action:
            parts.append(self._one_hot_actions(last_action)[:, self.others])  # (B, N, N-1, A)
        feats = torch.cat(parts, -1)  # (B, N, N-1, Fa)
        return feats * seen.unsqueeze(-1)  # (B, N, N-1, Fa)

    def _own_block(
        self,
        s: UnitState,
        health: torch.Tensor,
        shield: torch.Tensor,
        me: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        n = self.n
        b = health.shape[0]
        parts = []
        if self.obs_own_health:
            parts.append(health[:, :n].unsqueeze(-1))  # (B, N, 1)
            if self.shield_ally:
                parts.append(shield[:, :n].unsqueeze(-1))
        if self.flags.obs_own_pos:
            parts.append(s.pos[:, :n] / self.max_distance)  # (B, N, 2) x / 32, y / 32
        if self.utb:
            parts.append(self.ally_type)  # (B, N, T)
        own = torch.cat(parts, -1) if parts else health.new_zeros(b, n, 0)  # (B, N, Fo')
        own = own * me.unsqueeze(-1)  # (B, N, Fo')
        if self.flags.obs_timestep_number:
            step = (t.float() / self.episode_limit)[:, None, None].expand(b, n, 1)  # (B, N, 1)
            own = torch.cat([own, step], -1)  # (B, N, Fo)
        return own

    def state(
        self,
        s: UnitState,
        last_action: torch.Tensor,
        t: torch.Tensor,
        obs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Global state, (B, S) float32 (the agents' obs concatenated with obs_instead_of_state)."""
        b, n = s.pos.shape[0], self.n
        if self.flags.obs_instead_of_state:
            assert obs is not None, "obs_instead_of_state needs the observations"
            return obs.reshape(b, -1)  # (B, N * O)
        live = alive(s).unsqueeze(-1)  # (B, U, 1)
        health, shield = self._fractions(s)  # (B, U), (B, U)
        rel = (s.pos - self.centre) / self.max_distance  # (B, U, 2)
        cooldown = s.cooldown.clamp(min=0)  # (B, U)
        if self.any_heal:
            cooldown = torch.where(self.tab.heals, s.energy, cooldown)  # (B, U) energy
        # SC2's random delay can push a cooldown past SMAC's divisor (the colossus: 25.97
        # loops over 24): capped at 1, so every feature stays in [-1, 1] (unit_range).
        cooldown = (cooldown / self.tab.max_cd).clamp(max=1.0)  # (B, U)
        allies = [health[:, :n, None], cooldown[:, :n, None], rel[:, :n]]
        enemies = [health[:, n:, None], rel[:, n:]]
        if self.shield_ally:
            allies.append(shield[:, :n, None])
        if self.shield_enemy:
            enemies.append(shield[:, n:, None])
        if self.utb:
            allies.append(self.ally_type)  # (B, N, T)
            enemies.append(self.enemy_type)  # (B, M, T)
        parts = [
            (torch.cat(allies, -1) * live[:, :n]).view(b, -1),  # (B, N * Fa)
            (torch.cat(enemies, -1) * live[:, n:]).view(b, -1),  # (B, M * Fe)
        ]
        if self.flags.state_last_action:
            parts.append(self._one_hot_actions(last_action).view(b, -1))  # (B, N * A)
        if self.flags.state_timestep_number:
            parts.append((t.float() / self.episode_limit).unsqueeze(-1))  # (B, 1)
        return torch.cat(parts, -1)  # (B, S)
