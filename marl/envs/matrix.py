"""Cooperative matrix games for two agents, as a batched torch env.

Games (agent 0 picks the row, agent 1 the column; both get the shared payoff):

- ``penalty`` (Claus & Boutilier 1998): 3 actions, payoffs
  ``[[k, 0, 10], [0, 2, 0], [10, 0, k]]``; miscoordinating on the two optimal
  corners costs ``k``.
- ``climbing`` (Claus & Boutilier 1998): 3 actions, payoffs
  ``[[11, -30, 0], [-30, 7, 6], [0, 0, 5]]``; the optimum is guarded by heavy
  penalties.
- ``two_step`` (Rashid et al. 2018, QMIX): 2 actions, two steps per round. Step
  one pays 0 and agent 0's action picks state 2A (action 0) or 2B (action 1);
  step two pays 7 for every joint action in 2A and ``[[0, 1], [1, 8]]`` in 2B.
- ``qtran`` (Son et al. 2019, QTRAN): 3 actions, payoffs
  ``[[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]``; the optimum needs both agents on
  action 0, which an additive or monotonic factorisation cannot represent.

Every game is played ``rounds`` times per episode, after which the episode ends
naturally (``terminated`` True, ``info["episode_limit"]`` False). The global
state and every agent's observation are the same vector: a one-hot of the game
state followed by (step index within the episode) / episode_limit.

All games are tables indexed ``[game state, action 0, action 1]``: one table of
payoffs and one of next game states, so stepping B copies is two gathers.

Shapes: B env copies, N agents (2), A actions, G game states, S state size
(G + 1), O obs size (= S).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from marl.envs.action_check import ActionCheck
from marl.envs.base import EnvInfo, StepResult, copy_mask
from marl.validation import bounds, choices

N_AGENTS = 2
START_STATE = 0  # the game state every round begins in
N_TIME_FEATURES = 1  # the (step index / episode_limit) feature after the one-hot


@dataclass
class MatrixEnvConfig:
    """Schema for `env=matrix`."""

    _target_: str = "marl.envs.matrix.MatrixEnv"
    game: str = field(
        default="two_step", metadata=choices("penalty", "climbing", "two_step", "qtran")
    )
    """Which game to play: penalty | climbing | two_step | qtran."""
    k: float = field(default=-100.0, metadata=bounds(high=0))
    """Miscoordination penalty of the penalty game (ignored by the others)."""
    rounds: int = field(default=1, metadata=bounds(1))
    """Times the game is played per episode (1 = one-shot)."""
    defer_checks: bool | None = None
    """Check actions on the device, read back once per episode (no per-step host wait);
    None: on for every device but the CPU."""


@dataclass(frozen=True)
class _GameSpec:
    """A game as tables indexed [game state, action of agent 0, action of agent 1]."""

    payoffs: list[list[list[float]]]  # (G, A, A)
    next_states: list[list[list[int]]]  # (G, A, A)
    steps_per_round: int
    best_round_payoff: float  # the most a round can pay, for optimal_return


# two_step's game states.
_TS_STATE_1, _TS_STATE_2A, _TS_STATE_2B = 0, 1, 2
_TS_PAYOFF_2A = 7.0
_TS_PAYOFFS_2B = [[0.0, 1.0], [1.0, 8.0]]
_TS_BEST = 8.0

_CLIMBING_PAYOFFS = [[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]]
_CLIMBING_BEST = 11.0
_PENALTY_BEST = 10.0
_QTRAN_PAYOFFS = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]
_QTRAN_BEST = 8.0
_ONE_STEP_ACTIONS = 3  # actions of penalty, climbing and qtran
_ONE_STEP_NEXT = [[[START_STATE] * _ONE_STEP_ACTIONS] * _ONE_STEP_ACTIONS]  # (1, A, A)


def _penalty(k: float) -> _GameSpec:
    payoffs = [[k, 0.0, _PENALTY_BEST], [0.0, 2.0, 0.0], [_PENALTY_BEST, 0.0, k]]
    return _GameSpec([payoffs], _ONE_STEP_NEXT, 1, _PENALTY_BEST)


def _climbing(k: float) -> _GameSpec:
    del k  # only the penalty game uses it
    return _GameSpec([_CLIMBING_PAYOFFS], _ONE_STEP_NEXT, 1, _CLIMBING_BEST)


def _qtran(k: float) -> _GameSpec:
    del k
    return _GameSpec([_QTRAN_PAYOFFS], _ONE_STEP_NEXT, 1, _QTRAN_BEST)


def _two_step(k: float) -> _GameSpec:
    del k
    zeros = [[0.0, 0.0], [0.0, 0.0]]
    payoffs = [zeros, [[_TS_PAYOFF_2A] * 2] * 2, _TS_PAYOFFS_2B]
    # Agent 0's action alone picks the second state; after step two the round restarts.
    from_1 = [[_TS_STATE_2A] * 2, [_TS_STATE_2B] * 2]
    back = [[_TS_STATE_1] * 2] * 2
    return _GameSpec(payoffs, [from_1, back, back], 2, _TS_BEST)


_GAMES = {"penalty": _penalty, "climbing": _climbing, "two_step": _two_step, "qtran": _qtran}


class MatrixEnv:
    """B copies of one cooperative matrix game, stepped together on one device."""

    def __init__(
        self,
        game: str = MatrixEnvConfig.game,
        k: float = MatrixEnvConfig.k,
        rounds: int = MatrixEnvConfig.rounds,
        defer_checks: bool | None = MatrixEnvConfig.defer_checks,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if game not in _GAMES:
            raise ValueError(f"Unknown matrix game {game!r}; valid names are {sorted(_GAMES)}.")
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        spec = _GAMES[game](float(k))
        self.game = game
        self.rounds = rounds
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._spec = spec
        self._payoffs = torch.tensor(spec.payoffs, dtype=torch.float32, device=self.device)
        self._next_states = torch.tensor(spec.next_states, dtype=torch.long, device=self.device)
        self.n_game_states, self.n_actions, _ = self._payoffs.shape  # G, A
        self._check = ActionCheck(self.n_actions, self.device, defer_checks)
        self.episode_limit = rounds * spec.steps_per_round
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._game_state = torch.full(
            (batch_size,), START_STATE, dtype=torch.long, device=self.device
        )  # (B,)
        self._t = torch.zeros(batch_size, dtype=torch.long, device=self.device)  # (B,)
        self._done = torch.zeros(batch_size, dtype=torch.bool, device=self.device)  # (B,)
        self.reset()

    @property
    def optimal_return(self) -> float:
        """The best achievable episode return: rounds * best payoff of one round."""
        return self.rounds * self._spec.best_round_payoff

    def get_env_info(self) -> EnvInfo:
        size = self.n_game_states + N_TIME_FEATURES
        return EnvInfo(
            n_agents=N_AGENTS,
            n_actions=self.n_actions,
            obs_shape=size,
            state_shape=size,
            episode_limit=self.episode_limit,
        )

    def reset(self) -> None:
        """Start a new episode in every copy (the games draw no randomness)."""
        self._check.raise_pending()
        self._game_state.fill_(START_STATE)
        self._t.zero_()
        self._done.zero_()

    def reset_copies(self, mask: torch.Tensor) -> None:
        """Start a new episode in the copies where ``mask`` (B,) bool is True."""
        self._check.raise_pending()
        mask = copy_mask(mask, self.batch_size, self.device)  # (B,)
        self._game_state = self._game_state.masked_fill(mask, START_STATE)  # (B,)
        self._t = self._t.masked_fill(mask, 0)  # (B,)
        self._done = self._done & ~mask  # (B,)

    def state(self) -> torch.Tensor:
        """One-hot game state then step / episode_limit, (B, S) float32."""
        one_hot = torch.nn.functional.one_hot(self._game_state, self.n_game_states)  # (B, G)
        progress = (self._t.float() / self.episode_limit).unsqueeze(1)  # (B, 1)
        return torch.cat([one_hot.float(), progress], dim=1)  # (B, S)

    def obs(self) -> torch.Tensor:
        """Every agent sees the global state, (B, N, O) float32."""
        state = self.state()  # (B, S)
        return state.unsqueeze(1).expand(-1, N_AGENTS, -1).clone()  # (B, N, O)

    def avail_actions(self) -> torch.Tensor:
        """All actions are always available, (B, N, A) bool."""
        shape = (self.batch_size, N_AGENTS, self.n_actions)
        return torch.ones(shape, dtype=torch.bool, device=self.device)  # (B, N, A)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply joint actions (B, N) long; ended copies stay frozen and pay 0."""
        expected = (self.batch_size, N_AGENTS)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected}, got {tuple(actions.shape)}.")
        actions = actions.to(device=self.device, dtype=torch.long)  # (B, N)
        live = ~self._done  # (B,)
        actions = self._check(actions, live)  # (B, N)
        a0, a1 = actions[:, 0], actions[:, 1]  # (B,), (B,)
        payoff = self._payoffs[self._game_state, a0, a1]  # (B,)
        reward = torch.where(live, payoff, torch.zeros_like(payoff))  # (B,)
        next_state = self._next_states[self._game_state, a0, a1]  # (B,)
        self._game_state = torch.where(live, next_state, self._game_state)  # (B,)
        self._t = self._t + live.long()  # (B,)
        self._done = self._t >= self.episode_limit  # (B,)
        # Every episode end is natural (the rounds are over), never a truncation.
        info = {"episode_limit": torch.zeros_like(self._done)}  # (B,)
        return StepResult(reward=reward, terminated=self._done.clone(), info=info)

    def state_dict(self) -> dict[str, Any]:
        """Generator state and every internal tensor, enough to continue exactly."""
        return {
            "game": self.game,
            "generator": self._gen.get_state(),
            "game_state": self._game_state.clone(),  # (B,)
            "t": self._t.clone(),  # (B,)
            "done": self._done.clone(),  # (B,)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the env must play the same game."""
        if state["game"] != self.game:
            raise ValueError(f"State is for game {state['game']!r}, this env plays {self.game!r}.")
        if tuple(state["t"].shape) != (self.batch_size,):
            raise ValueError(
                f"State has batch size {tuple(state['t'].shape)}, expected ({self.batch_size},)."
            )
        self._gen.set_state(state["generator"])
        self._game_state = state["game_state"].to(self.device, torch.long).clone()  # (B,)
        self._t = state["t"].to(self.device, torch.long).clone()  # (B,)
        self._done = state["done"].to(self.device, torch.bool).clone()  # (B,)

    def close(self) -> None:
        """Nothing to release."""
