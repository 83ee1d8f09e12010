"""PettingZoo parallel envs (e.g. ``mpe2``'s ``simple_spread_v3``) as a `BatchedEnv`.

``env=pettingzoo env.module=<package> env.name=<env module>`` builds
``<package>.<env module>.parallel_env(**kwargs)``:

- Agents in ``possible_agents`` order; observations flattened and zero-padded to
  the longest; an agent that left the episode early sees zeros and may only take
  action 0 (SMAC's convention for dead agents), and its actions are not sent.
- Global state: the env's ``state()`` when it has one (``state: auto``), else
  the concatenated observations (``state: concat``, also the fallback).
- Masks: ``infos[agent]["action_mask"]``, or the ``action_mask`` of dict
  observations (``{"observation", "action_mask"}``) when present; else all ones.
- Team reward: per-agent rewards summed (``reward: sum``) or averaged;
  ``agent_rewards: true`` adds ``reward_agent_<i>`` to the step info.
- The episode ends when every agent is done. ``time_limit`` > 0 cuts it after
  that many steps; the cut, or any agent's truncation, is a truncation
  (``info["episode_limit"]`` True). ``time_limit: 0`` uses the env's
  ``max_cycles``. The ``mpe`` preset passes ``max_cycles: ${..time_limit}`` so
  that MPE's own limit moves with ``time_limit``.

Copies run through `marl.envs.workers`. Shapes: B env copies, N agents, A
actions, O obs size, S state size.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING

from marl.envs.base import EnvInfo
from marl.envs.gymnasium_env import (
    REWARD_MODES,
    agent_reward_info,
    check_adapter_settings,
    closest,
    first_missing,
    import_named,
    module_names,
    team_reward,
    to_plain,
)
from marl.envs.workers import BatchedSingleEnv, require
from marl.errors import UsageError
from marl.validation import bounds, choices, required

PZ_STATE_MODES = ("auto", "concat")
DEAD_ACTION = 0  # the only action an agent that left the episode may take


@dataclass
class PettingZooEnvConfig:
    """Schema for `env=pettingzoo` (and the `mpe` preset)."""

    _target_: str = "marl.envs.pettingzoo_env.PettingZooEnv"
    module: str = field(default=MISSING, metadata=required("package", "mpe2"))
    """Package holding the env, e.g. `mpe2`."""
    name: str = field(
        default=MISSING, metadata=required("env module with parallel_env", "simple_spread_v3")
    )
    """Env module inside it with a `parallel_env` function, e.g. `simple_spread_v3`."""
    time_limit: int = field(default=0, metadata=bounds(0, note="0: the env's own limit"))
    """Steps per episode, a truncation when reached (0 = the env's `max_cycles`)."""
    reward: str = field(default="sum", metadata=choices(*REWARD_MODES))
    """Team reward from per-agent rewards: sum | mean."""
    agent_rewards: bool = False
    """Also report each agent's step reward as info `reward_agent_<i>`."""
    state: str = field(default="auto", metadata=choices(*PZ_STATE_MODES))
    """Global state: auto (the env's `state()` when it has one) | concat (all observations)."""
    workers: bool = True
    """Run B > 1 copies in worker processes (false: one after the other in this process)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments of `parallel_env`."""


def import_parallel_env(module: str, name: str) -> Any:
    """``<module>.<name>``'s ``parallel_env``; a missing package or env is a `UsageError`."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before pygame is imported
    what = f"env {module}.{name}"
    require("pettingzoo", what)
    import_named(module, f"env.module={module!r}", what)
    if first_missing(f"{module}.{name}") is not None:
        guess = closest(name, module_names(module))
        hint = f"did you mean {guess!r}?" if guess else f"see {module}'s docs."
        raise UsageError(f"{module} has no env {name!r} (env.name); {hint}")
    env_module = require(f"{module}.{name}", what)
    parallel_env = getattr(env_module, "parallel_env", None)
    if not callable(parallel_env):
        raise UsageError(f"{what} has no parallel_env(); only PettingZoo parallel envs work.")
    return parallel_env


class PettingZooSingleEnv:
    """One copy of a PettingZoo parallel env behind the `SingleEnv` interface."""

    def __init__(
        self,
        module: str,
        name: str,
        time_limit: int,
        reward: str,
        agent_rewards: bool,
        state: str,
        kwargs: dict[str, Any] | None,
    ) -> None:
        parallel_env = import_parallel_env(module, name)
        from gymnasium import spaces

        self.env = parallel_env(**(kwargs or {}))
        env = self.env
        self.agents: list[str] = list(env.possible_agents)
        act_spaces = [env.action_space(a) for a in self.agents]
        if not all(isinstance(s, spaces.Discrete) for s in act_spaces):
            raise UsageError(f"env {module}.{name} needs Discrete actions, got {act_spaces}.")
        self._n_actions = [int(s.n) for s in act_spaces]
        self._obs_spaces = []
        for agent in self.agents:
            space = env.observation_space(agent)
            if isinstance(space, spaces.Dict) and "observation" in space.spaces:
                space = space["observation"]
            self._obs_spaces.append(space)
        self._flatten = spaces.flatten
        limit = time_limit if time_limit > 0 else getattr(env.unwrapped, "max_cycles", 0)
        if not limit:
            raise UsageError(f"env {module}.{name} has no max_cycles: set env.time_limit.")
        self.time_limit = int(limit)
        self.reward_mode, self.agent_rewards = reward, agent_rewards
        n_agents = len(self.agents)
        obs_size = max(spaces.flatdim(s) for s in self._obs_spaces)
        self._info = EnvInfo(
            n_agents=n_agents,
            n_actions=max(self._n_actions),
            obs_shape=obs_size,
            state_shape=n_agents * obs_size,
            episode_limit=self.time_limit,
        )
        self._t = 0
        self._obs = np.zeros((n_agents, obs_size), dtype=np.float32)  # (N, O)
        self._mask = np.zeros((n_agents, self._info.n_actions), dtype=bool)  # (N, A)
        self._own_state = False
        self.reset(0)
        if state == "auto":
            try:
                own = np.asarray(env.state(), dtype=np.float32).reshape(-1)  # (S,)
            except (NotImplementedError, AttributeError):
                pass
            else:
                self._own_state = True
                self._info = dataclasses.replace(self._info, state_shape=own.size)

    @property
    def env_info(self) -> EnvInfo:
        return self._info

    def _see(self, obs: Mapping[str, Any], infos: Mapping[str, Any]) -> None:
        """Per-agent obs and masks from the env's dicts; absent agents see zeros."""
        self._obs = np.zeros_like(self._obs)  # (N, O)
        self._mask = np.zeros_like(self._mask)  # (N, A)
        for i, agent in enumerate(self.agents):
            if agent not in obs:
                self._mask[i, DEAD_ACTION] = True
                continue
            o, mask = obs[agent], None
            if isinstance(o, Mapping) and "observation" in o:
                mask = o.get("action_mask")
                o = o["observation"]
            info = infos.get(agent, {})
            if isinstance(info, Mapping) and info.get("action_mask") is not None:
                mask = info["action_mask"]
            flat = np.asarray(self._flatten(self._obs_spaces[i], o), dtype=np.float32)
            self._obs[i, : flat.size] = flat.reshape(-1)
            n = self._n_actions[i]
            self._mask[i, :n] = True if mask is None else np.asarray(mask, dtype=bool)[:n]

    def reset(self, seed: int) -> None:
        obs, infos = self.env.reset(seed=seed)
        self._t = 0
        self._see(obs, infos)

    def obs(self) -> np.ndarray:
        """Flattened, zero-padded per-agent observations, (N, O) float32."""
        return self._obs

    def state(self) -> np.ndarray:
        """The env's own state, or all observations concatenated, (S,) float32."""
        if self._own_state:
            return np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
        return self._obs.reshape(-1)  # (N * O,)

    def avail_actions(self) -> np.ndarray:
        """Available-action masks, (N, A) bool."""
        return self._mask

    def step(self, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
        live = set(self.env.agents)
        joint = {a: int(actions[i]) for i, a in enumerate(self.agents) if a in live}
        obs, rewards, terminations, truncations, infos = self.env.step(joint)
        self._t += 1
        self._see(obs, infos)
        per_agent = np.array([float(rewards.get(a, 0.0)) for a in self.agents])  # (N,)
        done = {a: terminations.get(a, False) or truncations.get(a, False) for a in live}
        limit_hit = self._t >= self.time_limit
        ended = limit_hit or not self.env.agents or all(done.values())
        truncated = ended and (limit_hit or any(truncations.get(a, False) for a in live))
        info: dict[str, Any] = {}
        for agent in live:  # numeric info shared by the agents (first agent's value)
            agent_info = infos.get(agent, {})
            if isinstance(agent_info, Mapping):
                for key, value in agent_info.items():
                    info.setdefault(key, value)
        info.pop("action_mask", None)
        info.pop("episode_limit", None)
        info.update(agent_reward_info(per_agent, self.agent_rewards))
        return team_reward(per_agent, self.reward_mode), ended, truncated, info

    def close(self) -> None:
        self.env.close()


class PettingZooEnv(BatchedSingleEnv):
    """B copies of a PettingZoo parallel env (see the module doc)."""

    def __init__(
        self,
        module: str,
        name: str,
        time_limit: int = PettingZooEnvConfig.time_limit,
        reward: str = PettingZooEnvConfig.reward,
        agent_rewards: bool = PettingZooEnvConfig.agent_rewards,
        state: str = PettingZooEnvConfig.state,
        workers: bool = PettingZooEnvConfig.workers,
        kwargs: dict[str, Any] | None = None,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        check_adapter_settings(reward, state, PZ_STATE_MODES, time_limit)
        import_parallel_env(module, name)  # fail here, in one sentence, not in a worker
        self.module, self.name = module, name
        factory = functools.partial(
            PettingZooSingleEnv,
            module=module,
            name=name,
            time_limit=time_limit,
            reward=reward,
            agent_rewards=agent_rewards,
            state=state,
            kwargs=to_plain(kwargs) or {},
        )
        super().__init__(factory, batch_size=batch_size, seed=seed, device=device, workers=workers)
