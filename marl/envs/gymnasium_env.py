"""Multi-agent Gymnasium envs (``lbforaging``, ``rware``, ...) as a `BatchedEnv`.

``env=gymnasium env.key=<registered id>`` plays any Gymnasium env whose
observation and action spaces are ``Tuple``s with one entry per agent (the
convention of ``lbforaging`` and ``rware``), with ``Discrete`` actions:

- Observations: each agent's entry flattened (``gymnasium.spaces.flatten``) and
  zero-padded to the longest one. Actions: agents with fewer actions than the
  largest action space get the extra ones masked out.
- Team reward: the per-agent rewards summed (``reward: sum``, EPyMARL's default)
  or averaged (``reward: mean``); a shared scalar reward is used as it is. The
  runner stores one team reward, so ``agent_rewards: true`` only adds each
  agent's step reward to the step info as ``reward_agent_<i>`` (B,), for
  algorithms that want them.
- Masks: from the env when it offers them (``get_avail_actions()``, or the valid
  actions ``lbforaging`` keeps per player); all actions otherwise.
- Seeding: every episode starts from ``reset(seed=...)`` (see `marl.envs.workers`),
  so it must depend on that seed alone; ``lbforaging`` also looks at where the
  players stood at the end of the last episode, which this adapter clears first.
- State: the concatenated (padded) observations, or with ``state: auto`` the
  env's own ``get_state()`` when it has one.
- Time limit: ``time_limit`` > 0 wraps the env in ``TimeLimit`` (0 keeps the id's
  registered limit); reaching it is a truncation, ``info["episode_limit"]`` True.
  Env kwargs are merged into the registered ones (so an env kwarg may be called
  ``max_episode_steps``, as ``lbforaging``'s own step limit is): the presets set
  the env's internal limit to ``time_limit`` so that both end together.

The package that registers the id is imported first: ``import_module`` (set by
the presets) or a ``module:`` prefix of the key, Gymnasium's own syntax, as in
``env.key=rware:rware-tiny-2ag-v2``. Copies run through `marl.envs.workers`.

Shapes: B env copies, N agents, A actions, O obs size, S state size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING, DictConfig, OmegaConf

from marl.envs.base import EnvInfo
from marl.envs.workers import BatchedSingleEnv, require
from marl.errors import UsageError

REWARD_MODES = ("sum", "mean")
GYM_STATE_MODES = ("concat", "auto")


@dataclass
class GymnasiumEnvConfig:
    """Schema for `env=gymnasium` (and the `lbf`, `rware` presets)."""

    _target_: str = "marl.envs.gymnasium_env.GymnasiumEnv"
    key: str = MISSING
    """Registered Gymnasium id, optionally `module:id` (e.g. `rware:rware-tiny-2ag-v2`)."""
    import_module: str | None = None
    """Module imported before `gym.make` to register the id (e.g. `lbforaging`)."""
    time_limit: int = 0
    """Steps per episode, a truncation when reached (0 = the id's registered limit)."""
    reward: str = "sum"
    """Team reward from per-agent rewards: sum | mean."""
    agent_rewards: bool = False
    """Also report each agent's step reward as info `reward_agent_<i>`."""
    state: str = "concat"
    """Global state: concat (all observations) | auto (the env's `get_state()` if any)."""
    workers: bool = True
    """Run B > 1 copies in worker processes (false: one after the other in this process)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra env constructor arguments, merged into the registered ones."""


def to_plain(value: Any) -> Any:
    """Config containers to plain python (picklable, what env constructors expect)."""
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def agent_reward_info(rewards: np.ndarray, enabled: bool) -> dict[str, float]:
    """``reward_agent_<i>`` for each agent's reward (N,) when ``enabled``."""
    if not enabled:
        return {}
    return {f"reward_agent_{i}": float(r) for i, r in enumerate(rewards)}


def all_true(flags: Any) -> bool:
    """One flag for the team from a bool or per-agent flags (the episode ends when all do)."""
    if isinstance(flags, bool | np.bool_):
        return bool(flags)
    return all(bool(flag) for flag in flags)


def team_reward(rewards: np.ndarray, mode: str) -> float:
    """The team reward from per-agent rewards (N,): their sum or mean."""
    return float(rewards.sum() if mode == "sum" else rewards.mean())


def check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    """A one-sentence `UsageError` when a string setting is not one of ``options``."""
    if value not in options:
        raise UsageError(f"env.{name} must be one of {', '.join(options)}, got {value!r}.")


def check_adapter_settings(
    reward: str, state: str, state_modes: tuple[str, ...], time_limit: int
) -> None:
    """The settings the Gymnasium and PettingZoo adapters share, checked before any worker."""
    check_choice("reward", reward, REWARD_MODES)
    check_choice("state", state, state_modes)
    if time_limit < 0:
        raise UsageError(f"env.time_limit must be 0 (the env's own) or more, got {time_limit}.")


class GymnasiumSingleEnv:
    """One copy of a multi-agent Gymnasium env behind the `SingleEnv` interface."""

    def __init__(
        self,
        key: str,
        import_module: str | None = None,
        time_limit: int = 0,
        reward: str = "sum",
        agent_rewards: bool = False,
        state: str = "concat",
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        gym = import_env_packages(key, import_module)
        env_id = key.split(":", 1)[-1]
        try:
            spec = gym.spec(env_id)
        except gym.error.Error as err:
            raise UsageError(f"env.key={key!r} is not a registered Gymnasium env ({err}).") from err
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **(kwargs or {})})
        self.env = gym.make(
            spec, max_episode_steps=time_limit if time_limit > 0 else None, disable_env_checker=True
        )
        limit = time_limit if time_limit > 0 else spec.max_episode_steps
        if not limit:
            raise UsageError(f"env {key} has no time limit of its own: set env.time_limit.")
        spaces = gym.spaces
        obs_space, act_space = self.env.observation_space, self.env.action_space
        if not isinstance(obs_space, spaces.Tuple) or not isinstance(act_space, spaces.Tuple):
            raise UsageError(
                f"env {key} is not a multi-agent env: its observation and action spaces must be "
                f"Tuples with one entry per agent, got {obs_space} and {act_space}."
            )
        if not all(isinstance(s, spaces.Discrete) for s in act_space):
            raise UsageError(f"env {key} needs Discrete actions per agent, got {act_space}.")
        self._flatten: Callable[[Any, Any], np.ndarray] = spaces.flatten
        self._obs_spaces = list(obs_space)
        # Box observations flatten to a float32 copy; skip gymnasium's dispatch for them.
        self._box_obs = all(
            isinstance(s, spaces.Box) and s.dtype == np.float32 for s in self._obs_spaces
        )
        self._n_actions = [int(s.n) for s in act_space]  # type: ignore[attr-defined]
        self.reward_mode, self.agent_rewards = reward, agent_rewards
        n_agents = len(self._n_actions)
        obs_size = max(spaces.flatdim(s) for s in self._obs_spaces)
        unwrapped = self.env.unwrapped
        self._lbf = hasattr(unwrapped, "_valid_actions") and hasattr(unwrapped, "players")
        self._get_state = getattr(unwrapped, "get_state", None) if state == "auto" else None
        self._obs = np.zeros((0, 0), dtype=np.float32)  # (N, O) after a reset
        self._info = EnvInfo(
            n_agents=n_agents,
            n_actions=max(self._n_actions),
            obs_shape=obs_size,
            state_shape=n_agents * obs_size,
            episode_limit=int(limit),
        )
        if self._get_state is not None:  # the env's own state: measure it once
            self.reset(0)
            self._info = dataclasses.replace(self._info, state_shape=self.state().size)

    @property
    def env_info(self) -> EnvInfo:
        return self._info

    def _see(self, obs: Any) -> None:
        """Flatten and zero-pad the env's per-agent observations."""
        out = np.zeros((self._info.n_agents, self._info.obs_shape), dtype=np.float32)  # (N, O)
        for i, (space, o) in enumerate(zip(self._obs_spaces, obs, strict=True)):
            flat = o if self._box_obs else self._flatten(space, o)
            flat = np.asarray(flat, dtype=np.float32).reshape(-1)
            out[i, : flat.size] = flat
        self._obs = out

    def reset(self, seed: int) -> None:
        """Start an episode that depends on ``seed`` alone."""
        if self._lbf:
            # lbforaging avoids the last episode's player positions when it spawns the
            # players: forget them, or the episode would depend on the one before it.
            for player in self.env.unwrapped.players:
                player.position = None
        obs, _ = self.env.reset(seed=seed)
        self._see(obs)

    def obs(self) -> np.ndarray:
        """Flattened, zero-padded per-agent observations, (N, O) float32."""
        return self._obs

    def state(self) -> np.ndarray:
        """The env's own state, or all observations concatenated, (S,) float32."""
        if self._get_state is not None:
            return np.asarray(self._get_state(), dtype=np.float32).reshape(-1)
        return self.obs().reshape(-1)  # (N * O,)

    def avail_actions(self) -> np.ndarray:
        """Masks from the env when it offers them, else all its actions, (N, A) bool."""
        n_agents, n_actions = self._info.n_agents, self._info.n_actions
        unwrapped = self.env.unwrapped
        mask = np.zeros((n_agents, n_actions), dtype=bool)  # (N, A)
        if callable(getattr(unwrapped, "get_avail_actions", None)):
            given = np.asarray(unwrapped.get_avail_actions(), dtype=bool)  # (N, A_env)
            mask[:, : given.shape[1]] = given
        elif self._lbf:
            valid = unwrapped._valid_actions  # lbforaging: player -> [Action]
            for i, player in enumerate(unwrapped.players):
                for action in valid[player]:  # element writes: cheaper than an index list
                    mask[i, action.value] = True
        else:
            for i, n in enumerate(self._n_actions):
                mask[i, :n] = True
        return mask

    def step(self, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.env.step(tuple(actions.tolist()))
        self._see(obs)
        out = {k: v for k, v in info.items() if k != "episode_limit"}
        if np.ndim(rewards) == 0:  # one shared reward
            reward = float(rewards)
            per_agent = np.full(self._info.n_agents, reward)  # (N,)
        else:
            per_agent = np.asarray(rewards, dtype=np.float64)  # (N,)
            reward = team_reward(per_agent, self.reward_mode)
        out.update(agent_reward_info(per_agent, self.agent_rewards))
        return reward, all_true(terminated), all_true(truncated), out

    def close(self) -> None:
        self.env.close()


def import_env_packages(key: str, import_module: str | None) -> Any:
    """Import gymnasium and the module registering ``key``; missing ones are a `UsageError`."""
    gym = require("gymnasium", f"env {key}")
    for module in (import_module, key.split(":", 1)[0] if ":" in key else None):
        if module:
            require(module, f"env {key}")
    return gym


class GymnasiumEnv(BatchedSingleEnv):
    """B copies of a multi-agent Gymnasium env (see the module doc)."""

    def __init__(
        self,
        key: str,
        import_module: str | None = None,
        time_limit: int = 0,
        reward: str = "sum",
        agent_rewards: bool = False,
        state: str = "concat",
        workers: bool = True,
        kwargs: dict[str, Any] | None = None,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        check_adapter_settings(reward, state, GYM_STATE_MODES, time_limit)
        import_env_packages(key, import_module)  # fail here, in one sentence, not in a worker
        self.key = key
        factory = functools.partial(
            GymnasiumSingleEnv,
            key=key,
            import_module=import_module,
            time_limit=time_limit,
            reward=reward,
            agent_rewards=agent_rewards,
            state=state,
            kwargs=to_plain(kwargs) or {},
        )
        super().__init__(factory, batch_size=batch_size, seed=seed, device=device, workers=workers)
