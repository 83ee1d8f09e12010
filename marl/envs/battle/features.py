"""SMAC's observations, global state and available actions, for B copies at once.

Layouts, sizes and feature order are SMAC's (``get_obs_agent``, ``get_state``,
``get_avail_agent_actions``), including its quirks: a fixed sight range of 9 and
shoot range of 6 (centre to centre) for every unit, ``int()`` truncation in the move
checks, and the unit-type one-hots of ``maps.TYPE_ONE_HOTS``.

Observation of agent i (all zeros when i is dead):

1. move: availability of actions 2-5 (north, south, east, west);
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
dead), then every agent's last action one-hot and the optional timestep.

Medivacs: an agent medivac's attack action 6 + j heals ally j (available when ally j
is alive, not a medivac and within 6; only allies j < n_enemies have an action), as
SMAC. SMAC fills the enemy rows' "attackable" bit from the same action slots, so a
medivac's enemy row j shows whether it may heal *ally* j; reproduced.

SMACv2 maps (``*_gen`` map types) use SMACv2's sizes with its example configs
(unit_type_bits 3, obs_own_pos). They keep SMAC's fixed sight 9 and shoot range 6 and
its normalisations, where SMACv2's configs set ``use_unit_ranges`` (per-type sight and
shoot ranges); its optional conic field of view, stochastic capabilities and enemy
masks are not modelled.

Unit-type one-hots are per copy (SMACv2 teams differ between copies).

Shapes: B copies, N agents, M enemies, U = N + M units, A actions, O obs, S state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from marl.envs.battle.maps import TYPE_ONE_HOTS, MapSpec
from marl.envs.battle.sim import UnitState, UnitTable, alive, length
from marl.envs.battle.units import TYPE_NAMES

SIGHT_RANGE = 9.0  # SMAC's unit_sight_range, the same for every unit
SHOOT_RANGE = 6.0  # SMAC's unit_shoot_range
N_ACTIONS_NO_ATTACK = 6  # no-op, stop, north, south, east, west
N_MOVES = 4
NOOP, STOP, NORTH = 0, 1, 2
MOVE_DIRECTIONS = ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))  # N, S, E, W


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
        self.set_table(tab)

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
    def obs_size(self) -> int:
        return N_MOVES + self.m * self.enemy_feats + (self.n - 1) * self.ally_feats + self.own_feats

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

    def avail_actions(self, s: UnitState, geo: Geometry) -> torch.Tensor:
        """SMAC's masks: no-op only when dead; stop; moves into pathable cells; attacks <= 6."""
        n = self.n
        live = alive(s)  # (B, U)
        me = live[:, :n].unsqueeze(-1)  # (B, N, 1)
        probe = s.pos[:, :n].unsqueeze(2) + self.move_probe  # (B, N, 4, 2)
        cell = torch.trunc(probe).long()  # (B, N, 4, 2) as SMAC's int()
        inside = ((cell >= 0) & (cell < self.map_cells)).all(-1)  # (B, N, 4)
        cell = torch.minimum(cell.clamp(min=0), self.map_cells - 1)  # (B, N, 4, 2)
        flat = cell[..., 0] * self.tab.map_size[1] + cell[..., 1]  # (B, N, 4)
        moves = inside & self.tab.pathing[flat]  # (B, N, 4)
        shoot = (geo.dist[:, :, n:] <= SHOOT_RANGE) & live[:, None, n:]  # (B, N, M)
        if self.any_heal:  # a medivac's attack slots heal allies j < min(N, M)
            width = self._patients.shape[-1]
            near = geo.dist[:, :, :width] <= SHOOT_RANGE  # (B, N, n')
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
        seen = (geo.dist < SIGHT_RANGE) & live.unsqueeze(1) & me.unsqueeze(2)  # (B, N, U)
        near = torch.cat([geo.dist.unsqueeze(-1), geo.rel], -1) / SIGHT_RANGE  # (B, N, U, 3)
        enemy = self._enemy_block(near, avail, health, shield, seen)  # (B, N, M * Fe)
        ally = self._ally_block(near, health, shield, seen, last_action)  # (B, N, (N-1) * Fa)
        own = self._own_block(s, health, shield, me, t)  # (B, N, Fo)
        moves = avail[:, :, NORTH : NORTH + N_MOVES].float()  # (B, N, 4), zero when dead
        return torch.cat([moves, enemy.view(b, n, -1), ally.view(b, n, -1), own], -1)

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
        cooldown = cooldown / self.tab.max_cd  # (B, U)
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
