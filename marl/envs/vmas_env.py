"""VMAS scenarios (``balance``, ``navigation``, ...) as a natively batched env.

``env=vmas env.scenario=<name>`` plays a scenario of VMAS, the vectorised multi-agent
simulator behind BenchMARL: the B = ``batch_size_run`` copies are one VMAS env with
``num_envs=B`` on ``device``, stepped at once, with no worker processes.

- Actions: VMAS's discrete ones (9 for a 2D agent: 3 choices per axis). Agents with
  fewer actions than the largest action space get the extra ones masked out; all
  others are always available. Continuous actions are not supported (marl's agents
  pick action indices), and asking for them is a `UsageError`.
- Observations: each agent's vector, zero-padded to the longest. VMAS scenarios have
  no global state: the state is all observations concatenated.
- Team reward: the per-agent rewards averaged (``reward: mean``, BenchMARL's team
  reward for QMIX and VDN, so returns compare with its curves) or summed.
- Episodes end when the scenario says they are done, or after ``max_steps`` steps,
  a truncation (``info["episode_limit"]``). Copies that ended step on frozen (VMAS
  steps them without complaint) and pay 0, until the runner resets all copies.
- Randomness: VMAS keeps ONE random state for the whole process, a class attribute
  (``Environment.vmas_random_state``: torch's CPU, numpy's and python's states) that
  its ``local_seed`` swaps in around every call, shared by every VMAS env. The env
  seeds it at construction (from the run seed, so sequential sweep jobs in one
  process do not leak into each other) and its ``state_dict`` holds it. On CUDA,
  scenarios draw from torch's global CUDA generator instead, which VMAS's seeding
  also seeds and the checkpoint saves with the other global generators.
- ``state_dict`` covers what a checkpoint between episodes needs (marl saves between
  rollouts, and every rollout starts with ``reset()``): the random state. The
  simulator's bodies are not saved; the next ``reset()`` draws them anew.

Shapes: B env copies, N agents, A actions, O obs size, S state size (N * O).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import MISSING

from marl.envs.action_check import ActionCheck
from marl.envs.base import EnvInfo, StepResult
from marl.envs.gymnasium_env import REWARD_MODES, check_choice, closest, to_plain
from marl.envs.workers import require
from marl.errors import UsageError
from marl.seeding import derive_seed, global_rng_state, set_global_rng_state
from marl.validation import bounds, choices, required

SET_BY_MARL = {
    "num_envs": "batch_size_run",
    "device": "device",
    "seed": "seed",
    "max_steps": "env.max_steps",
}
"""make_env arguments with a marl setting -> that setting."""
SEED_RANGE = 2**32  # VMAS seeds numpy's legacy generator, which takes 32-bit seeds


@dataclass
class VmasEnvConfig:
    """Schema for `env=vmas`."""

    _target_: str = "marl.envs.vmas_env.VmasEnv"
    scenario: str = field(default=MISSING, metadata=required("VMAS scenario", "balance"))
    """VMAS scenario name: balance, navigation, transport, simple_spread, ..."""
    max_steps: int = field(default=100, metadata=bounds(1))
    """Steps per episode, a truncation when reached (100 in BenchMARL's VMAS tasks)."""
    reward: str = field(default="mean", metadata=choices(*REWARD_MODES))
    """Team reward from per-agent rewards: mean (BenchMARL's) | sum."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Scenario arguments, e.g. `n_agents: 4` (each scenario's `make_world` lists its own)."""


def scenario_names(vmas: Any) -> set[str]:
    """Every scenario VMAS ships: its own, the MPE ones and the debug ones."""
    return {*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios}


def check_kwargs(kwargs: dict[str, Any], vmas: Any) -> None:
    """A `UsageError` for scenario kwargs that are make_env's own arguments, which marl
    sets (continuous actions above all: marl's agents pick action indices)."""
    if kwargs.get("continuous_actions"):
        raise UsageError(
            "env=vmas plays discrete actions only (marl's agents pick action indices); "
            "drop env.kwargs.continuous_actions."
        )
    own = set(inspect.signature(vmas.make_env).parameters) - {"scenario", "kwargs"}
    clashes = sorted(kwargs.keys() & own)
    if clashes:
        key = clashes[0]
        instead = f"; set {SET_BY_MARL[key]} instead" if key in SET_BY_MARL else ""
        raise UsageError(
            f"env.kwargs.{key} is an argument of VMAS's make_env that marl sets{instead}."
        )


def vmas_rng_state() -> dict[str, Any]:
    """VMAS's process-wide random state, in `marl.seeding`'s checkpoint-safe form."""
    from vmas.simulator.environment.environment import Environment, local_seed

    with local_seed(Environment.vmas_random_state):  # VMAS's state is the global one here
        state = global_rng_state()
    state.pop("cuda", None)  # not VMAS's: the global CUDA state is checkpointed on its own
    return state


def set_vmas_rng_state(state: dict[str, Any]) -> None:
    """Restore what `vmas_rng_state` returned."""
    from vmas.simulator.environment.environment import Environment, local_seed

    with local_seed(Environment.vmas_random_state):  # written back into VMAS's on exit
        set_global_rng_state(state)


class VmasEnv:
    """B copies of one VMAS scenario, stepped together on one device (see the module doc)."""

    def __init__(
        self,
        scenario: str,
        max_steps: int = VmasEnvConfig.max_steps,
        reward: str = VmasEnvConfig.reward,
        kwargs: dict[str, Any] | None = None,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        check_choice("reward", reward, REWARD_MODES)
        if max_steps < 1:
            raise UsageError(f"env.max_steps must be at least 1, got {max_steps}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        kwargs = to_plain(kwargs) or {}
        vmas = require("vmas", f"env=vmas env.scenario={scenario}")
        check_kwargs(kwargs, vmas)
        names = scenario_names(vmas)
        if scenario not in names:
            guess = closest(scenario, names)
            hint = f"did you mean {guess!r}?" if guess else f"VMAS has {', '.join(sorted(names))}."
            raise UsageError(f"env.scenario={scenario!r} is not a VMAS scenario; {hint}")
        self.scenario = scenario
        self.max_steps = max_steps
        self.reward_mode = reward
        self.batch_size = batch_size
        self.device = torch.device(device)
        with warnings.catch_warnings():  # VMAS only warns about kwargs its scenario ignores
            warnings.filterwarnings("error", message="Scenario kwargs")
            try:
                self._env = vmas.make_env(
                    scenario,
                    num_envs=batch_size,
                    device=self.device,
                    continuous_actions=False,
                    seed=derive_seed(seed, "vmas") % SEED_RANGE,  # seeds VMAS's random state
                    terminated_truncated=True,
                    **kwargs,
                )
            except UserWarning as err:
                raise UsageError(f"env.kwargs: {err} (see the scenario's make_world).") from err
        n_actions = [int(space.n) for space in self._env.action_space]  # (N,)
        self.n_agents = len(n_actions)
        self.n_actions = max(n_actions)
        self._check = ActionCheck(self.n_actions, self.device)
        agent_actions = torch.tensor(n_actions, device=self.device).unsqueeze(1)  # (N, 1)
        self._avail = torch.arange(self.n_actions, device=self.device) < agent_actions  # (N, A)
        if not all(len(space.shape or ()) == 1 for space in self._env.observation_space):
            raise UsageError(
                f"VMAS scenario {scenario} gives dict observations; marl needs vectors."
            )
        self._obs_sizes = [int(space.shape[0]) for space in self._env.observation_space]
        self.obs_size = max(self._obs_sizes)
        self._t = torch.zeros(batch_size, dtype=torch.long, device=self.device)  # (B,)
        self._done = torch.zeros(batch_size, dtype=torch.bool, device=self.device)  # (B,)
        self._obs = torch.empty(0)  # (B, N, O) from reset() on
        self.reset()

    def get_env_info(self) -> EnvInfo:
        return EnvInfo(
            n_agents=self.n_agents,
            n_actions=self.n_actions,
            obs_shape=self.obs_size,
            state_shape=self.n_agents * self.obs_size,
            episode_limit=self.max_steps,
        )

    def _see(self, per_agent: list[torch.Tensor]) -> None:
        """Keep VMAS's per-agent observations, each (B, O_i), as one (B, N, O) tensor."""
        if all(size == self.obs_size for size in self._obs_sizes):
            self._obs = torch.stack(per_agent, dim=1).float()  # (B, N, O)
            return
        obs = torch.zeros(self.batch_size, self.n_agents, self.obs_size, device=self.device)
        for i, o in enumerate(per_agent):
            obs[:, i, : o.shape[1]] = o  # (B, O_i), zero-padded to O
        self._obs = obs  # (B, N, O)

    def reset(self) -> None:
        """Start a new episode in every copy, drawing from VMAS's random state."""
        self._check.raise_pending()
        self._see(self._env.reset())
        self._t.zero_()
        self._done.zero_()

    def obs(self) -> torch.Tensor:
        """Per-agent observations, zero-padded, (B, N, O) float32."""
        return self._obs

    def state(self) -> torch.Tensor:
        """All observations concatenated (VMAS scenarios have no global state), (B, S)."""
        return self._obs.reshape(self.batch_size, -1)  # (B, N * O)

    def avail_actions(self) -> torch.Tensor:
        """Each agent's own actions (all of them), (B, N, A) bool."""
        return self._avail.expand(self.batch_size, -1, -1)  # (B, N, A)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply joint actions (B, N) long; ended copies step on frozen and pay 0."""
        expected = (self.batch_size, self.n_agents)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected}, got {tuple(actions.shape)}.")
        actions = actions.to(device=self.device, dtype=torch.long)  # (B, N)
        live = ~self._done  # (B,)
        actions = self._check(actions, live, self.avail_actions())  # (B, N)
        per_agent = [actions[:, i : i + 1] for i in range(self.n_agents)]  # N x (B, 1)
        obs, rewards, done, _, _ = self._env.step(per_agent)
        self._see(obs)
        rewards = torch.stack([r.reshape(self.batch_size) for r in rewards], dim=1)  # (B, N)
        team = rewards.mean(1) if self.reward_mode == "mean" else rewards.sum(1)  # (B,)
        reward = torch.where(live, team, torch.zeros_like(team))  # (B,)
        self._t += live.long()  # (B,)
        timeout = self._t >= self.max_steps  # (B,)
        ended_now = live & (done | timeout)  # (B,)
        info = {"episode_limit": ended_now & ~done}  # (B,) a truncation: the limit alone
        self._done = self._done | ended_now  # (B,)
        return StepResult(reward=reward, terminated=self._done.clone(), info=info)

    def state_dict(self) -> dict[str, Any]:
        """VMAS's random state: what a checkpoint between episodes needs (module doc)."""
        return {"scenario": self.scenario, "rng": vmas_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore VMAS's random state; the next `reset()` continues as the saved env would."""
        if state["scenario"] != self.scenario:
            raise ValueError(
                f"State is for VMAS scenario {state['scenario']!r}, this env plays "
                f"{self.scenario!r}."
            )
        set_vmas_rng_state(state["rng"])

    def close(self) -> None:
        """Nothing to release (VMAS holds no processes or windows unless rendering)."""
