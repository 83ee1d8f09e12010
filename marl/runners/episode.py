"""The episode runner: plays one batch of B episodes in a batched env.

B = ``batch_size_run`` copies run in lock step; B = 1 is PyMARL's episode
runner. Copies that end early stop being written (their later steps stay
unfilled) while the others play on. ``t_env`` counts real env steps summed over
copies, in training mode only.

Shapes: B env copies, T = episode_limit + 1 stored steps, N agents, A actions,
O obs size, S state size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.data.scheme import Field, Scheme, compact_index_dtype
from marl.envs.base import BatchedEnv, EnvInfo
from marl.errors import UsageError
from marl.exploration.base import ActionSelector
from marl.validation import bounds


@dataclass
class EpisodeRunnerConfig:
    """Schema for `runner=episode`."""

    _target_: str = "marl.runners.episode.EpisodeRunner"
    sync_every: int | None = field(default=None, metadata=bounds(1))
    """Steps between reads of "has every copy ended?" back to the host; None: 1 on the
    CPU, where the read is free, and 8 on other devices, where each read makes the host
    wait for the device. Copies that ended step on frozen and unrecorded in between."""


OBS_DTYPES = ("auto", "float32", "float16", "int8")
DEVICE_SYNC_EVERY = 8  # at most 7 extra frozen steps per batch, one host wait per 8 steps
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


def final_info(
    infos: list[dict[str, torch.Tensor]], lengths: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Each copy's info at its last played step: infos has one {key: (B,)} per step,
    lengths (B,) counts the steps each copy played (a key missing at a step reads 0)."""
    last = (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
    out = {}
    for key in dict.fromkeys(k for info in infos for k in info):
        present = next(info[key] for info in infos if key in info)
        values = [info.get(key, torch.zeros_like(present)) for info in infos]
        out[key] = torch.stack(values, 1).gather(1, last).squeeze(1)  # (B,)
    return out


Steps = dict[str, list[torch.Tensor]]
"""Per field, one tensor per step of an episode."""


@dataclass
class RolloutStats:
    """Per-episode results of one batch, (B,) tensors on the env device."""

    returns: torch.Tensor  # (B,) float
    lengths: torch.Tensor  # (B,) long
    final_info: dict[str, torch.Tensor]  # name -> (B,), each copy's info at its last step

    def first(self, k: int) -> RolloutStats:
        """The stats of the first ``k`` episodes."""
        return self.rows(slice(0, k))

    def rows(self, index: slice | torch.Tensor) -> RolloutStats:
        """The stats of episodes ``index``."""
        info = {name: value[index] for name, value in self.final_info.items()}
        return RolloutStats(self.returns[index], self.lengths[index], info)

    @staticmethod
    def cat(parts: list[RolloutStats]) -> RolloutStats:
        """The episodes of ``parts`` in order (info keys missing from a part read 0)."""
        keys = dict.fromkeys(k for p in parts for k in p.final_info)
        info = {
            key: torch.cat(
                [p.final_info.get(key, torch.zeros_like(p.returns)) for p in parts]
            )  # (sum of B,)
            for key in keys
        }
        returns = torch.cat([p.returns for p in parts])  # (sum of B,)
        return RolloutStats(returns, torch.cat([p.lengths for p in parts]), info)


def check_available(avail: torch.Tensor) -> None:
    """Raise unless every agent has an available action: avail (..., N, A) bool (an env
    bug otherwise; the action selectors need one)."""
    if not bool(avail.any(dim=-1).all()):
        raise ValueError("every agent needs at least one available action at every step")


def episode_returns(batch: EpisodeBatch, lengths: torch.Tensor) -> torch.Tensor:
    """Each episode's undiscounted return, (B,), from its stored rewards and its length
    lengths (B,) (the steps it played; later steps are not counted)."""
    rewards = batch["reward"][..., 0]  # (B, T)
    steps = torch.arange(batch.max_seq_length, device=rewards.device)  # (T,)
    played = steps < lengths.to(rewards.device).unsqueeze(1)  # (B, T)
    return torch.where(played, rewards, torch.zeros_like(rewards)).sum(1)  # (B,)


class EpisodeRunner:
    """Turns (env, controller, action selector) into episode batches."""

    on_policy_ok: ClassVar[bool] = True  # every episode of a batch is played by one policy

    def __init__(
        self,
        env: BatchedEnv,
        mac: MultiAgentController,
        action_selector: ActionSelector,
        generator: torch.Generator,
        obs_dtype: str = "float32",
        sync_every: int | None = EpisodeRunnerConfig.sync_every,
    ) -> None:
        if sync_every is not None and sync_every < 1:
            raise UsageError(f"runner.sync_every must be at least 1, got {sync_every}.")
        self.env = env
        self.mac = mac
        self.action_selector = action_selector
        self.generator = generator
        self.env_info = env.get_env_info()
        self.scheme = transition_scheme(self.env_info, obs_dtype)
        self.batch_size = env.batch_size
        self.max_seq_length = self.env_info.episode_limit + 1
        if sync_every is None:
            sync_every = 1 if env.device.type == "cpu" else DEVICE_SYNC_EVERY
        self.sync_every = sync_every
        self.t_env = 0

    def new_batch(self) -> EpisodeBatch:
        return EpisodeBatch(self.scheme, self.batch_size, self.max_seq_length, self.env.device)

    def run(self, test_mode: bool = False) -> tuple[EpisodeBatch, RolloutStats]:
        """Play one episode in each of the B copies.

        Every step is kept for all copies and written to the batch once, at the end
        (one write per field, not one per step); ``filled`` marks the steps a copy
        really played, plus the state after its last step (for bootstrapping).
        """
        with torch.inference_mode():  # no autograd bookkeeping on the per-step ops
            seen, played, infos = self._play(test_mode)
        batch = self.new_batch()
        steps = len(played["reward"])  # L
        looked = {k: torch.stack(v, 1) for k, v in seen.items()}  # each (B, L + 1, ...)
        check_available(looked["avail_actions"])
        batch.update(looked, ts=slice(0, steps + 1), mark_filled=False)
        stacked = {k: torch.stack(v, 1) for k, v in played.items()}  # each (B, L, ...)
        played_mask = ~stacked.pop("ended")  # (B, L): the copy played step t
        truncated = stacked.pop("truncated").bool()  # (B, L)
        stacked["terminated"] = stacked["terminated"] & ~truncated  # time limits bootstrap
        stacked["actions"] = stacked["actions"].unsqueeze(-1)  # (B, L, N, 1)
        batch.update(stacked, ts=slice(0, steps), mark_filled=False)
        # Step t was played, and step t + 1 holds its next state, for active copies.
        batch.mark_filled(slice(0, steps), played_mask)
        batch.mark_filled(slice(1, steps + 1), played_mask)
        lengths = played_mask.long().sum(1)  # (B,)
        returns = episode_returns(batch, lengths)  # (B,)
        if not test_mode:
            self.t_env += int(lengths.sum())
        return batch, RolloutStats(returns, lengths, final_info(infos, lengths))

    def _play(self, test_mode: bool) -> tuple[Steps, Steps, list[dict[str, torch.Tensor]]]:
        """The episode's steps: per t what the agents saw (t = 0 .. L), what they did and
        got (t < L) with ``ended`` (B,) (the copy's episode was over before step t), and
        the step infos."""
        env, b = self.env, self.batch_size
        env.reset()
        hidden = self.mac.initial_hidden(b)  # (B, N, H)
        last_onehot = None  # (B, N, A) when the agents see their last actions
        if self.mac.obs_last_action:
            n, a = self.env_info.n_agents, self.env_info.n_actions
            last_onehot = torch.zeros(b, n, a, device=env.device)
        ended = torch.zeros(b, dtype=torch.bool, device=env.device)  # (B,)
        seen: Steps = {"state": [], "obs": [], "avail_actions": []}
        played: Steps = {k: [] for k in ("actions", "reward", "terminated", "truncated", "ended")}
        infos: list[dict[str, torch.Tensor]] = []

        obs, avail = self._look(seen)  # (B, N, O), (B, N, A)
        for t in range(1, self.env_info.episode_limit + 1):
            q, hidden = self.mac.step(obs, last_onehot, hidden)  # (B, N, A), (B, N, H)
            actions = self.action_selector.select(
                q, avail, self.t_env, test_mode, self.generator
            )  # (B, N)
            reward, terminated, info = env.step(actions)  # (B,), (B,) bool, {k: (B,)}
            played["actions"].append(actions)  # (B, N)
            played["reward"].append(reward)  # (B,)
            played["terminated"].append(terminated)  # (B,)
            played["truncated"].append(info["episode_limit"])  # (B,)
            played["ended"].append(ended)  # (B,)
            infos.append(info)
            obs, avail = self._look(seen)
            if last_onehot is not None:
                last_onehot = F.one_hot(actions, self.env_info.n_actions).float()
            ended = ended | terminated  # (B,)
            if t % self.sync_every == 0 and bool(ended.all()):
                break
        return seen, played, infos

    def _look(self, seen: dict[str, list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the env's state, observations and masks; return obs (B, N, O), avail (B, N, A)."""
        obs, avail = self.env.obs(), self.env.avail_actions()
        seen["state"].append(self.env.state())  # (B, S)
        seen["obs"].append(obs)
        seen["avail_actions"].append(avail)
        return obs, avail

    def state_dict(self) -> dict[str, Any]:
        return {"t_env": self.t_env, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t_env = int(state["t_env"])
        self.generator.set_state(state["generator"])
