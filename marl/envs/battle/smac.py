"""SMAC's single-env API over a B = 1 battle simulator (an APPROXIMATION of SC2).

``BattleSMACEnv`` answers the methods of ``smac.env.StarCraft2Env`` with Python and
NumPy-free values (lists of float32 tensors for observations, plain ints and floats
for rewards and info), so code written against SMAC runs on the built-in simulator,
and the later ``sc2`` adapter can be tested against the same calls. Its win rates
are not SMAC results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from marl.envs.battle.env import BattleEnv


class BattleSMACEnv:
    """SMAC's StarCraft2Env interface for one battle (B = 1) on the CPU by default."""

    def __init__(
        self,
        map_name: str = "8m",
        seed: int = 0,
        replay_dir: str = "",
        device: str | torch.device = "cpu",
        **env_args: Any,
    ) -> None:
        """``env_args`` are BattleEnvConfig's fields (step_mul, reward_*, obs_*, ...)."""
        self.env = BattleEnv(map_name, batch_size=1, seed=seed, device=device, **env_args)
        self.map_name = map_name
        self.replay_dir = replay_dir
        self.n_agents = self.env.n_agents
        self.n_enemies = self.env.n_enemies
        self.n_actions = self.env.n_actions
        self.episode_limit = self.env.episode_limit
        self.max_reward = self.env.max_reward
        self._seed = seed
        self._episode_steps = 0
        if replay_dir:
            self.env.set_recording(True)

    # ------------------------------------------------------------------ episode

    def reset(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Start an episode; returns (per-agent obs list, state)."""
        self.env.reset()
        self._episode_steps = 0
        return self.get_obs(), self.get_state()

    def step(self, actions: list[int] | torch.Tensor) -> tuple[float, bool, dict[str, Any]]:
        """One int per agent; an unavailable action fails like SMAC's assert."""
        acts = [int(a) for a in actions]
        if len(acts) != self.n_agents:
            raise ValueError(f"Expected {self.n_agents} actions, got {len(acts)}.")
        avail = self.get_avail_actions()
        for i, a in enumerate(acts):
            if not 0 <= a < self.n_actions or not avail[i][a]:
                raise AssertionError(f"Agent {i} cannot perform action {a}")
        result = self.env.step(torch.tensor([acts], dtype=torch.long))
        self._episode_steps += 1
        info: dict[str, Any] = {
            "battle_won": bool(result.info["battle_won"][0]),
            "dead_allies": int(result.info["dead_allies"][0]),
            "dead_enemies": int(result.info["dead_enemies"][0]),
        }
        if bool(result.info["episode_limit"][0]):
            info["episode_limit"] = True  # only on a timeout with continuing_episode, as SMAC
        return float(result.reward[0]), bool(result.terminated[0]), info

    # ------------------------------------------------------------------ observations

    def get_obs(self) -> list[torch.Tensor]:
        """Per-agent observations, each (O,) float32."""
        return list(self.env.obs()[0].unbind(0))

    def get_obs_agent(self, agent_id: int) -> torch.Tensor:
        return self.env.obs()[0, agent_id]  # (O,)

    def get_state(self) -> torch.Tensor:
        return self.env.state()[0]  # (S,)

    def get_avail_actions(self) -> list[list[int]]:
        """0/1 lists of length n_actions, one per agent."""
        return [[int(x) for x in row] for row in self.env.avail_actions()[0].tolist()]

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        return self.get_avail_actions()[agent_id]

    def get_obs_size(self) -> int:
        return self.env.get_env_info().obs_shape

    def get_state_size(self) -> int:
        return self.env.get_env_info().state_shape

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict[str, Any]:
        """SMAC's keys (with agent_features, enemy_features) and the simulator's name."""
        return self.env.smac_env_info()

    def get_stats(self) -> dict[str, float]:
        return self.env.get_stats()

    # ------------------------------------------------------------------ misc

    def seed(self) -> int:
        """The seed this env was built with (SMAC's seed() only returns it too)."""
        return self._seed

    def save_replay(self) -> list[Path]:
        """Write the recorded episodes as GIFs into replay_dir (recording needs replay_dir)."""
        if not self.replay_dir:
            raise RuntimeError("BattleSMACEnv records replays only when built with replay_dir.")
        return self.env.save_replay(self.replay_dir)

    def close(self) -> None:
        self.env.close()
