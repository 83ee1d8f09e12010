"""The batched environment protocol every env presents to the runner.

A batched env holds B copies of one task and steps them together on one torch
device. Native envs (``matrix``, later ``battle``) implement it directly;
single-env packages are wrapped (serially for B=1, in worker processes for B>1).

Shapes: B env copies, N agents, A actions, O obs size, S state size.

Semantics (SMAC's, batched):

- ``reset()`` starts a new episode in all B copies, drawing any randomness from
  the env's own generator (seeded at construction).
- ``step(actions)`` advances every copy. ``terminated[b]`` is True on the step
  an episode ends for any reason; ``info["episode_limit"][b]`` is True when it
  ended only because the time limit was reached (a truncation, to be
  bootstrapped). A copy stepped after it ended must not raise; the runner
  ignores what it returns.
- ``info`` maps names to (B,) tensors; envs with battles report
  ``battle_won``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

TASK_KEYS = ("map_name", "game", "key", "name", "scenario")
"""Env settings that name the task inside an env family (run folders, W&B, plots)."""


def env_task(env_config: Mapping[str, Any]) -> str | None:
    """The task of an env config: the first of its ``TASK_KEYS`` that is set."""
    for key in TASK_KEYS:
        value = env_config.get(key)
        if value:
            return str(value)
    return None


@dataclass(frozen=True)
class EnvInfo:
    """Static description of an env, with SMAC's ``get_env_info`` keys.

    ``unit_range``: every observation and state feature lies in [-1, 1] (SMAC's
    normalised features), so the replay buffer may store them in 8 bits.
    """

    n_agents: int
    n_actions: int
    obs_shape: int
    state_shape: int
    episode_limit: int
    unit_range: bool = False

    def as_dict(self) -> dict[str, int]:
        """SMAC's five keys (what checkpoints record and compare)."""
        info = asdict(self)
        del info["unit_range"]
        return info


class StepResult(NamedTuple):
    reward: torch.Tensor  # (B,) float32, shared team reward
    terminated: torch.Tensor  # (B,) bool, the episode ended (for any reason)
    info: dict[str, torch.Tensor]  # name -> (B,), always has "episode_limit" (bool)


@runtime_checkable
class BatchedEnv(Protocol):
    """What the runner talks to: B copies of one task on one device.

    ``obs``, ``state``, ``avail_actions`` and ``step`` return tensors the caller may
    keep: the env never writes into them later (the runner holds a whole episode's).
    """

    batch_size: int
    device: torch.device

    def get_env_info(self) -> EnvInfo: ...

    def reset(self) -> None: ...

    def obs(self) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        ...

    def state(self) -> torch.Tensor:
        """Global state, (B, S) float32."""
        ...

    def avail_actions(self) -> torch.Tensor:
        """Available-action masks, (B, N, A) bool."""
        ...

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply actions (B, N) long to every copy."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: generators, counters, internals."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def copy_mask(mask: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """``mask`` checked as one bool per env copy, (B,) on ``device``."""
    if tuple(mask.shape) != (batch_size,) or mask.dtype != torch.bool:
        raise ValueError(
            f"a copy mask must be ({batch_size},) bool, got {tuple(mask.shape)} {mask.dtype}."
        )
    return mask.to(device)


@runtime_checkable
class CopyResetEnv(Protocol):
    """A batched env that starts a new episode in some copies while the others play on
    (what ``runner=autoreset`` needs). Its ``state_dict`` holds every copy's episode in
    progress, so a run checkpointed mid-episode continues exactly."""

    def reset_copies(self, mask: torch.Tensor) -> None:
        """Start a new episode in the copies where ``mask`` (B,) bool is True; the others
        keep their state. A reset copy draws only from its own randomness."""
        ...


@runtime_checkable
class SMACInfoEnv(Protocol):
    """An env that describes itself with SMAC's ``get_env_info`` dict and more
    (feature names, which simulator or game version produced the results)."""

    def smac_env_info(self) -> dict[str, Any]: ...


@runtime_checkable
class ReplayEnv(Protocol):
    """An env that can record episodes and save them as replays (``save_replay=true``)."""

    def set_recording(self, on: bool) -> None:
        """Record the episodes played from now on, in every copy of the batch."""
        ...

    def save_replay(self, directory: Path) -> list[Path]:
        """Write the recorded episodes into ``directory``; return the files written."""
        ...
