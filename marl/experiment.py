"""The training loop of SPEC §3, built from a composed config.

``Experiment`` owns the run's components (env, controller, runner, replay
buffer, learner, loggers) and drives them:

1. the runner plays ``batch_size_run`` episodes and returns one episode batch;
2. the batch goes into the replay buffer;
3. once the buffer holds ``batch_size`` episodes, a sample cut to its longest
   filled step trains the learner;
4. every ``test_interval`` steps (and at the start) greedy test episodes run;
5. every ``save_model_interval`` steps (and after the first batch) a checkpoint;
6. every ``log_interval`` steps the training-episode stats are logged.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from marl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, select_checkpoint
from marl.data.replay_buffer import EpisodeReplayBuffer
from marl.errors import UsageError
from marl.logging.base import LoggerGroup, RunInfo
from marl.runners.episode import RolloutStats
from marl.seeding import generator, seed_everything

log = logging.getLogger("marl")

RESOLVED_CONFIG = "config.yaml"
"""The run's config with every interpolation resolved, saved in the run folder."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device={name} was asked for but CUDA is not available; use device=cpu.")
    return device


def check_run_settings(cfg: DictConfig) -> None:
    """Settings that type-check but cannot work together fail here, before anything runs."""
    if cfg.batch_size > cfg.buffer_size:
        raise UsageError(
            f"batch_size={cfg.batch_size} exceeds buffer_size={cfg.buffer_size}; "
            "the learner could never sample."
        )
    for key in ("t_max", "batch_size", "buffer_size", "batch_size_run", "test_nepisode"):
        if cfg[key] < 1:
            raise UsageError(f"{key} must be at least 1, got {cfg[key]}.")
    for key in ("test_interval", "log_interval", "learner_log_interval", "save_model_interval"):
        if cfg[key] < 1:
            raise UsageError(f"{key} must be at least 1 env step, got {cfg[key]}.")
    if cfg.seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {cfg.seed}.")


class EpisodeStats:
    """Accumulates per-episode results between two logs of one phase (train or test)."""

    def __init__(self) -> None:
        self.values: dict[str, list[torch.Tensor]] = defaultdict(list)

    def add(self, stats: RolloutStats) -> None:
        self.values["return"].append(stats.returns.float())
        self.values["ep_length"].append(stats.lengths.float())
        for key, value in stats.final_info.items():
            self.values[key].append(value.float())

    def __len__(self) -> int:
        return sum(v.numel() for v in self.values["return"])

    def summary(self, prefix: str) -> dict[str, float]:
        """``{prefix}/return_mean``, ``_std``, ``ep_length_mean``, ``<info>_mean``; then reset."""
        out: dict[str, float] = {}
        for key, chunks in self.values.items():
            values = torch.cat(chunks)  # (episodes,)
            out[f"{prefix}/{key}_mean"] = values.mean().item()
        returns = torch.cat(self.values["return"])
        out[f"{prefix}/return_std"] = returns.std(unbiased=False).item()
        out[f"{prefix}/return_min"] = returns.min().item()
        out[f"{prefix}/return_max"] = returns.max().item()
        self.values.clear()
        return out


class Experiment:
    """Builds every component from the config and runs training."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        check_run_settings(cfg)
        self.cfg = cfg
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)
        torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)

        self.env = instantiate(
            cfg.env, batch_size=cfg.batch_size_run, seed=cfg.seed, device=self.device
        )
        self.env_info = self.env.get_env_info()
        if cfg.save_replay and not hasattr(self.env, "save_replay"):
            raise UsageError(
                f"env {type(self.env).__name__} cannot save replays; drop save_replay=true."
            )
        info = self.env_info
        self.mac = instantiate(
            cfg.algo.controller,
            agent=instantiate(cfg.algo.agent, _partial_=True),
            env_info=info,
        ).to(self.device)
        self.mixer: torch.nn.Module | None = None
        if cfg.algo.mixer is not None:
            self.mixer = instantiate(
                cfg.algo.mixer, n_agents=info.n_agents, state_dim=info.state_shape
            ).to(self.device)
        self.runner = instantiate(
            cfg.runner,
            env=self.env,
            mac=self.mac,
            action_selector=instantiate(cfg.algo.action_selector),
            generator=generator(cfg.seed, "actions", self.device),
        )
        self.buffer = EpisodeReplayBuffer(
            self.runner.scheme, cfg.buffer_size, self.runner.max_seq_length, device=self.device
        )
        self.sample_generator = generator(cfg.seed, "replay")
        self.learner = instantiate(cfg.learner, mac=self.mac, mixer=self.mixer)
        self.loggers = LoggerGroup([instantiate(node) for node in cfg.logger.values()])
        self.episode = 0
        self.loaded_from: Path | None = None
        self._started = time.monotonic()
        self._clock = (self._started, 0)  # (time, t_env) at the last train log

    @property
    def t_env(self) -> int:
        return int(self.runner.t_env)

    def start_logging(self) -> None:
        """Start the loggers (which refuse a folder holding another run), save the config."""
        config = cast(dict[str, Any], OmegaConf.to_container(self.cfg, resolve=True))
        self.loggers.start(RunInfo(self.run_dir, self.cfg.t_max, config))
        (self.run_dir / RESOLVED_CONFIG).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        log.info("env info: %s", self.env_info.as_dict())

    def test(self) -> dict[str, float]:
        """Greedy episodes: ``max(1, test_nepisode // batch_size_run)`` batches."""
        stats = EpisodeStats()
        for _ in range(max(1, self.cfg.test_nepisode // self.cfg.batch_size_run)):
            _, rollout = self.runner.run(test_mode=True)
            stats.add(rollout)
        return stats.summary("test")

    def train(self) -> None:
        """Train until ``t_max`` env steps; log, test and save on their intervals."""
        cfg = self.cfg
        self.start_logging()
        train_stats = EpisodeStats()
        last_test_t = last_log_t = last_learner_log_t = -max(
            cfg.test_interval, cfg.log_interval, cfg.learner_log_interval
        )
        last_save_t = 0
        learner_stats: dict[str, float] = {}
        self._started = time.monotonic()
        self._clock = (self._started, self.t_env)
        try:
            while self.t_env < cfg.t_max:
                # ROLLOUT
                batch, rollout = self.runner.run(test_mode=False)
                train_stats.add(rollout)
                self.episode += self.runner.batch_size
                # BUFFER UPDATE
                self.buffer.insert(batch)
                # NETWORK UPDATE
                if self.buffer.can_sample(cfg.batch_size):
                    sample = self.buffer.sample(cfg.batch_size, self.sample_generator)
                    sample = sample.slice_time(sample.max_t_filled()).to(self.device)
                    learner_stats = self.learner.train(sample, self.t_env, self.episode)
                    if self.t_env - last_learner_log_t >= cfg.learner_log_interval:
                        self.loggers.log(learner_stats, self.t_env)
                        last_learner_log_t = self.t_env
                # TEST
                if self.t_env - last_test_t >= cfg.test_interval:
                    self.loggers.log(self.test(), self.t_env)
                    last_test_t = self.t_env
                # SAVE
                if cfg.save_model and (
                    last_save_t == 0 or self.t_env - last_save_t >= cfg.save_model_interval
                ):
                    self.save()
                    last_save_t = self.t_env
                # LOG
                if self.t_env - last_log_t >= cfg.log_interval:
                    self.loggers.log(self.train_summary(train_stats), self.t_env)
                    last_log_t = self.t_env
                self.loggers.progress(self.t_env)
            if last_test_t != self.t_env:
                self.loggers.log(self.test(), self.t_env)
            if len(train_stats):
                self.loggers.log(self.train_summary(train_stats), self.t_env)
            if cfg.save_model and last_save_t != self.t_env:
                self.save()
        finally:
            self.loggers.close()
            self.env.close()

    def train_summary(self, stats: EpisodeStats) -> dict[str, float]:
        """Training-episode stats since the last log, plus counters and wall-clock rates."""
        out = stats.summary("train") if len(stats) else {}
        out["train/episode"] = float(self.episode)
        out["train/epsilon"] = self.runner.action_selector.epsilon(self.t_env)
        now = time.monotonic()
        elapsed = now - self._clock[0]
        if elapsed > 0:
            out["time/sps"] = (self.t_env - self._clock[1]) / elapsed
        out["time/elapsed_s"] = now - self._started
        self._clock = (now, self.t_env)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Every stateful component, for checkpoints."""
        return {
            "learner": self.learner.state_dict(),
            "runner": self.runner.state_dict(),
            "env": self.env.state_dict(),
            "episode": self.episode,
            "sample_generator": self.sample_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.runner.load_state_dict(state["runner"])
        self.env.load_state_dict(state["env"])
        self.episode = int(state["episode"])
        self.sample_generator.set_state(state["sample_generator"])

    def save(self) -> Path:
        path = save_checkpoint(
            self.run_dir / "checkpoints",
            self.t_env,
            self.state_dict(),
            meta={
                "env_info": self.env_info.as_dict(),
                "algo": self.cfg.algo.name,
                "config": OmegaConf.to_container(self.cfg, resolve=True),
            },
        )
        log.info("saved checkpoint %s", path)
        return path

    def load(self, checkpoint_path: str, load_step: int) -> Path:
        """Restore the state of the checkpoint chosen by ``load_step``."""
        step_dir = select_checkpoint(checkpoint_path, load_step)
        state, meta = load_checkpoint(step_dir)
        saved, current = meta.get("env_info", {}), self.env_info.as_dict()
        differing = sorted(k for k in current if saved.get(k) != current[k])
        if differing:
            raise CheckpointError(
                f"{step_dir} does not fit this env: {', '.join(differing)} differ "
                f"(saved {[saved.get(k) for k in differing]}, "
                f"now {[current[k] for k in differing]})."
            )
        if meta.get("algo") != self.cfg.algo.name:
            raise CheckpointError(
                f"{step_dir} was saved by algo={meta.get('algo')}, not algo={self.cfg.algo.name}."
            )
        try:
            self.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{step_dir} does not fit this config: {err}") from err
        self.loaded_from = step_dir
        log.info("loaded checkpoint %s (t_env %d)", step_dir, self.t_env)
        return step_dir

    def evaluate(self) -> dict[str, Any]:
        """Greedy episodes from the loaded state: ``test_nepisode`` episodes, logged once."""
        self.start_logging()
        try:
            stats = EpisodeStats()
            played = 0
            while played < self.cfg.test_nepisode:
                _, rollout = self.runner.run(test_mode=True)
                keep = min(self.runner.batch_size, self.cfg.test_nepisode - played)
                stats.add(rollout.first(keep))
                played += keep
            summary = stats.summary("eval")
            self.loggers.log(summary, self.t_env)
        finally:
            self.loggers.close()
            self.env.close()
        result: dict[str, Any] = {
            "t_env": self.t_env,
            "checkpoint": str(self.loaded_from) if self.loaded_from else None,
            "seed": self.cfg.seed,
            "n_episodes": played,
        }
        result.update({k.removeprefix("eval/"): v for k, v in summary.items()})
        return result
