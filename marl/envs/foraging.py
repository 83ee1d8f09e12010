"""Level-Based Foraging written for marl: ``lbforaging``'s game, with no package and no wrappers.

``env=foraging env.key=Foraging-8x8-2p-2f-v3`` plays the game that ``env=lbf`` plays
through ``lbforaging`` 2.0 (Papoudakis et al. 2021), rule for rule, and draws the same
episodes from the same seeds: episode seeds come from one ``torch.Generator`` per copy
(seeded ``seed + i``) as in `marl.envs.workers`, and every episode is spawned with
``numpy.random.default_rng(episode seed)`` making the draws ``lbforaging`` makes. So a run
with ``env=foraging`` sees the episodes ``env=lbf`` sees (tests/envs/test_foraging.py checks
obs, masks, rewards and ends step by step against ``lbforaging`` when it is installed).
What it saves is time: each step is a few dozen Python operations per copy, with no
Gymnasium wrappers, no observation-space checks and no per-step conversions.

The game (``lbforaging.foraging.environment``, v3 ids):

- A square field ``rows x cols``; ``players`` agents with levels in [1, 2]; up to ``foods`` foods,
  spawned away from the border and from each other (no food in the 3x3 around another
  or within 2 cells along its row or column), each with a level in [1, sum of the three
  lowest player levels] (``-coop``: every food at that maximum; ``-ind``: level 1).
- Actions: 0 none, 1 north (row - 1), 2 south, 3 west (col - 1), 4 east, 5 load. A move
  is available unless it leaves the field or enters a food; load, when a food is next to
  the player (4-neighbourhood). An unavailable action is played as none (as lbforaging
  does). Players that move to the same cell (or into one whose player stays) all stay.
- Load: the loading players next to a food load it together if their levels sum to at
  least its level. Each gets ``level * food level / (sum of their levels * total food
  level spawned)`` (rewards sum to 1 over an episode that clears the field); if they are
  too weak each pays ``penalty`` (``-pen`` ids: 0.1). The food is removed.
- The episode ends when the field is empty or after ``time_limit`` steps (then a
  truncation, ``info["episode_limit"]`` True, as ``env=lbf``'s TimeLimit wrapper reports).
- Observation of each agent, ``3 * foods + 3 * players`` values: the foods in its
  ``(2 * sight + 1)`` window in row-major order as (row, col, level) relative to the
  window's corner (clipped at the field's edge), then itself and the other players in
  sight as (row, col, level); unseen entries are (-1, -1, 0). ``-2s`` ids: sight 2,
  otherwise the field size. State: all observations concatenated (``env=lbf``'s concat).
- Team reward: the agents' rewards summed (``reward: sum``) or averaged (``mean``);
  ``agent_rewards: true`` adds each agent's as ``reward_agent_<i>`` to the step info.

Grid observations (``Foraging-grid-*`` ids) are not written here: use ``env=lbf``.

Exact resume: ``state_dict`` holds the copies' seed generators and every copy's episode in
progress, so ``runner=autoreset`` checkpoints mid-episode continue exactly.

Shapes: B env copies, N agents (players), A actions (6), O obs size (3 * foods + 3 * N).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from marl.envs.base import EnvInfo, StepResult, copy_mask
from marl.envs.gymnasium_env import REWARD_MODES
from marl.envs.workers import EpisodeSeeds
from marl.errors import UsageError
from marl.validation import bounds, choices

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
N_ACTIONS = 6
MIN_PLAYER_LEVEL, MAX_PLAYER_LEVEL = 1, 2
MIN_FOOD_LEVEL = 1
PEN_PENALTY = 0.1  # the penalty of lbforaging's `-pen` ids
SPAWN_ATTEMPTS = 1000  # lbforaging's tries per player and for all foods
KEY = re.compile(
    r"^(?:lbforaging:)?Foraging(?P<sight>-\d+s)?-(?P<rows>\d+)x(?P<cols>\d+)-(?P<players>\d+)p-"
    r"(?P<foods>\d+)f(?P<coop>-coop)?(?P<ind>-ind)?(?P<pen>-pen)?-v3$"
)
_MOVES = {NORTH: (-1, 0), SOUTH: (1, 0), WEST: (0, -1), EAST: (0, 1)}


@dataclass
class ForagingEnvConfig:
    """Schema for `env=foraging`."""

    _target_: str = "marl.envs.foraging.ForagingEnv"
    key: str = "Foraging-8x8-2p-2f-v3"
    """An lbforaging v3 id: Foraging[-<k>s]-<rows>x<cols>-<p>p-<f>f[-coop][-ind][-pen]-v3."""
    time_limit: int = field(default=50, metadata=bounds(1))
    """Steps per episode; reaching it is a truncation (EPyMARL's LBF setting: 50)."""
    reward: str = field(default="sum", metadata=choices(*REWARD_MODES))
    """Team reward from the agents' rewards: sum | mean."""
    agent_rewards: bool = False
    """Also report each agent's step reward as info `reward_agent_<i>`."""


@dataclass(frozen=True)
class Rules:
    """One LBF task, as an lbforaging id names it."""

    rows: int
    cols: int
    players: int
    foods: int
    sight: int
    force_coop: bool = False
    max_food_level: int | None = None  # None: the sum of the three lowest player levels
    penalty: float = 0.0

    @classmethod
    def from_key(cls, key: str) -> Rules:
        match = KEY.match(key)
        if match is None:
            grid = " (grid observations are env=lbf's)" if "grid" in key else ""
            raise UsageError(
                f"env.key={key!r} is not a Level-Based Foraging id env=foraging plays{grid}; "
                "write it as Foraging[-<k>s]-<rows>x<cols>-<p>p-<f>f[-coop][-ind][-pen]-v3, "
                "e.g. Foraging-8x8-2p-2f-v3."
            )
        rows, cols = int(match["rows"]), int(match["cols"])
        players, foods = int(match["players"]), int(match["foods"])
        if rows != cols or rows < 3 or not 1 <= players < rows * cols or foods < 1:
            raise UsageError(
                f"env.key={key!r}: the field must be square (as lbforaging's are) and at least "
                "3x3 (foods keep off the border), with room for its players and one food."
            )
        sight = int(match["sight"][1:-1]) if match["sight"] else max(rows, cols)
        return cls(
            rows=rows,
            cols=cols,
            players=players,
            foods=foods,
            sight=sight,
            force_coop=bool(match["coop"]),
            max_food_level=1 if match["ind"] else None,
            penalty=PEN_PENALTY if match["pen"] else 0.0,
        )

    @property
    def obs_size(self) -> int:
        return 3 * self.foods + 3 * self.players


class Game:
    """One copy's episode: player cells and levels, the foods, the step count."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.pos: list[tuple[int, int]] = []  # (row, col) per player
        self.levels: list[int] = []
        self.food: dict[tuple[int, int], int] = {}  # (row, col) -> level
        self.spawned = 0  # total food level at the start: the reward's normaliser
        self.t = 0
        self.over = True
        self.truncated = False

    # -- spawning (lbforaging's draws, in its order) -----------------------------------------
    def reset(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        r = self.rules
        self.food = {}
        self._spawn_players(rng)
        top = sum(sorted(self.levels)[:3]) if r.max_food_level is None else r.max_food_level
        low = top if r.force_coop else MIN_FOOD_LEVEL
        self._spawn_food(rng, low, top)
        self.spawned = sum(self.food.values())
        self.t = 0
        self.over = False
        self.truncated = False

    def _spawn_players(self, rng: np.random.Generator) -> None:
        r = self.rules
        rng.permutation(r.players)  # lbforaging permutes the per-player level ranges (all equal)
        self.pos, self.levels = [], []
        for _ in range(r.players):
            for _ in range(SPAWN_ATTEMPTS):
                cell = (int(rng.integers(0, r.rows)), int(rng.integers(0, r.cols)))
                if cell not in self.pos:
                    self.pos.append(cell)
                    self.levels.append(int(rng.integers(MIN_PLAYER_LEVEL, MAX_PLAYER_LEVEL + 1)))
                    break
            else:
                raise RuntimeError(f"no free cell for a player on a {r.rows}x{r.cols} field.")

    def _spawn_food(self, rng: np.random.Generator, low: int, top: int) -> None:
        r = self.rules
        rng.permutation(r.foods)  # lbforaging permutes the per-food level ranges (all equal)
        for _ in range(SPAWN_ATTEMPTS):
            if len(self.food) == r.foods:
                return
            row, col = int(rng.integers(1, r.rows - 1)), int(rng.integers(1, r.cols - 1))
            if self._crowded(row, col) or (row, col) in self.pos:
                continue
            self.food[row, col] = low if low == top else int(rng.integers(low, top + 1))

    def _crowded(self, row: int, col: int) -> bool:
        """A food in the 3x3 around (row, col) or within 2 cells along its row or column."""
        for fr, fc in self.food:
            dr, dc = abs(fr - row), abs(fc - col)
            if (dr <= 1 and dc <= 1) or (dr <= 2 and dc == 0) or (dc <= 2 and dr == 0):
                return True
        return False

    # -- rules ---------------------------------------------------------------------------------
    def food_next_to(self, row: int, col: int) -> tuple[int, int] | None:
        """The food north, south, west or east of (row, col), if any (never two: see spawn)."""
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if (row + dr, col + dc) in self.food:
                return row + dr, col + dc
        return None

    def available(self) -> list[list[bool]]:
        """Every player's available actions, N x (A,)."""
        food, r = self.food, self.rules
        masks = []
        for row, col in self.pos:
            masks.append(
                [
                    True,
                    row > 0 and (row - 1, col) not in food,
                    row < r.rows - 1 and (row + 1, col) not in food,
                    col > 0 and (row, col - 1) not in food,
                    col < r.cols - 1 and (row, col + 1) not in food,
                    self.food_next_to(row, col) is not None,
                ]
            )
        return masks

    def step(self, actions: list[int], masks: list[list[bool]], time_limit: int) -> list[float]:
        """Play one joint action given the masks (N x (A,)) of the current cells; the
        players' rewards, (N,)."""
        self.t += 1
        rewards = [0.0] * self.rules.players
        targets: dict[tuple[int, int], list[int]] = {}
        loading = []
        for i, action in enumerate(actions):
            row, col = self.pos[i]
            if not masks[i][action]:
                action = NONE
            if action in _MOVES:
                dr, dc = _MOVES[action]
                targets.setdefault((row + dr, col + dc), []).append(i)
            else:
                targets.setdefault((row, col), []).append(i)
                if action == LOAD:
                    loading.append(i)
        for cell, movers in targets.items():
            if len(movers) == 1:  # two or more players aiming at one cell all stay
                self.pos[movers[0]] = cell
        # Loaders stay where they are, each next to one food: group them by it.
        groups: dict[tuple[int, int], list[int]] = {}
        for i in loading:
            food = self.food_next_to(*self.pos[i])
            if food is not None:
                groups.setdefault(food, []).append(i)
        for cell, group in groups.items():
            strength = sum(self.levels[j] for j in group)
            level = self.food[cell]
            if strength < level:
                for j in group:
                    rewards[j] -= self.rules.penalty
                continue
            for j in group:
                rewards[j] = self.levels[j] * level / (strength * self.spawned)
            del self.food[cell]
        self.truncated = self.t >= time_limit
        self.over = not self.food or self.truncated
        return rewards

    def observe(self) -> list[float]:
        """Every agent's observation, concatenated, (N * O,)."""
        r = self.rules
        foods = sorted(self.food.items())  # row-major, as lbforaging scans its window
        if r.sight >= max(r.rows, r.cols) - 1:  # every window is the whole field
            return self._observe_all(foods)
        out: list[float] = []
        for i in range(r.players):
            row, col = self.pos[i]
            top, left = max(row - r.sight, 0), max(col - r.sight, 0)
            bottom, right = min(row + r.sight + 1, r.rows), min(col + r.sight + 1, r.cols)
            seen = 0
            for (fr, fc), level in foods:
                if top <= fr < bottom and left <= fc < right:
                    out += (fr - top, fc - left, level)
                    seen += 1
            out += (-1, -1, 0) * (r.foods - seen)
            seen = 0
            for j in (i, *(j for j in range(r.players) if j != i)):
                y, x = self.pos[j][0] - top, self.pos[j][1] - left
                if min(y, x) >= 0 and max(y, x) <= 2 * r.sight:
                    out += (y, x, self.levels[j])
                    seen += 1
            out += (-1, -1, 0) * (r.players - seen)
        return out

    def _observe_all(self, foods: list[tuple[tuple[int, int], int]]) -> list[float]:
        """`observe` when every agent sees the whole field (the ids without ``-<k>s``):
        the same foods for all, then itself and the others at their own cells."""
        seen_foods: list[float] = []
        for (fr, fc), level in foods:
            seen_foods += (fr, fc, level)
        seen_foods += (-1, -1, 0) * (self.rules.foods - len(foods))
        players = [(*cell, level) for cell, level in zip(self.pos, self.levels, strict=True)]
        out: list[float] = []
        for i, me in enumerate(players):
            out += seen_foods
            out += me
            for j, other in enumerate(players):
                if j != i:
                    out += other
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "pos": [list(p) for p in self.pos],
            "levels": list(self.levels),
            "food": [[row, col, level] for (row, col), level in self.food.items()],
            "spawned": self.spawned,
            "t": self.t,
            "over": self.over,
            "truncated": self.truncated,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = [(int(p[0]), int(p[1])) for p in state["pos"]]
        self.levels = [int(v) for v in state["levels"]]
        self.food = {(int(f[0]), int(f[1])): int(f[2]) for f in state["food"]}
        self.spawned = int(state["spawned"])
        self.t = int(state["t"])
        self.over = bool(state["over"])
        self.truncated = bool(state["truncated"])


class ForagingEnv:
    """B copies of one Level-Based Foraging task (see the module doc)."""

    def __init__(
        self,
        key: str = ForagingEnvConfig.key,
        time_limit: int = ForagingEnvConfig.time_limit,
        reward: str = ForagingEnvConfig.reward,
        agent_rewards: bool = ForagingEnvConfig.agent_rewards,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if reward not in REWARD_MODES:
            raise UsageError(f"env.reward must be one of {REWARD_MODES}, got {reward!r}.")
        if time_limit < 1:
            raise UsageError(f"env.time_limit must be at least 1, got {time_limit}.")
        self._seeds = EpisodeSeeds(batch_size, seed)  # env=lbf's episode seeds
        self.key = key
        self.rules = Rules.from_key(key)
        self.time_limit = time_limit
        self.reward_mode = reward
        self.agent_rewards = agent_rewards
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._games = [Game(self.rules) for _ in range(batch_size)]
        self._masks: list[list[list[bool]]] = []  # B x N x (A,): the current cells' masks
        n, o = self.rules.players, self.rules.obs_size
        self._info = EnvInfo(
            n_agents=n,
            n_actions=N_ACTIONS,
            obs_shape=o,
            state_shape=n * o,
            episode_limit=time_limit,
        )
        self._obs = torch.zeros(batch_size, n, o)  # (B, N, O)
        self._avail = torch.zeros(batch_size, n, N_ACTIONS, dtype=torch.bool)  # (B, N, A)
        self.reset()

    def get_env_info(self) -> EnvInfo:
        return self._info

    # -- episodes ------------------------------------------------------------------------------
    def _new_episode(self, b: int) -> None:
        """Copy b's next episode, from the next seed of its generator."""
        self._games[b].reset(self._seeds.next(b))

    def reset(self) -> None:
        """Start a new episode in every copy."""
        for b in range(self.batch_size):
            self._new_episode(b)
        self._look()

    def reset_copies(self, mask: torch.Tensor) -> None:
        """Start a new episode in the copies where ``mask`` (B,) bool is True."""
        chosen = copy_mask(mask, self.batch_size, torch.device("cpu")).tolist()
        for b, reset in enumerate(chosen):
            if reset:
                self._new_episode(b)
        self._look()

    def _look(self) -> None:
        """New obs and mask tensors from the games (the caller may keep the old ones)."""
        n, o = self.rules.players, self.rules.obs_size
        self._masks = [game.available() for game in self._games]  # B x N x (A,)
        obs = [game.observe() for game in self._games]  # B x (N * O,)
        self._obs = self._tensor(np.array(obs, dtype=np.float32).reshape(self.batch_size, n, o))
        self._avail = self._tensor(np.array(self._masks, dtype=bool))  # (B, N, A)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def obs(self) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        return self._obs

    def state(self) -> torch.Tensor:
        """All observations concatenated, (B, N * O) float32."""
        return self._obs.reshape(self.batch_size, -1)

    def avail_actions(self) -> torch.Tensor:
        """Available-action masks, (B, N, A) bool."""
        return self._avail

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply actions (B, N) long; a copy whose episode ended pays 0 and stays ended."""
        n = self.rules.players
        if tuple(actions.shape) != (self.batch_size, n):
            raise ValueError(
                f"actions must have shape {(self.batch_size, n)}, got {tuple(actions.shape)}."
            )
        joint = actions.detach().to("cpu", torch.long).tolist()  # B x (N,)
        per_agent = [[0.0] * n for _ in range(self.batch_size)]  # B x (N,)
        for b, (game, acts) in enumerate(zip(self._games, joint, strict=True)):
            if not game.over:
                if not all(0 <= a < N_ACTIONS for a in acts):
                    raise ValueError(f"actions must lie in [0, {N_ACTIONS}), got {acts}.")
                per_agent[b] = game.step(acts, self._masks[b], self.time_limit)
        self._look()
        team = [sum(r) if self.reward_mode == "sum" else sum(r) / n for r in per_agent]
        games = self._games
        info = {"episode_limit": self._flags([g.truncated for g in games])}  # (B,)
        if self.agent_rewards:
            for i in range(n):
                info[f"reward_agent_{i}"] = self._floats([r[i] for r in per_agent])  # (B,)
        return StepResult(
            reward=self._floats(team), terminated=self._flags([g.over for g in games]), info=info
        )

    def _floats(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _flags(self, values: list[bool]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.bool, device=self.device)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Seed generators, episode counters and every copy's episode in progress."""
        return {
            "key": self.key,
            **self._seeds.state_dict(),
            "games": [game.state_dict() for game in self._games],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the env must play the same task and batch size."""
        if state["key"] != self.key:
            raise ValueError(f"State is for env.key={state['key']!r}, this env plays {self.key!r}.")
        if len(state["games"]) != self.batch_size:
            raise ValueError(
                f"State holds {len(state['games'])} env copies, this env has {self.batch_size}."
            )
        self._seeds.load_state_dict(state)
        for game, game_state in zip(self._games, state["games"], strict=True):
            game.load_state_dict(game_state)
        self._look()

    def close(self) -> None:
        """Nothing to release."""
