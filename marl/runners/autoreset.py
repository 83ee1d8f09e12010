"""The autoreset runner: B env copies that never wait for each other.

The episode runner plays B copies in lock step, so a copy whose episode ended idles
until the longest episode of the batch is over (more than half the simulated steps at
1,024 battle copies). Here a copy whose episode ends shows its last observation (the
episode's final stored step), sits out the next env step, and starts its next episode
while the others play on; when every copy ends at once, they all start again at once
(so B = 1 plays exactly as the episode runner). Hidden states and last actions reset per
copy.

``run()`` returns the first B episodes finished since the previous call, each whole
and in the episode runner's layout; episodes that finish in the same step beyond those
B wait for the next call. ``t_env`` counts the steps of the episodes handed over, so
the training schedule (updates per B episodes, test and save intervals) reads as with
the episode runner. Test episodes (and ``evaluate``) play in lock step; the training
copies' env state is put back afterwards.

Episodes that started before a learner update finish under the updated policy, which is
fine for off-policy learners and not for on-policy ones (refused in validation). Each step
reads back which copies ended (free on the CPU; off it, a host wait per step, where the
episode runner's ``sync_every`` waits once per 8).

Shapes: B env copies, T = episode_limit + 1 stored steps, N agents, A actions, H hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.envs.base import BatchedEnv, CopyResetEnv
from marl.errors import UsageError
from marl.exploration.base import ActionSelector
from marl.runners.episode import (
    EpisodeRunner,
    RolloutStats,
    check_available,
    episode_returns,
)


@dataclass
class AutoresetRunnerConfig:
    """Schema for `runner=autoreset`."""

    _target_: str = "marl.runners.autoreset.AutoresetRunner"


class AutoresetRunner(EpisodeRunner):
    """Turns (env, controller, action selector) into batches of B whole episodes, each
    env copy starting its next episode as soon as the last one ends."""

    on_policy_ok: ClassVar[bool] = False

    def __init__(
        self,
        env: BatchedEnv,
        mac: MultiAgentController,
        action_selector: ActionSelector,
        generator: torch.Generator,
        obs_dtype: str = "float32",
    ) -> None:
        if not isinstance(env, CopyResetEnv):
            raise UsageError(
                f"runner=autoreset needs an env that starts a new episode in one copy while "
                f"the others play on (battle, matrix); {type(env).__name__} cannot: use "
                "runner=episode."
            )
        super().__init__(env, mac, action_selector, generator, obs_dtype, sync_every=1)
        self.copy_env: CopyResetEnv = env
        b = self.batch_size
        self._episodes = self.new_batch()  # (B, T) each copy's episode in progress
        self._t = torch.zeros(b, dtype=torch.long, device=env.device)  # (B,) steps played
        self._pending = torch.zeros(b, dtype=torch.bool, device=env.device)  # (B,) ended
        self._hidden: torch.Tensor | None = None  # (B, N, H); None: not started
        self._last_onehot: torch.Tensor | None = None  # (B, N, A) when agents see it
        self._obs: torch.Tensor | None = None  # (B, N, O) what the agents see now
        self._avail: torch.Tensor | None = None  # (B, N, A)
        self._queue: list[tuple[EpisodeBatch, RolloutStats]] = []  # finished, not handed over
        self.copy_steps = 0  # env steps simulated (B per step), real or idle

    # ------------------------------------------------------------------ running

    def run(self, test_mode: bool = False) -> tuple[EpisodeBatch, RolloutStats]:
        """Training: the next B finished episodes. Test: B episodes in lock step."""
        if test_mode:
            saved = self.env.state_dict()
            try:
                return super().run(test_mode=True)
            finally:
                self.env.load_state_dict(saved)
                self._obs = None  # look again at the restored copies
        with torch.inference_mode():
            if self._hidden is None:
                self._start()
            elif self._obs is None:
                self._obs, self._avail = self.env.obs(), self.env.avail_actions()
            while sum(batch.batch_size for batch, _ in self._queue) < self.batch_size:
                self._step()
        batch, stats = self._hand_over()
        self.t_env += int(stats.lengths.sum())
        return batch, stats

    def _start(self) -> None:
        """New episodes in every copy."""
        self.env.reset()
        self._hidden = self.mac.initial_hidden(self.batch_size)  # (B, N, H)
        if self.mac.obs_last_action:
            n, a = self.env_info.n_agents, self.env_info.n_actions
            self._last_onehot = torch.zeros(self.batch_size, n, a, device=self.env.device)
        self._t.zero_()
        self._pending.zero_()
        self._observe()

    def _step(self) -> None:
        """One env step of every copy: record what the playing copies did, start the copies
        that ended last step anew, look, and queue the episodes that ended now."""
        assert self._hidden is not None and self._obs is not None and self._avail is not None
        q, self._hidden = self.mac.step(self._obs, self._last_onehot, self._hidden)
        actions = self.action_selector.select(
            q, self._avail, self.t_env, False, self.generator
        )  # (B, N)
        reward, terminated, info = self.env.step(actions)  # (B,), (B,), {k: (B,)}
        self.copy_steps += self.batch_size
        playing = ~self._pending  # (B,) copies that ended last step sat this one out
        truncated = info["episode_limit"].bool()  # (B,)
        played = {
            "actions": actions.unsqueeze(-1),  # (B, N, 1)
            "reward": reward,  # (B,)
            "terminated": terminated & ~truncated,  # (B,) time limits bootstrap
        }
        self._episodes.update_steps(played, self._t, where=playing, mark_filled=False)
        self._t = self._t + playing.long()  # (B,)
        if self._last_onehot is not None:
            self._last_onehot = F.one_hot(actions, self.env_info.n_actions).float()
        ended = terminated & playing  # (B,)
        if bool(self._pending.any()):
            self._restart(self._pending)
        self._observe()
        if bool(ended.any()):
            self._finish(ended, info)
            if bool(ended.all()):  # none plays on: all start again now, none sits out
                self._restart(ended)
                self._observe()
                ended = torch.zeros_like(ended)
        self._pending = ended

    def _restart(self, copies: torch.Tensor) -> None:
        """New episodes in ``copies`` (B,) bool: env, step counts, hidden, last actions."""
        assert self._hidden is not None
        self.copy_env.reset_copies(copies)
        self._t = self._t.masked_fill(copies, 0)  # (B,)
        fresh = self.mac.initial_hidden(self.batch_size)  # (B, N, H)
        self._hidden = torch.where(copies.view(-1, 1, 1), fresh, self._hidden)  # (B, N, H)
        if self._last_onehot is not None:
            self._last_onehot = self._last_onehot.masked_fill(copies.view(-1, 1, 1), 0.0)

    def _observe(self) -> None:
        """Read obs, masks and state of every copy and store them at its current step."""
        obs, avail = self.env.obs(), self.env.avail_actions()  # (B, N, O), (B, N, A)
        check_available(avail)
        seen = {"state": self.env.state(), "obs": obs, "avail_actions": avail}
        self._episodes.update_steps(seen, self._t)
        self._obs, self._avail = obs, avail

    def _finish(self, ended: torch.Tensor, info: dict[str, torch.Tensor]) -> None:
        """Queue the episodes of ``ended`` (B,) bool copies, in copy order, and empty
        their rows for the next episode."""
        idx = ended.nonzero().squeeze(1)  # (k,)
        episodes = self._episodes.index(idx)  # (k, T)
        self._episodes.clear(idx)
        lengths = self._t[idx]  # (k,)
        stats = RolloutStats(
            episode_returns(episodes, lengths), lengths, {k: v[idx] for k, v in info.items()}
        )
        self._queue.append((episodes, stats))

    def _queued(self) -> tuple[EpisodeBatch, RolloutStats]:
        """Every queued episode, in the order they finished, in one batch."""
        batch = EpisodeBatch.cat([b for b, _ in self._queue])  # (queued, T)
        return batch, RolloutStats.cat([s for _, s in self._queue])

    def _hand_over(self) -> tuple[EpisodeBatch, RolloutStats]:
        """The first B queued episodes; the rest stay queued."""
        batch, stats = self._queued()  # (>= B, T)
        b, queued = self.batch_size, batch.batch_size
        first, rest = torch.arange(queued, device=batch.device).split([b, queued - b])
        self._queue = [(batch.index(rest), stats.rows(rest))] if queued > b else []
        return batch.index(first), stats.rows(first)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The episode runner's state plus every copy's episode in progress and the queue
        (the env saves its own copies' state)."""
        state = super().state_dict()
        if self._hidden is None:
            return state
        queue = None
        if self._queue:
            batch, stats = self._queued()
            queue = {
                "episodes": {k: v.clone() for k, v in batch.data.items()},
                "returns": stats.returns.clone(),
                "lengths": stats.lengths.clone(),
                "final_info": {k: v.clone() for k, v in stats.final_info.items()},
            }
        state["in_progress"] = {
            "episodes": {k: v.clone() for k, v in self._episodes.data.items()},
            "t": self._t.clone(),
            "pending": self._pending.clone(),
            "hidden": self._hidden.clone(),
            "last_onehot": None if self._last_onehot is None else self._last_onehot.clone(),
            "copy_steps": self.copy_steps,
            "queue": queue,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "in_progress" not in state:  # saved before any training step: start afresh
            self._hidden = None
            return
        saved, dev = state["in_progress"], self.env.device
        self._episodes = EpisodeBatch(
            self.scheme, self.batch_size, self.max_seq_length, dev, saved["episodes"]
        )
        self._t = saved["t"].to(dev).clone()  # (B,)
        self._pending = saved["pending"].to(dev).clone()  # (B,)
        self._hidden = saved["hidden"].to(dev).clone()  # (B, N, H)
        onehot = saved["last_onehot"]
        self._last_onehot = None if onehot is None else onehot.to(dev).clone()  # (B, N, A)
        self.copy_steps = int(saved["copy_steps"])
        self._queue = []
        if saved["queue"] is not None:
            q = saved["queue"]
            size = int(q["lengths"].shape[0])
            batch = EpisodeBatch(self.scheme, size, self.max_seq_length, dev, q["episodes"])
            info = {k: v.to(dev) for k, v in q["final_info"].items()}
            stats = RolloutStats(q["returns"].to(dev), q["lengths"].to(dev), info)
            self._queue = [(batch, stats)]
        self._obs = self._avail = None  # read from the env (restored next) at the next run
