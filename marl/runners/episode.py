"""The episode runner: plays one batch of B episodes in a batched env.

B = ``batch_size_run`` copies run in lock step; B = 1 is PyMARL's episode
runner. Copies that end early stop being written (their later steps stay
unfilled) while the others play on. ``t_env`` counts real env steps summed over
copies, in training mode only.

Shapes: B env copies, T = episode_limit + 1 stored steps, N agents, A actions,
O obs size, S state size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.data.scheme import Field, Scheme, compact_index_dtype
from marl.envs.base import BatchedEnv, EnvInfo
from marl.errors import UsageError
from marl.exploration.epsilon_greedy import EpsilonGreedy


@dataclass
class EpisodeRunnerConfig:
    """Schema for `runner=episode`."""

    _target_: str = "marl.runners.episode.EpisodeRunner"


OBS_DTYPES = ("auto", "float32", "float16", "int8")
INT8_SCALE = 1 / 127  # int8 codes -127..127 cover [-1, 1]; -1, 0 and 1 are exact


def storage_dtype(env_info: EnvInfo, obs_dtype: str) -> str:
    """The dtype observations and states are stored in; ``auto``: int8 when the env's
    features lie in [-1, 1], float32 otherwise."""
    if obs_dtype not in OBS_DTYPES:
        raise UsageError(
            f"buffer_obs_dtype must be one of {', '.join(OBS_DTYPES)}, got {obs_dtype!r}."
        )
    if obs_dtype == "auto":
        return "int8" if env_info.unit_range else "float32"
    if obs_dtype == "int8" and not env_info.unit_range:
        raise UsageError(
            "buffer_obs_dtype=int8 needs an env whose features lie in [-1, 1] (battle, sc2); "
            "use float16 or float32."
        )
    return obs_dtype


def feature_field(size: int, obs_dtype: str, group: str | None = None) -> Field:
    """An observation or state field in its storage dtype (int8 is quantised)."""
    if obs_dtype == "int8":
        return Field((size,), torch.int8, group=group, scale=INT8_SCALE)
    return Field((size,), getattr(torch, obs_dtype), group=group)


def transition_scheme(env_info: EnvInfo, obs_dtype: str = "float32") -> Scheme:
    """The fields an episode stores, in compact storage dtypes.

    One-hot actions are not stored: the controller builds them from ``actions``.
    """
    n_actions = env_info.n_actions
    dtype = storage_dtype(env_info, obs_dtype)
    return Scheme(
        fields={
            "state": feature_field(env_info.state_shape, dtype),
            "obs": feature_field(env_info.obs_shape, dtype, group="agents"),
            "avail_actions": Field((n_actions,), torch.bool, group="agents"),
            "actions": Field((1,), compact_index_dtype(n_actions), group="agents"),
            "reward": Field((1,)),
            "terminated": Field((1,), torch.bool),
        },
        groups={"agents": env_info.n_agents},
    )


@dataclass
class RolloutStats:
    """Per-episode results of one batch, (B,) tensors on the env device."""

    returns: torch.Tensor  # (B,) float
    lengths: torch.Tensor  # (B,) long
    final_info: dict[str, torch.Tensor]  # name -> (B,), each copy's info at its last step

    def first(self, k: int) -> RolloutStats:
        """The stats of the first ``k`` episodes."""
        return RolloutStats(
            self.returns[:k], self.lengths[:k], {n: v[:k] for n, v in self.final_info.items()}
        )


class EpisodeRunner:
    """Turns (env, controller, action selector) into episode batches."""

    def __init__(
        self,
        env: BatchedEnv,
        mac: MultiAgentController,
        action_selector: EpsilonGreedy,
        generator: torch.Generator,
        obs_dtype: str = "float32",
    ) -> None:
        self.env = env
        self.mac = mac
        self.action_selector = action_selector
        self.generator = generator
        self.env_info = env.get_env_info()
        self.scheme = transition_scheme(self.env_info, obs_dtype)
        self.batch_size = env.batch_size
        self.max_seq_length = self.env_info.episode_limit + 1
        self.t_env = 0

    def new_batch(self) -> EpisodeBatch:
        return EpisodeBatch(self.scheme, self.batch_size, self.max_seq_length, self.env.device)

    @torch.no_grad()
    def run(self, test_mode: bool = False) -> tuple[EpisodeBatch, RolloutStats]:
        """Play one episode in each of the B copies.

        Every step is written for all copies; ``filled`` marks the steps a copy
        really played, plus the state after its last step (for bootstrapping).
        """
        env, b = self.env, self.batch_size
        n_agents, n_actions = self.env_info.n_agents, self.env_info.n_actions
        device = env.device
        batch = self.new_batch()
        env.reset()
        hidden = self.mac.initial_hidden(b)  # (B, N, H)
        last_onehot = torch.zeros(b, n_agents, n_actions, device=device)  # (B, N, A)
        active = torch.ones(b, dtype=torch.bool, device=device)  # (B,)
        returns = torch.zeros(b, device=device)  # (B,)
        lengths = torch.zeros(b, dtype=torch.long, device=device)  # (B,)
        final_info: dict[str, torch.Tensor] = {}

        obs, avail = env.obs(), env.avail_actions()  # (B, N, O), (B, N, A)
        batch.update({"state": env.state(), "obs": obs, "avail_actions": avail}, ts=0)
        for t in range(self.env_info.episode_limit):
            q, hidden = self.mac(obs.unsqueeze(1), last_onehot.unsqueeze(1), hidden)  # (B,1,N,A)
            actions = self.action_selector.select(
                q.squeeze(1), avail, self.t_env, test_mode, self.generator
            )  # (B, N)
            reward, terminated, info = env.step(actions)  # (B,), (B,) bool, {k: (B,)}
            truncated = info["episode_limit"].bool()  # (B,)
            batch.update(
                {
                    "actions": actions.unsqueeze(-1),  # (B, N, 1)
                    "reward": reward,
                    "terminated": terminated & ~truncated,
                },
                ts=t,
                mark_filled=False,
            )
            obs, avail = env.obs(), env.avail_actions()  # (B, N, O), (B, N, A)
            batch.update(
                {"state": env.state(), "obs": obs, "avail_actions": avail},
                ts=t + 1,
                mark_filled=False,
            )
            # Step t was played, and step t + 1 holds its next state, for active copies.
            batch.mark_filled(t, active)
            batch.mark_filled(t + 1, active)
            returns += torch.where(active, reward, torch.zeros_like(reward))  # (B,)
            lengths += active.long()  # (B,)
            ended = active & terminated  # (B,)
            for key, value in info.items():
                old = final_info.get(key, torch.zeros_like(value))
                final_info[key] = torch.where(ended, value, old)  # (B,)
            last_onehot = F.one_hot(actions, n_actions).float()  # (B, N, A)
            active = active & ~terminated  # (B,)
            if not bool(active.any()):
                break
        if not test_mode:
            self.t_env += int(lengths.sum())
        return batch, RolloutStats(returns, lengths, final_info)

    def state_dict(self) -> dict[str, Any]:
        return {"t_env": self.t_env, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t_env = int(state["t_env"])
        self.generator.set_state(state["generator"])
