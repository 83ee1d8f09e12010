"""`env=battle`: a SMAC-compatible micro-battle simulator in PyTorch, batched over B copies.

This is an APPROXIMATION of StarCraft II micro, not StarCraft II. It reproduces SMAC's
interface exactly (action, observation and state layouts and sizes, reward,
termination, ``get_env_info``/``get_stats`` keys) on all 23 SMAC maps and on
SMACv2-style random teams (``smacv2.py``), and simulates the fights with SC2-like
mechanics (game loops, weapon cooldowns, edge-to-edge ranges, walk-in attack orders,
armor, bonus damage, shields and their regeneration, medivac healing with energy,
colossus line splash, baneling explosions, Zerg regeneration, air units, static
units, pathable areas with walls, chokes and cliffs walked round by waypoints, the
stock AI's attack-move and target choice, unit collisions by SC2 radii), but it has
no SC2 pathfinding grid (units push apart instead of planning round each other), no
projectile delays and no other abilities. Win
rates measured on it are NOT SMAC results and must never be reported or compared as
such; ``smac_env_info()["simulator"]`` says so in every run.

Time: one agent step is ``step_mul`` (8) game loops of 1/16 game-second; see
``sim.py`` for what happens in a loop and ``features.py`` for the observations.

Agents (allies, indices 0..N-1) act through SMAC's actions: 0 no-op (dead only),
1 stop, 2-5 move north/south/east/west (an order to the point ``move_amount`` away),
6 + j attack enemy j (an order that walks into weapon range and fires on cooldown,
until the target dies or another order; a medivac's 6 + j heals ally j instead).
Allies never act on their own. The enemies are SC2's stock AI: an attack-move to the
map's target point, acquiring the nearest ally in sight and re-acquiring when it
dies (2s_vs_1sc's spine crawler has no order: it shoots what comes into range).
A side left with only medivacs has lost (SMAC's and SMACv2's only_medivac_left).

Randomness (SC2's random cooldown delay, 2m_vs_1z's attack point, SMACv2 teams and
start positions, and by option spawn jitter) comes from the env's own
counter-based generator, one stream per copy keyed by (seed, copy index), so copy 0 of
a batched env plays exactly like a B = 1 env with the same seed and actions. On SMACv2
maps ``max_reward`` is fixed per copy by the team of its first episode, as SMACv2 fixes
it at the first reset.

Shapes: B copies, N agents, M enemies, U = N + M units, A actions, O obs, S state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from marl.envs.action_check import ActionCheck
from marl.envs.base import EnvInfo, StepResult, copy_mask
from marl.envs.battle.features import (
    MOVE_DIRECTIONS,
    N_ACTIONS_NO_ATTACK,
    NOOP,
    FeatureFlags,
    Features,
    Geometry,
)
from marl.envs.battle.frame import BattleFrame, BattleInfo, BattleReplay
from marl.envs.battle.maps import MEDIVAC_MAP_TYPES, MapSpec, get_map
from marl.envs.battle.rng import CopyRNG
from marl.envs.battle.sim import (
    ATTACK,
    ATTACK_MOVE,
    IDLE,
    MOVE,
    NO_TARGET,
    SCALAR_OPTIONS,
    SHIELD_REGEN_DELAY,
    UnitState,
    UnitTable,
    alive,
    contacts,
    every_pair,
    game_loop,
    in_planes,
    play_loops,
    prepare_compile,
    scalar_loops,
    type_columns,
)
from marl.envs.battle.smacv2 import draw_positions, draw_teams
from marl.envs.battle.terrain import clamp_to_area
from marl.envs.battle.units import MEDIVAC_ENERGY_START, TYPE_NAMES, UNIT_TYPES, type_index
from marl.envs.smac_args import SMACArgs
from marl.validation import bounds

SIMULATOR = "marl.battle (approximation of SC2; not SMAC results)"
# SC2 adds a random delay to every weapon cooldown, uniform in -0.0625..+0.125 game-s
# (SC2Pod, "Attack speed"): -1..+2 game loops.
COOLDOWN_DELAY = (-1.0, 2.0)
SPAWN_GAP = 0.1  # space between neighbouring units in the spawn formation
_SORT_SCALE = 1000.0  # agent sort key: type group, then x, then y
NO_ACTION = -1  # last action before the first step (a zero one-hot, as SMAC)
# env.compile: up to this many copies all game loops of a step compile into one call
# (fewer calls: a 3m step 1.11 -> 0.78 ms at 1 copy, 1.20 -> 0.93 at 8, 1.50 -> 1.32 at
# 64, but 2.37 -> 2.63 at 256; a first compile of about a minute instead of 25 s). Not
# on SMACv2 maps (a compile per mix of unit types) nor with the collision pass in planes
# (a graph break in every loop).
WHOLE_STEP_MAX_COPIES = 64
COMPILED_VARIANTS = 64  # env.compile: compiled variants kept per function (dynamo's default 8)


@dataclass
class BattleEnvConfig(SMACArgs):
    """Schema for `env=battle` (SMAC's env_args, plus the simulator's own randomness)."""

    _target_: str = "marl.envs.battle.env.BattleEnv"
    spawn_noise: float = field(default=0.0, metadata=bounds(0))
    """Each unit spawns up to this far (uniformly, per axis) from its formation slot
    (SMAC places units exactly; 1.0 was the default before collisions)."""
    cooldown_jitter: bool = True
    """SC2's random delay: every weapon cooldown restart gets -1..+2 game loops (uniform),
    so identical units drift apart and greedy test episodes differ, as in SC2."""
    collisions: bool = True
    """Units do not overlap: movement resolves overlaps by their SC2 radii (``sim.py``)."""
    use_unit_ranges: bool = False
    """SMACv2's per-type sight and shoot ranges in observations and attack masks,
    instead of SMAC's fixed 9 and 6."""
    min_attack_range: float = field(default=2.0, metadata=bounds(0))
    """With use_unit_ranges: the shoot range of the masks is at least this (SMACv2's 2)."""
    obs_own_pos: bool | None = None
    """Observe own x/32, y/32 (SMACv2); None: on for SMACv2 names, off for SMAC maps."""
    defer_checks: bool | None = None
    """Check actions on the device, read back once per episode (no per-step host wait);
    None: on for every device but the CPU."""
    compile: bool = False
    """torch.compile the simulator: game loop, views, random streams (fused kernels; on a
    CPU the env steps 2-4x faster; the first compile on a machine takes about 40 s, later
    ones about 5 s from Inductor's cache). Needs a C++ compiler on the CPU."""


def _formation(count: int, spacing: float) -> list[tuple[float, float]]:
    """Offsets of a compact grid of ``count`` units around a spawn point."""
    rows = max(1, math.ceil(math.sqrt(count)))
    cols = math.ceil(count / rows)
    return [
        ((i // rows - (cols - 1) / 2) * spacing, (i % rows - (rows - 1) / 2) * spacing)
        for i in range(count)
    ]


class BattleEnv:
    """B copies of one SMAC map, simulated together on one torch device."""

    def __init__(
        self,
        map_name: str = BattleEnvConfig.map_name,
        step_mul: int = BattleEnvConfig.step_mul,
        move_amount: float = BattleEnvConfig.move_amount,
        continuing_episode: bool = BattleEnvConfig.continuing_episode,
        reward_sparse: bool = BattleEnvConfig.reward_sparse,
        reward_only_positive: bool = BattleEnvConfig.reward_only_positive,
        reward_death_value: float = BattleEnvConfig.reward_death_value,
        reward_win: float = BattleEnvConfig.reward_win,
        reward_defeat: float = BattleEnvConfig.reward_defeat,
        reward_negative_scale: float = BattleEnvConfig.reward_negative_scale,
        reward_scale: bool = BattleEnvConfig.reward_scale,
        reward_scale_rate: float = BattleEnvConfig.reward_scale_rate,
        obs_all_health: bool = BattleEnvConfig.obs_all_health,
        obs_own_health: bool = BattleEnvConfig.obs_own_health,
        obs_last_action: bool = BattleEnvConfig.obs_last_action,
        obs_pathing_grid: bool = BattleEnvConfig.obs_pathing_grid,
        obs_terrain_height: bool = BattleEnvConfig.obs_terrain_height,
        obs_timestep_number: bool = BattleEnvConfig.obs_timestep_number,
        state_last_action: bool = BattleEnvConfig.state_last_action,
        state_timestep_number: bool = BattleEnvConfig.state_timestep_number,
        obs_instead_of_state: bool = BattleEnvConfig.obs_instead_of_state,
        spawn_noise: float = BattleEnvConfig.spawn_noise,
        cooldown_jitter: bool = BattleEnvConfig.cooldown_jitter,
        collisions: bool = BattleEnvConfig.collisions,
        use_unit_ranges: bool = BattleEnvConfig.use_unit_ranges,
        min_attack_range: float = BattleEnvConfig.min_attack_range,
        obs_own_pos: bool | None = BattleEnvConfig.obs_own_pos,
        defer_checks: bool | None = BattleEnvConfig.defer_checks,
        compile: bool = BattleEnvConfig.compile,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if step_mul < 1:
            raise ValueError(f"step_mul must be at least 1, got {step_mul}.")
        spec = get_map(map_name)
        self.spec: MapSpec = spec
        self.map_name = map_name
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.step_mul = step_mul
        self.move_amount = float(move_amount)
        self.continuing_episode = continuing_episode
        self.reward_sparse = reward_sparse
        self.reward_only_positive = reward_only_positive
        self.reward_death_value = float(reward_death_value)
        self.reward_win = float(reward_win)
        self.reward_defeat = float(reward_defeat)
        self.reward_negative_scale = float(reward_negative_scale)
        self.reward_scale = reward_scale
        self.reward_scale_rate = float(reward_scale_rate)
        self.spawn_noise = float(spawn_noise)
        self.cooldown_jitter = cooldown_jitter
        self.collisions = collisions
        self.compile = compile
        self.seed = seed

        self.n_agents, self.n_enemies = spec.n_agents, spec.n_enemies
        self.episode_limit = spec.episode_limit
        self._rng = CopyRNG(seed, batch_size, self.device, compile)
        self._rank = torch.tensor(
            [float(sorted(TYPE_NAMES).index(k)) for k in TYPE_NAMES], device=self.device
        )  # (K,) SMAC sorts agents by RL type id: alphabetical
        self._columns = type_columns(self.device)
        self._spawn_offsets = self._spawn_layout()  # (U, 2), fixed teams
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self.tab = self._first_table()
        if obs_own_pos is None:
            obs_own_pos = spec.team is not None
        flags = FeatureFlags(
            obs_all_health=obs_all_health,
            obs_own_health=obs_own_health,
            obs_last_action=obs_last_action,
            obs_timestep_number=obs_timestep_number,
            state_last_action=state_last_action,
            state_timestep_number=state_timestep_number,
            obs_instead_of_state=obs_instead_of_state,
            obs_own_pos=obs_own_pos,
            obs_pathing_grid=obs_pathing_grid,
            obs_terrain_height=obs_terrain_height,
            use_unit_ranges=use_unit_ranges,
            min_attack_range=float(min_attack_range),
        )
        self.features = Features(
            spec, self.tab, flags, self.move_amount, self.episode_limit, self.device
        )
        self.n_actions = self.features.n_actions
        self._check = ActionCheck(self.n_actions, self.device, defer_checks)
        if compile:
            # Dynamo keeps 8 compiled variants per function by default, then runs it eager
            # (slower than never compiling): SMACv2 teams (one variant per mix of
            # abilities) or several envs in one process (maps, batch sizes) need more.
            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(dynamo.recompile_limit, COMPILED_VARIANTS)
            prepare_compile()

        # Scalar loops where the units do not fill Inductor's vectors (sim.VECTOR_UNITS).
        options: dict[str, Any] = dict(SCALAR_OPTIONS) if scalar_loops(self.tab.n_units) else {}

        def fused(fn: Callable[..., Any]) -> Any:
            return torch.compile(fn, dynamic=False, options=options) if compile else fn

        self._game_loop = fused(game_loop)
        whole = batch_size <= WHOLE_STEP_MAX_COPIES and spec.team is None
        whole = whole and not in_planes(self.tab, batch_size, compile)
        self._whole_step = fused(play_loops) if compile and whole else None
        # What the agents see, fused the same way (geometry, masks, observations, state).
        self._view_geometry = fused(self.features.geometry)
        self._view_avail = fused(self.features.avail_actions)
        self._view_obs = fused(self.features.obs)
        self._view_state = fused(self.features.state)
        # SMAC fixes max_reward at the first reset: here per copy, from its first team.
        points = (self.tab.health_max + self.tab.shield_max)[:, self.n_agents :].sum(1)  # (B,)
        self._max_reward = self.n_enemies * self.reward_death_value + self.reward_win + points
        self.max_reward = float(self._max_reward[0])
        directions = torch.tensor(MOVE_DIRECTIONS, device=self.device)  # (4, 2) N, S, E, W
        self._move_vectors = directions * self.move_amount  # (4, 2)

        b, n = batch_size, self.n_agents
        zeros = torch.zeros(b, dtype=torch.long, device=self.device)  # (B,)
        self._t = zeros.clone()  # (B,)
        self._done = torch.zeros(b, dtype=torch.bool, device=self.device)  # (B,)
        self._last_action = torch.zeros(b, n, dtype=torch.long, device=self.device)  # (B, N)
        self._battles_won = torch.zeros((), dtype=torch.long, device=self.device)
        self._battles_game = torch.zeros((), dtype=torch.long, device=self.device)
        self._timeouts = torch.zeros((), dtype=torch.long, device=self.device)
        self._units: UnitState  # set by reset()
        self._enemy_goal: torch.Tensor  # (B, 2), set by reset()
        self._geo: Geometry | None = None
        self._avail_cache: torch.Tensor | None = None
        self._obs_cache: torch.Tensor | None = None
        self._how = (self._done, self._done, self._done)  # won, lost, timeout of the last step
        self._recording = False
        self._recordings: list[BattleReplay | None] = []  # per copy, this batch's episode
        self._replays: list[BattleReplay] = []  # finished episodes, in (batch, copy) order
        self._replays_saved = 0
        self.reset()

    # ------------------------------------------------------------------ info

    def get_env_info(self) -> EnvInfo:
        return EnvInfo(
            n_agents=self.n_agents,
            n_actions=self.n_actions,
            obs_shape=self.features.obs_size,
            state_shape=self.features.state_size,
            episode_limit=self.episode_limit,
            unit_range=True,
        )

    def smac_env_info(self) -> dict[str, Any]:
        """SMAC's get_env_info dict (with agent/enemy feature names) and the simulator's name."""
        info: dict[str, Any] = dict(self.get_env_info().as_dict())
        info["agent_features"] = self.features.agent_features
        info["enemy_features"] = self.features.enemy_features
        info["simulator"] = SIMULATOR
        return info

    def get_stats(self) -> dict[str, float]:
        """SMAC's get_stats over every copy's finished battles (win_rate 0 before any)."""
        won, games = int(self._battles_won), int(self._battles_game)
        timeouts = int(self._timeouts)
        return {
            "battles_won": won,
            "battles_game": games,
            "battles_draw": timeouts,
            "win_rate": won / games if games else 0.0,
            "timeouts": timeouts,
            "restarts": 0,
        }

    # ------------------------------------------------------------------ episode

    def reset(self) -> None:
        """Start a new episode in every copy, spawn positions drawn from each copy's stream."""
        self._check.raise_pending()
        self._units = self._spawn()
        self._t.zero_()
        self._done.zero_()
        self._last_action.fill_(NO_ACTION)
        self._invalidate()
        self._start_recordings()

    def reset_copies(self, mask: torch.Tensor) -> None:
        """Start a new episode in the copies where ``mask`` (B,) bool is True while the
        others play on (``runner=autoreset``). A reset copy draws from its own stream just
        as ``reset()`` would, so its episodes do not depend on when the other copies end."""
        self._check.raise_pending()
        if self._recording:
            raise RuntimeError("replays record whole batches; reset every copy with reset().")
        mask = copy_mask(mask, self.batch_size, self.device)  # (B,)
        old_units, old_goal = self._units, self._enemy_goal
        units = self._spawn(advance=mask)
        units.keep_where(~mask, old_units)
        self._units = units
        self._enemy_goal = torch.where(mask.unsqueeze(1), self._enemy_goal, old_goal)  # (B, 2)
        self._t = torch.where(mask, 0, self._t)  # (B,)
        self._done = self._done & ~mask  # (B,)
        self._last_action = self._last_action.masked_fill(mask.unsqueeze(1), NO_ACTION)  # (B, N)
        self._invalidate()

    def _spawn_layout(self) -> torch.Tensor:
        """Formation offsets plus spawn point per unit of a fixed team, (U, 2).

        Units sharing a spawn point (one team's, or a group's own) form one grid.
        """
        spec = self.spec
        if spec.team is not None:
            return torch.zeros(spec.n_agents + spec.n_enemies, 2, device=self.device)  # (U, 2)
        names = spec.ally_units() + spec.enemy_units()
        points = spec.spawn_points()
        n = spec.n_agents
        clusters: dict[tuple[bool, tuple[float, float]], list[int]] = {}
        for i, point in enumerate(points):
            clusters.setdefault((i >= n, point), []).append(i)
        layout = [(0.0, 0.0)] * len(names)
        for (_, centre), members in clusters.items():
            spacing = 2 * max(UNIT_TYPES[names[i]].radius for i in members) + SPAWN_GAP
            for i, (dx, dy) in zip(members, _formation(len(members), spacing), strict=True):
                layout[i] = (centre[0] + dx, centre[1] + dy)
        return torch.tensor(layout, device=self.device)  # (U, 2)

    def _first_table(self) -> UnitTable:
        """The unit table of the first episode (on SMACv2 maps: its teams are drawn now)."""
        spec = self.spec
        if spec.team is None:
            names = spec.ally_units() + spec.enemy_units()
            types = torch.tensor([[type_index(u) for u in names]], device=self.device)  # (1, U)
        else:
            self._pending = self._draw_teams()
            types = self._pending[0]  # (B, U)
        return UnitTable.build(spec, types, self.batch_size, self.device, self.collisions)

    def _sort_allies(
        self, types: torch.Tensor, pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SMAC's agent order, by (unit type, x, y): types (B, U) and positions (B, U, 2)."""
        n = self.n_agents
        rank = self._rank[types[:, :n]].double()  # (B, N)
        key = rank * _SORT_SCALE**2 + pos[:, :n, 0].double() * _SORT_SCALE  # (B, N)
        order = (key + pos[:, :n, 1].double()).argsort(dim=1)  # (B, N)
        ally_types = types[:, :n].gather(1, order)  # (B, N)
        ally_pos = pos[:, :n].gather(1, order.unsqueeze(-1).expand(-1, -1, 2))  # (B, N, 2)
        types = torch.cat([ally_types, types[:, n:]], 1)  # (B, U)
        return types, torch.cat([ally_pos, pos[:, n:]], 1)  # (B, U), (B, U, 2)

    def _noise(self, advance: torch.Tensor | None = None) -> torch.Tensor:
        """Spawn jitter, uniform in [-spawn_noise, spawn_noise) per axis, (B, U, 2); only
        the ``advance`` (B,) copies' streams move on (None: all)."""
        b, u = self.batch_size, self.n_agents + self.n_enemies
        draws = self._rng.uniform(2 * u, advance=advance).view(b, u, 2)  # (B, U, 2)
        return (draws * 2 - 1) * self.spawn_noise  # (B, U, 2)

    def _draw_teams(self, advance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SMACv2: new unit types (B, U) and start positions (B, U, 2), allies sorted; only
        the ``advance`` (B,) copies' streams move on (None: all)."""
        team = self.spec.team
        assert team is not None
        ally_types, enemy_types = draw_teams(self._rng, team, advance)  # (B, N), (B, M)
        ally_pos, enemy_pos, _ = draw_positions(self._rng, team, advance)  # (B, N/M, 2)
        types = torch.cat([ally_types, enemy_types], 1)  # (B, U)
        pos = torch.cat([ally_pos, enemy_pos], 1) + self._noise(advance)  # (B, U, 2)
        radius = self._columns.radius[types].unsqueeze(-1)  # (B, U, 1)
        width, height = self.spec.map_size
        size = torch.tensor([width, height], device=self.device)  # (2,)
        pos = torch.minimum(torch.maximum(pos, radius), size - radius)  # (B, U, 2) open map
        return self._sort_allies(types, pos)

    def _spawn(self, advance: torch.Tensor | None = None) -> UnitState:
        """Fresh units in every copy: full health, ready weapons, enemies given their order.
        ``advance`` (B,) bool: the copies whose streams move on (None: all); the other
        copies keep their unit types (SMACv2) and the caller keeps their units."""
        b, u, n, spec = self.batch_size, self.tab.n_units, self.n_agents, self.spec
        if spec.team is not None:
            if self._pending is None:
                types, pos = self._draw_teams(advance)  # (B, U), (B, U, 2)
                if advance is not None:
                    types = torch.where(advance.unsqueeze(1), types, self.tab.types)  # (B, U)
                self._pending = (types, pos)
                self.tab = UnitTable.build(spec, types, b, self.device, self.collisions)
                self.features.set_table(self.tab)
            pos = self._pending[1]  # (B, U, 2)
            self._pending = None
            target = pos[:, :n].mean(1)  # (B, 2) the allies' mean start position
        else:
            pos = self._spawn_offsets + self._noise(advance)  # (B, U, 2)
            pos = clamp_to_area(pos, self.tab.nav)  # (B, U, 2)
            _, pos = self._sort_allies(self.tab.types, pos)  # (B, U, 2)
            start = torch.tensor(spec.attack_target or (0.0, 0.0), device=self.device)  # (2,)
            target = start.expand(b, 2)  # (B, 2)
            if spec.attack_target_end is not None:
                end = torch.tensor(spec.attack_target_end, device=self.device)  # (2,)
                target = start + self._rng.uniform(1, advance) * (end - start)  # (B, 2)
        self._enemy_goal = target  # (B, 2)
        moving = spec.team is not None or spec.attack_target is not None
        self._enemy_order = ATTACK if spec.attack_units else ATTACK_MOVE if moving else IDLE
        is_enemy = self.tab.is_enemy  # (U,)
        goal = torch.where(is_enemy.unsqueeze(-1), target.unsqueeze(1), pos)  # (B, U, 2)
        if self._enemy_order == IDLE:
            goal = pos  # (B, U, 2) no order: nowhere to go
        energy = torch.where(self.tab.heals, MEDIVAC_ENERGY_START, 0.0)  # (B, U)
        return UnitState(
            pos=pos,
            health=self.tab.health_max.clone(memory_format=torch.contiguous_format),  # (B, U)
            shield=self.tab.shield_max.clone(memory_format=torch.contiguous_format),  # (B, U)
            energy=energy,
            cooldown=torch.zeros(b, u, device=self.device),  # (B, U)
            since_hit=torch.full((b, u), SHIELD_REGEN_DELAY, device=self.device),  # (B, U)
            order=torch.where(is_enemy, self._enemy_order, IDLE).expand(b, u).clone(),  # (B, U)
            goal=goal,
            target=torch.full((b, u), NO_TARGET, device=self.device),  # (B, U)
        )

    # ------------------------------------------------------------------ observations

    def _geometry(self) -> Geometry:
        if self._geo is None:
            self._geo = self._view_geometry(self._units)
        return self._geo

    def _avail(self) -> torch.Tensor:
        if self._avail_cache is None:
            self._avail_cache = self._view_avail(self._units, self._geometry())
        return self._avail_cache

    def _invalidate(self) -> None:
        """Forget geometry, masks and obs after the units changed."""
        self._geo = None
        self._avail_cache = None
        self._obs_cache = None

    def avail_actions(self) -> torch.Tensor:
        """Available-action masks, (B, N, A) bool."""
        return self._avail().clone()

    def obs(self) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        if self._obs_cache is None:
            self._obs_cache = self._view_obs(
                self._units, self._geometry(), self._avail(), self._last_action, self._t
            )
        return self._obs_cache.clone()

    def state(self) -> torch.Tensor:
        """Global state, (B, S) float32."""
        obs = self.obs() if self.features.flags.obs_instead_of_state else None
        return self._view_state(self._units, self._last_action, self._t, obs)

    # ------------------------------------------------------------------ step

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply actions (B, N) long; copies that ended stay frozen, pay 0 and never raise."""
        expected = (self.batch_size, self.n_agents)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected}, got {tuple(actions.shape)}.")
        actions = actions.to(device=self.device, dtype=torch.long)  # (B, N)
        live = ~self._done  # (B,)
        actions = self._check(actions, live, self._avail())  # (B, N)
        # Ended copies are restored after the loops; the CPU skips the copy when none ended.
        deferred = self._check.deferred
        frozen = self._units.clone() if deferred or not bool(live.all()) else None
        alive_before = alive(self._units)  # (B, U)
        points_before = self._units.health + self._units.shield  # (B, U)
        self._issue_orders(actions, live)
        self._last_action = torch.where(live.unsqueeze(1), actions, self._last_action)  # (B, N)
        shots = self._play_loops(live)  # (B, U)
        if frozen is not None:
            self._units.keep_where(~live, frozen)
        self._t = self._t + live.long()  # (B,)
        result = self._outcome(alive_before, points_before, live)
        self._done = self._done | result.terminated  # (B,)
        self._invalidate()
        if self._recordings:
            self._record_step(shots, result, live)
        return result

    def _issue_orders(self, actions: torch.Tensor, live: torch.Tensor) -> None:
        """Turn the agents' actions into unit orders (stop, move to a point, attack)."""
        s, n = self._units, self.n_agents
        acting = alive(s)[:, :n] & live.unsqueeze(1) & (actions != NOOP)  # (B, N)
        is_move = (actions >= 2) & (actions < N_ACTIONS_NO_ATTACK)  # (B, N)
        is_attack = actions >= N_ACTIONS_NO_ATTACK  # (B, N)
        order = torch.where(is_move, MOVE, torch.where(is_attack, ATTACK, IDLE))  # (B, N)
        step = self._move_vectors[(actions - 2).clamp(0, 3)]  # (B, N, 2)
        goal = torch.where(is_move.unsqueeze(-1), s.pos[:, :n] + step, s.pos[:, :n])  # (B, N, 2)
        first = torch.where(self.tab.heals[:, :n], 0, n)  # (B, N) a medivac targets allies
        target = torch.where(is_attack, actions - N_ACTIONS_NO_ATTACK + first, NO_TARGET)  # (B, N)
        # Stop is an idle order with no target; no-op (the dead) changes nothing.
        s.order[:, :n] = torch.where(acting, order, s.order[:, :n])  # (B, N)
        s.goal[:, :n] = torch.where(acting.unsqueeze(-1), goal, s.goal[:, :n])  # (B, N, 2)
        s.target[:, :n] = torch.where(acting, target, s.target[:, :n])  # (B, N)

    def _play_loops(self, live: torch.Tensor) -> torch.Tensor:
        """Run step_mul game loops; returns the last unit each unit shot at, or -1, (B, U)."""
        b, u, loops = self.batch_size, self.tab.n_units, self.step_mul
        restart = self.tab.cooldown.unsqueeze(1).expand(b, loops, u)  # (B, L, U) after a shot
        if self.cooldown_jitter:
            draws = self._rng.uniform(loops * u, advance=live).view(b, loops, u)  # (B, L, U)
            low, high = COOLDOWN_DELAY
            restart = restart + low + draws * (high - low)  # (B, L, U)
        played = self._t * loops  # (B,) game loops this episode so far
        pairs = every_pair(self.tab, self.batch_size, self.compile)
        near = contacts(self._units, self.tab) if self.tab.collide and not pairs else None
        args = (self._units, self.tab, restart, near, played, live, bool(self._recordings))
        if self._whole_step is not None:  # all loops in one compiled call
            return self._whole_step(game_loop, *args)
        return play_loops(self._game_loop, *args)

    def _outcome(
        self, alive_before: torch.Tensor, points_before: torch.Tensor, live: torch.Tensor
    ) -> StepResult:
        """SMAC's reward, termination and info for the step just played."""
        n = self.n_agents
        now = alive(self._units)  # (B, U)
        points = self._units.health + self._units.shield  # (B, U)
        lost_points = torch.where(alive_before, points_before - points, 0.0)  # (B, U)
        died = (alive_before & ~now).float()  # (B, U)
        reward = self._reward(lost_points, died)  # (B,)
        n_ally, n_enemy = now[:, :n].sum(1), now[:, n:].sum(1)  # (B,), (B,)
        lost = (n_ally == 0) & (n_enemy > 0)  # (B,)
        won = (n_ally > 0) & (n_enemy == 0)  # (B,)
        if self.spec.map_type in MEDIVAC_MAP_TYPES:  # a side with only medivacs left lost
            fighters = now & ~self.tab.heals  # (B, U)
            lost = lost | (fighters[:, :n].sum(1) == 0)  # (B,)
            won = won | (fighters[:, n:].sum(1) == 0)  # (B,)
        won = won & ~lost & live  # (B,)
        lost = lost & live  # (B,)
        ended = live & (lost | won | ((n_ally == 0) & (n_enemy == 0)))  # (B,)
        timeout = live & ~ended & (self._t >= self.episode_limit)  # (B,)
        if self.reward_sparse:
            reward = won.float() - lost.float()  # (B,)
        else:
            reward = reward + won.float() * self.reward_win + lost.float() * self.reward_defeat
        if self.reward_scale:
            reward = reward / (self._max_reward / self.reward_scale_rate)  # (B,)
        reward = torch.where(live, reward, 0.0)  # (B,)
        terminated = ended | timeout  # (B,)
        self._how = (won, lost, timeout)
        self._battles_game += terminated.sum()
        self._battles_won += won.sum()
        self._timeouts += timeout.sum()
        info = {
            "battle_won": won,
            "dead_allies": n - n_ally,
            "dead_enemies": self.n_enemies - n_enemy,
            "episode_limit": timeout & self.continuing_episode,
        }
        return StepResult(reward=reward.float(), terminated=terminated, info=info)

    def _reward(self, lost_points: torch.Tensor, died: torch.Tensor) -> torch.Tensor:
        """SMAC's reward_battle (before win bonus and scaling), (B,)."""
        n = self.n_agents
        enemy = lost_points[:, n:].sum(1) + self.reward_death_value * died[:, n:].sum(1)  # (B,)
        if self.reward_only_positive:
            return enemy.abs()  # (B,) shield regeneration counts as positive
        neg = self.reward_negative_scale
        ally = neg * lost_points[:, :n].sum(1) + neg * self.reward_death_value * died[:, :n].sum(1)
        return enemy - ally  # (B,)

    # ------------------------------------------------------------------ scenarios

    def set_unit_state(
        self,
        *,
        pos: torch.Tensor | None = None,
        health: torch.Tensor | None = None,
        shield: torch.Tensor | None = None,
        cooldown: torch.Tensor | None = None,
        energy: torch.Tensor | None = None,
    ) -> None:
        """Overwrite unit attributes of every copy, for scripted scenarios and tests.

        Each argument is (B, U, ...) or (U, ...), broadcast over copies; units are allies
        first, then enemies. ``health`` and ``shield`` are absolute points (health 0:
        dead); ``cooldown`` is game loops until the weapon is ready (a huge value
        disarms a unit); ``energy`` is a medivac's. Orders are reset: allies idle,
        enemies back on the map's order (attack-move to its target, or idle) with no
        target. Positions are clamped into each unit's pathable area.
        """
        s, b, u = self._units, self.batch_size, self.tab.n_units
        if pos is not None:
            pos = pos.to(self.device, torch.float32).expand(b, u, 2)  # (B, U, 2)
            s.pos = clamp_to_area(pos.clone(), self.tab.nav)  # (B, U, 2)
        values = (
            ("health", health),
            ("shield", shield),
            ("cooldown", cooldown),
            ("energy", energy),
        )
        for name, value in values:
            if value is not None:
                setattr(s, name, value.to(self.device, torch.float32).expand(b, u).clone())
        now = alive(s)  # (B, U)
        s.health = s.health.clamp(min=0)  # (B, U)
        s.shield = torch.where(now, s.shield, 0.0)  # (B, U)
        is_enemy = torch.arange(u, device=self.device) >= self.n_agents  # (U,)
        s.order = torch.where(now & is_enemy, self._enemy_order, IDLE)  # (B, U)
        target = self._enemy_goal.unsqueeze(1)  # (B, 1, 2)
        if self._enemy_order == IDLE:
            target = s.pos  # (B, U, 2)
        s.goal = torch.where(is_enemy.unsqueeze(-1), target, s.pos)  # (B, U, 2)
        s.target = torch.full((b, u), NO_TARGET, device=self.device)  # (B, U)
        s.since_hit = torch.full((b, u), SHIELD_REGEN_DELAY, device=self.device)  # (B, U)
        self._invalidate()

    @property
    def units(self) -> UnitState:
        """The live unit state (read it; change it through set_unit_state)."""
        return self._units

    # ------------------------------------------------------------------ replays

    def set_recording(self, on: bool) -> None:
        """Record every copy's episodes that start (at reset) while on.

        An episode is kept once it ends; one cut short by a reset (or by turning
        recording off) is dropped.
        """
        self._recording = on
        if not on:
            self._keep_finished()
            self._recordings = []

    def recorded_replays(self) -> list[BattleReplay]:
        """Finished recorded episodes since the last call (then forgotten), batch by
        batch in copy order: the order in which the runner counts the episodes."""
        self._keep_finished()
        out, self._replays = self._replays, []
        return out

    def save_replay(self, directory: str | Path) -> list[Path]:
        """Write every finished recorded episode as ``<map>_<n>.gif``; returns the paths."""
        from marl.envs.battle.render import save_gif

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for replay in self.recorded_replays():
            path = folder / f"{self.map_name}_{self._replays_saved}.gif"
            save_gif(replay, path)
            self._replays_saved += 1
            paths.append(path)
        return paths

    def _start_recordings(self) -> None:
        """At reset: keep the last batch's finished episodes, start one recording per copy."""
        self._keep_finished()
        self._recordings = []
        if self._recording:
            first = self._frames(None, [""] * self.batch_size)
            for b, frame in enumerate(first):
                self._recordings.append(BattleReplay(self._battle_info(b), [frame]))

    def _keep_finished(self) -> None:
        """Move this batch's finished recordings, in copy order, to the ones to save."""
        for b, replay in enumerate(self._recordings):
            if replay is not None and replay.frames[-1].outcome:
                self._replays.append(replay)
                self._recordings[b] = None

    def _battle_info(self, copy: int) -> BattleInfo:
        tab = self.tab
        return BattleInfo(
            map_name=self.map_name,
            map_size=self.spec.map_size,
            pathable=self.spec.pathable,
            unit_types=tab.names(copy),
            radius=tuple(tab.radius[copy].tolist()),
            is_ally=tuple(i < self.n_agents for i in range(tab.n_units)),
            max_health=tuple(tab.health_max[copy].tolist()),
            max_shield=tuple(tab.shield_max[copy].tolist()),
        )

    def _frames(self, shots: torch.Tensor | None, outcomes: list[str]) -> list[BattleFrame]:
        """Every copy's units now, one frame per copy (one ``tolist`` per tensor)."""
        s = self._units
        pos = s.pos.tolist()  # (B, U, 2)
        health, shield = s.health.tolist(), s.shield.tolist()  # (B, U), (B, U)
        alive_now = (s.health > 0).tolist()  # (B, U)
        if shots is None:
            shots = torch.full_like(s.target, NO_TARGET)  # (B, U)
        attacking = shots.tolist()  # (B, U)
        steps = self._t.tolist()  # (B,)
        return [
            BattleFrame(
                step=steps[b],
                x=tuple(p[0] for p in pos[b]),
                y=tuple(p[1] for p in pos[b]),
                health=tuple(health[b]),
                shield=tuple(shield[b]),
                alive=tuple(alive_now[b]),
                attacking=tuple(attacking[b]),
                outcome=outcomes[b],
            )
            for b in range(self.batch_size)
        ]

    def _record_step(self, shots: torch.Tensor, result: StepResult, live: torch.Tensor) -> None:
        """Add this step's frame to the recording of every copy that played it."""
        won, lost, timeout = (x.tolist() for x in self._how)  # (B,) each
        ended = result.terminated.tolist()  # (B,)
        outcomes = [
            ("won" if w else "lost" if lo else "timeout" if t else "draw") if e else ""
            for w, lo, t, e in zip(won, lost, timeout, ended, strict=True)
        ]
        frames = self._frames(shots, outcomes)
        for b, played in enumerate(live.tolist()):
            replay = self._recordings[b]
            if played and replay is not None:
                replay.frames.append(frames[b])

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Generator, unit state, counters: enough to continue exactly."""
        return {
            "map_name": self.map_name,
            "rng": self._rng.state_dict(),
            "units": self._units.as_dict(),
            "t": self._t.clone(),  # (B,)
            "done": self._done.clone(),  # (B,)
            "last_action": self._last_action.clone(),  # (B, N)
            "battles_won": self._battles_won.clone(),
            "battles_game": self._battles_game.clone(),
            "timeouts": self._timeouts.clone(),
            "types": self.tab.types.clone(memory_format=torch.contiguous_format),  # (B, U)
            "enemy_goal": self._enemy_goal.clone(),  # (B, 2)
            "max_reward": self._max_reward.clone(),  # (B,)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the env must play the same map and batch size."""
        if state["map_name"] != self.map_name:
            raise ValueError(
                f"State is for map {state['map_name']!r}, this env plays {self.map_name!r}."
            )
        if tuple(state["t"].shape) != (self.batch_size,):
            raise ValueError(
                f"State has batch size {tuple(state['t'].shape)}, expected ({self.batch_size},)."
            )
        dev = self.device
        self._rng.load_state_dict(state["rng"])
        self._units = UnitState.from_dict(state["units"], dev)
        self._t = state["t"].to(dev, torch.long).clone()  # (B,)
        self._done = state["done"].to(dev, torch.bool).clone()  # (B,)
        self._last_action = state["last_action"].to(dev, torch.long).clone()  # (B, N)
        self._battles_won = state["battles_won"].to(dev).clone()
        self._battles_game = state["battles_game"].to(dev).clone()
        self._timeouts = state["timeouts"].to(dev).clone()
        if "enemy_goal" in state:  # absent from part-1 checkpoints (fixed maps only)
            self._enemy_goal = state["enemy_goal"].to(dev).clone()  # (B, 2)
            self._max_reward = state["max_reward"].to(dev).clone()  # (B,)
        if self.spec.team is not None:
            self._pending = None
            self.tab = UnitTable.build(
                self.spec, state["types"].to(dev), self.batch_size, dev, self.collisions
            )
            self.features.set_table(self.tab)
        self._invalidate()

    def close(self) -> None:
        """Nothing to release."""
