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
``env.key=rware:rware-tiny-2ag-v2``. A mistyped module or id is one sentence that
offers the closest installed module or registered id (`import_named`, shared with
the PettingZoo adapter). Copies run through `marl.envs.workers`.

Shapes: B env copies, N agents, A actions, O obs size, S state size.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING, DictConfig, OmegaConf

from marl.envs.base import EnvInfo
from marl.envs.workers import EXTRAS, BatchedSingleEnv, require
from marl.errors import UsageError
from marl.validation import bounds, choices, required

REWARD_MODES = ("sum", "mean")
GYM_STATE_MODES = ("concat", "auto")
CLOSE_NAME = 0.75  # difflib ratio of a likely typo: mpe3 -> mpe2, lbforaging2 -> lbforaging


@dataclass
class GymnasiumEnvConfig:
    """Schema for `env=gymnasium` (and the `lbf`, `rware` presets)."""

    _target_: str = "marl.envs.gymnasium_env.GymnasiumEnv"
    key: str = field(
        default=MISSING, metadata=required("Gymnasium id", "lbforaging:Foraging-8x8-2p-2f-v3")
    )
    """Registered Gymnasium id, optionally `module:id` (e.g. `rware:rware-tiny-2ag-v2`)."""
    import_module: str | None = None
    """Module imported before `gym.make` to register the id (e.g. `lbforaging`)."""
    time_limit: int = field(default=0, metadata=bounds(0, note="0: the env's own limit"))
    """Steps per episode, a truncation when reached (0 = the id's registered limit)."""
    reward: str = field(default="sum", metadata=choices(*REWARD_MODES))
    """Team reward from per-agent rewards: sum | mean."""
    agent_rewards: bool = False
    """Also report each agent's step reward as info `reward_agent_<i>`."""
    state: str = field(default="concat", metadata=choices(*GYM_STATE_MODES))
    """Global state: concat (all observations) | auto (the env's `get_state()` if any)."""
    workers: bool = True
    """Run B > 1 copies in worker processes (false: one after the other in this process)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra env constructor arguments, merged into the registered ones."""


def closest(name: str, candidates: set[str]) -> str | None:
    """The candidate ``name`` is most likely a typo of, if any is close enough."""
    close = difflib.get_close_matches(name, sorted(candidates - {name}), n=1, cutoff=CLOSE_NAME)
    return close[0] if close else None


def can_find(module: str) -> bool | None:
    """Whether an installed module is called ``module`` (None: its parent package exists
    but fails to import, which `require` explains)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError as err:  # the parent is no package, or lacks a dependency
        return False if err.name == module else None
    except (ImportError, ValueError):
        return None


def module_names(parent: str) -> set[str]:
    """The modules one could import inside ``parent`` ("" for the top level)."""
    if not parent:
        top = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)
        return top | set(EXTRAS)
    path = getattr(sys.modules.get(parent), "__path__", None)
    return {m.name for m in pkgutil.iter_modules(path)} if path else set()


def first_missing(module: str) -> int | None:
    """The index of the first dotted part of ``module`` that cannot be found, if any."""
    parts = module.split(".")
    for i in range(len(parts)):
        found = can_find(".".join(parts[: i + 1]))
        if found is None:
            return None
        if not found:
            return i
    return None


def import_named(module: str, setting: str, needed_by: str) -> ModuleType:
    """Import a module the user named (``setting``, e.g. ``env.module='mpe2'``).

    A name that no installed module has is most likely mistyped, and ``pip install
    <typo>`` is bad advice: the sentence says it cannot be imported and offers the
    closest module there is. The known env packages (`EXTRAS`) and modules that exist
    but fail to import are left to `require`, which names what to install.
    """
    index = first_missing(module)
    parts = module.split(".")
    if index is None or (index == 0 and parts[0] in EXTRAS):
        return require(module, needed_by)
    parent = ".".join(parts[:index])
    guess = closest(parts[index], module_names(parent))
    if guess is None and not parent:
        raise UsageError(
            f"{setting} cannot be imported: no installed module has that name "
            "(install the package that provides it, or correct the name)."
        )
    if guess is None:
        raise UsageError(f"{setting} cannot be imported: {parent} has no module {parts[index]!r}.")
    hint = f"did you mean {'.'.join([*parts[:index], guess])!r}"
    if not parent and guess in EXTRAS and not can_find(guess):
        hint += f" (not installed: pip install 'marl[{EXTRAS[guess]}]')"
    raise UsageError(f"{setting} cannot be imported; {hint}?")


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
        import_module: str | None,
        time_limit: int,
        reward: str,
        agent_rewards: bool,
        state: str,
        kwargs: dict[str, Any] | None,
    ) -> None:
        gym, spec = registered_spec(key, import_module)
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
    if import_module:
        import_named(import_module, f"env.import_module={import_module!r}", f"env {key}")
    module = key.split(":", 1)[0] if ":" in key else ""
    if module:
        import_named(module, f"module {module!r} of env.key={key!r}", f"env {key}")
    return gym


def registered_spec(key: str, import_module: str | None) -> tuple[Any, Any]:
    """Gymnasium and the registered spec of ``key``; an unknown id is a `UsageError`."""
    gym = import_env_packages(key, import_module)
    env_id = key.split(":", 1)[-1]
    try:
        return gym, gym.spec(env_id)
    except gym.error.Error as err:
        named = bool(import_module) or ":" in key
        raise UsageError(unknown_id(key, env_id, set(gym.registry), named)) from err


def unknown_id(key: str, env_id: str, registered: set[str], named_package: bool) -> str:
    """One sentence for an id nobody registered: the closest registered one, or (when no
    package was named to register it) how to name one."""
    if not env_id:
        return f"env.key={key!r} names no Gymnasium env id."
    guess = closest(env_id, registered)
    if guess is not None:
        suggestion = key.removesuffix(env_id) + guess  # keeps a `module:` prefix
        return f"env.key={key!r} is not a registered Gymnasium env; did you mean {suggestion!r}?"
    if not named_package:
        return (
            f"env.key={key!r} is not a registered Gymnasium env; if a package registers it, "
            f"name that package too, as in env.key=<package>:{env_id}."
        )
    return f"env.key={key!r} is not a registered Gymnasium env."


class GymnasiumEnv(BatchedSingleEnv):
    """B copies of a multi-agent Gymnasium env (see the module doc)."""

    def __init__(
        self,
        key: str,
        import_module: str | None = GymnasiumEnvConfig.import_module,
        time_limit: int = GymnasiumEnvConfig.time_limit,
        reward: str = GymnasiumEnvConfig.reward,
        agent_rewards: bool = GymnasiumEnvConfig.agent_rewards,
        state: str = GymnasiumEnvConfig.state,
        workers: bool = GymnasiumEnvConfig.workers,
        kwargs: dict[str, Any] | None = None,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        check_adapter_settings(reward, state, GYM_STATE_MODES, time_limit)
        registered_spec(key, import_module)  # fail here, in one sentence, not in a worker
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
