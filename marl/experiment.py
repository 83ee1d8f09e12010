"""The training loop of SPEC §3, built from a composed config.

``Experiment`` owns the run's components (env, controller, runner, replay
buffer, learner, loggers) and drives them. One iteration:

1. the runner plays ``batch_size_run`` episodes and returns one episode batch;
2. the batch goes into the replay buffer;
3. once the buffer holds ``batch_size`` episodes, ``updates_per_rollout``
   samples, each cut to its longest filled step, train the learner (or as many as
   the rollout's steps bring with ``updates_per_env_step``; with
   ``sample=transitions`` each sample is ``batch_size`` single steps);
4. every ``test_interval`` steps (and at the start) greedy test episodes run;
5. every ``log_interval`` steps the training-episode stats are logged;
6. every ``save_model_interval`` steps (and after the first batch) a checkpoint.

The checkpoint is the last phase, so a run restored from it continues with the
next iteration exactly as the uninterrupted run did.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from marl.checkpoint import (
    CheckpointError,
    load_buffer,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    shape_mismatches,
)
from marl.data.replay_buffer import EpisodeReplayBuffer
from marl.envs.base import ReplayEnv, SMACInfoEnv
from marl.errors import UsageError
from marl.interrupt import Interrupted, StopSignals
from marl.learners.common import Learner
from marl.logging.base import LoggerGroup, RunInfo
from marl.machine import thread_counts, torch_threads
from marl.runners.stats import EpisodeStats
from marl.seeding import generator, global_rng_state, seed_everything, set_global_rng_state
from marl.validation import validate_config

log = logging.getLogger("marl")

RESOLVED_CONFIG = "config.yaml"
"""The run's config with every interpolation resolved, saved in the run folder."""
CHECKPOINTS = "checkpoints"
FINISHED = "FINISHED"
"""Written in the run folder when training reached ``t_max`` (holds the final t_env)."""
ENV_INFO_FILE = "env_info.json"
"""The env's own description (SMAC's env info, simulator or SC2 version), per run."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device={name} was asked for but CUDA is not available; use device=cpu.")
    return device


def _updates_by(t_env: int, ratio: float) -> int:
    """int(t_env * ratio), robust to the ratio's rounding (6000 / 6 is 1000, not 999)."""
    return math.floor(t_env * ratio * (1 + 1e-12))


@dataclass
class LoopCounters:
    """Env steps at which each periodic phase last ran (negative: due at once)."""

    last_test_t: int
    last_log_t: int
    last_learner_log_t: int
    last_save_t: int


class Experiment:
    """Builds every component from the config; trains, evaluates, saves and restores."""

    def __init__(self, cfg: DictConfig, run_dir: Path, parallel_jobs: int = 1) -> None:
        """``parallel_jobs``: jobs of a local parallel sweep sharing this machine's CPUs."""
        validate_config(cfg)
        self.cfg = cfg
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)
        acting_threads, self.learner_threads, warnings = thread_counts(
            cfg.torch_threads, cfg.learner_threads, parallel_jobs
        )
        for warning in warnings:
            log.warning("%s", warning)
        torch.set_num_threads(acting_threads)
        self.device = resolve_device(cfg.device)

        self.env = instantiate(
            cfg.env, batch_size=cfg.batch_size_run, seed=cfg.seed, device=self.device
        )
        self.env_info = self.env.get_env_info()
        if cfg.save_replay and not isinstance(self.env, ReplayEnv):
            raise UsageError(
                f"env {type(self.env).__name__} cannot save replays; drop save_replay=true."
            )
        info = self.env_info
        # The algorithm's networks, by name, each from the env's info (in config order:
        # mac first, so its weights draw from the seeded stream as they always have).
        self.modules: dict[str, torch.nn.Module] = {
            name: instantiate(node, env_info=info).to(self.device)
            for name, node in cfg.algo.modules.items()
        }
        self.runner = instantiate(
            cfg.runner,
            env=self.env,
            mac=self.modules["mac"],
            action_selector=instantiate(cfg.algo.action_selector),
            generator=generator(cfg.seed, "actions", self.device),
            obs_dtype=cfg.buffer_obs_dtype,
        )
        self.buffer = EpisodeReplayBuffer(
            self.runner.scheme,
            cfg.buffer_size,
            self.runner.max_seq_length,
            device=resolve_device(cfg.buffer_device) if cfg.buffer_device else self.device,
        )
        self.sample_generator = generator(cfg.seed, "replay")
        # An on-policy learner learns the policy that acted: it gets the runner's selector.
        acting = cast(Learner, get_class(cfg.learner._target_)).on_policy
        self.learner: Learner = instantiate(
            cfg.learner,
            **self.modules,
            generator=generator(cfg.seed, "learner"),
            **({"action_selector": self.runner.action_selector} if acting else {}),
        )
        self.loggers = LoggerGroup({name: instantiate(node) for name, node in cfg.logger.items()})
        self.episode = 0
        self.counters = LoopCounters(
            last_test_t=-cfg.test_interval,
            last_log_t=-cfg.log_interval,
            last_learner_log_t=-cfg.learner_log_interval,
            last_save_t=-cfg.save_model_interval,
        )
        self.train_stats = EpisodeStats()
        self.loaded_from: Path | None = None
        self._clock = (time.monotonic(), 0)  # (time, t_env) at the last train log

    @property
    def t_env(self) -> int:
        return int(self.runner.t_env)

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / CHECKPOINTS

    # ------------------------------------------------------------------ running

    def start_logging(self, job_type: str) -> None:
        """Start the loggers (which refuse a folder holding another run), save the config."""
        config = cast(dict[str, Any], OmegaConf.to_container(self.cfg, resolve=True))
        self.loggers.start(RunInfo(self.run_dir, self.cfg.t_max, config, self.t_env, job_type))
        (self.run_dir / RESOLVED_CONFIG).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        log.info("env info: %s", self.env_info.as_dict())
        if isinstance(self.env, SMACInfoEnv):
            # Which simulator / game version produced these results, saved with the run.
            described = self.env.smac_env_info()
            (self.run_dir / ENV_INFO_FILE).write_text(json.dumps(described, indent=2, default=str))
            for key in ("simulator", "sc2_version"):
                if key in described:
                    log.info("env %s: %s", key, described[key])

    def restart_in_place(self) -> None:
        """Start this run over in its own folder: the loggers rewind to their start."""
        self.loggers.load_state_dict(self.loggers.state_dict())

    def test(self) -> dict[str, float]:
        """Greedy episodes: ``max(1, test_nepisode // batch_size_run)`` batches."""
        stats = EpisodeStats()
        for _ in range(max(1, self.cfg.test_nepisode // self.cfg.batch_size_run)):
            _, rollout = self.runner.run(test_mode=True)
            stats.add(rollout)
        return stats.summary("test")

    def test_due(self, interval: int) -> bool:
        """A test phase is due ``interval`` env steps after the last (never with
        ``test_nepisode=0``, which turns testing off)."""
        return self.cfg.test_nepisode > 0 and self.t_env - self.counters.last_test_t >= interval

    def train(self) -> None:
        """Train until ``t_max`` env steps; test, log and save on their intervals. A stop
        signal (Ctrl-C, SIGTERM, SLURM's) ends training after the current iteration, with a
        checkpoint, by raising ``Interrupted``."""
        self.start_logging("train")
        if self.cfg.save_model:
            self.checkpoints_dir.mkdir(exist_ok=True)  # marks the folder as resumable
        self._clock = (time.monotonic(), self.t_env)
        try:
            with StopSignals() as stop:
                self._train_loop(stop)
        finally:
            self.loggers.close()
            self.env.close()

    def _train_loop(self, stop: StopSignals) -> None:
        """The iterations of ``train``; a stop signal ends them after a whole iteration."""
        cfg, counters = self.cfg, self.counters
        while self.t_env < cfg.t_max:
            # ROLLOUT
            t_before = self.t_env
            batch, rollout = self.runner.run(test_mode=False)
            self.train_stats.add(rollout)
            self.episode += self.runner.batch_size
            # BUFFER UPDATE
            self.buffer.insert(batch)
            # NETWORK UPDATE
            updates = self.updates_due(t_before)
            if updates and self.can_update():
                log_due = self.t_env - counters.last_learner_log_t >= cfg.learner_log_interval
                for i in range(updates):
                    learner_stats = self.update(stats=log_due and i == updates - 1)
                if log_due:
                    self.loggers.log(learner_stats, self.t_env)
                    counters.last_learner_log_t = self.t_env
            # TEST
            if self.test_due(cfg.test_interval):
                self.loggers.log(self.test(), self.t_env)
                counters.last_test_t = self.t_env
            # LOG
            if self.t_env - counters.last_log_t >= cfg.log_interval:
                self.loggers.log(self.train_summary(), self.t_env)
                counters.last_log_t = self.t_env
            # SAVE
            if cfg.save_model and self.t_env - counters.last_save_t >= cfg.save_model_interval:
                self.save()
            self.loggers.progress(self.t_env)
            if stop.received is not None:
                self.stop(stop.received, stop.previous_handler(stop.received))
        # END: a last test, log and checkpoint at t_max, unless they just ran.
        if self.test_due(1):
            self.loggers.log(self.test(), self.t_env)
            counters.last_test_t = self.t_env
        if len(self.train_stats):
            self.loggers.log(self.train_summary(), self.t_env)
            counters.last_log_t = self.t_env
        if cfg.save_model and counters.last_save_t != self.t_env:
            self.save()
        (self.run_dir / FINISHED).write_text(f"{self.t_env}\n")

    def stop(self, signum: int, forward: Any = None) -> None:
        """Stop on a signal at the end of an iteration: save a checkpoint (``save_model``)
        that leaves the periodic schedule as it was, then raise ``Interrupted``."""
        checkpoint = None
        if self.cfg.save_model:
            just_saved = self.counters.last_save_t == self.t_env
            checkpoint = self.checkpoints_dir / str(self.t_env) if just_saved else None
            checkpoint = checkpoint or self.save(periodic=False)
        raise Interrupted(signum, self.t_env, self.cfg.t_max, checkpoint, forward)

    def updates_due(self, t_before: int) -> int:
        """Updates after a rollout that began at ``t_before``: ``updates_per_rollout``, or
        with ``updates_per_env_step`` (r) the ones its steps bring, int(t_env * r) -
        int(t_before * r) (no state to save: a resumed run keeps the schedule)."""
        ratio = self.cfg.updates_per_env_step
        if ratio is None:
            return int(self.cfg.updates_per_rollout)
        return _updates_by(self.t_env, ratio) - _updates_by(t_before, ratio)

    def can_update(self) -> bool:
        """Whether the buffer holds a batch: ``batch_size`` episodes (or transitions)."""
        if self.cfg.sample == "transitions":
            return self.buffer.can_sample_transitions(self.cfg.batch_size)
        return self.buffer.can_sample(self.cfg.batch_size)

    def update(self, stats: bool) -> dict[str, float]:
        """One learner update on ``batch_size`` episodes sampled from the buffer, cut to
        the longest of them (or on ``batch_size`` transitions, each a two-step episode);
        returns the update's stats when ``stats``."""
        n, generator = self.cfg.batch_size, self.sample_generator
        if self.cfg.sample == "transitions":
            slots, steps = self.buffer.sample_transitions(n, generator)
            sample = self.buffer.transitions(slots, steps).to(self.device)
        else:
            slots = self.buffer.sample_slots(n, generator)
            sample = self.buffer.episodes(slots, self.buffer.longest(slots)).to(self.device)
        with torch_threads(self.learner_threads):
            return self.learner.train(sample, self.t_env, self.episode, stats=stats)

    def train_summary(self) -> dict[str, float]:
        """Training-episode stats since the last log, plus counters and wall-clock rates."""
        out = self.train_stats.summary("train") if len(self.train_stats) else {}
        out["train/episode"] = float(self.episode)
        out.update(self.runner.action_selector.stats(self.t_env))
        now = time.monotonic()
        elapsed = now - self._clock[0]
        if elapsed > 0:
            out["time/sps"] = (self.t_env - self._clock[1]) / elapsed
        self._clock = (now, self.t_env)
        return out

    def evaluate(self) -> dict[str, Any]:
        """``test_nepisode`` greedy episodes from the loaded state, logged once."""
        self.start_logging("eval")
        replays: list[Path] = []
        try:
            if self.cfg.save_replay:
                cast(ReplayEnv, self.env).set_recording(True)
            stats = EpisodeStats()
            played = 0
            while played < self.cfg.test_nepisode:
                _, rollout = self.runner.run(test_mode=True)
                keep = min(self.runner.batch_size, self.cfg.test_nepisode - played)
                stats.add(rollout.first(keep))
                played += keep
            summary = stats.summary("eval")
            self.loggers.log(summary, self.t_env)
            if self.cfg.save_replay:
                replays = cast(ReplayEnv, self.env).save_replay(self.run_dir / "replays")
                log.info("saved %d replays in %s", len(replays), self.run_dir / "replays")
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
        if "battle_won_mean" in result:
            result["win_rate"] = result["battle_won_mean"]
        if replays:
            result["replays"] = [str(p) for p in replays]
        return result

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Every stateful part of the run except the replay buffer (saved on its own)."""
        return {
            "learner": self.learner.state_dict(),
            "runner": self.runner.state_dict(),
            "env": self.env.state_dict(),
            "episode": self.episode,
            "counters": asdict(self.counters),
            "train_stats": self.train_stats.state_dict(),
            "sample_generator": self.sample_generator.get_state(),
            "rng": global_rng_state(),
            "loggers": self.loggers.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], same_run: bool) -> None:
        """Restore a full state; the loggers' positions only when resuming in place."""
        self.learner.load_state_dict(state["learner"])
        self.runner.load_state_dict(state["runner"])
        self.env.load_state_dict(state["env"])
        self.episode = int(state["episode"])
        self.counters = LoopCounters(**state["counters"])
        self.train_stats.load_state_dict(state["train_stats"])
        self.sample_generator.set_state(state["sample_generator"])
        set_global_rng_state(state["rng"])
        if same_run:
            self.loggers.load_state_dict(state["loggers"])

    def save(self, periodic: bool = True) -> Path:
        """Checkpoint the run at ``t_env`` in ``<run dir>/checkpoints/<t_env>/``. An extra
        (not ``periodic``) checkpoint, as on a stop signal, does not move the next periodic
        one, so a run resumed from it saves where an uninterrupted run does."""
        policy = self.cfg.checkpoint
        if periodic:
            self.counters.last_save_t = self.t_env
        path = save_checkpoint(
            self.checkpoints_dir,
            self.t_env,
            self.state_dict(),
            meta={
                "algo": self.cfg.algo.name,
                "env_info": self.env_info.as_dict(),
                "config": OmegaConf.to_container(self.cfg, resolve=True),
            },
            buffer=None if policy.save_buffer == "never" else self.buffer.state_dict(),
        )
        prune_checkpoints(self.checkpoints_dir, self.t_env, policy.save_buffer, policy.keep_last)
        log.info("saved checkpoint %s", path)
        return path

    def load(self, step_dir: Path, mode: str) -> None:
        """Restore from a checkpoint step folder.

        mode ``resume``: everything, continuing the run (in place when the checkpoint
        is this run's own); ``eval``: the networks and the step counter; ``weights``:
        the networks only, for a new run (fine-tuning).
        """
        state, meta = load_checkpoint(step_dir, verify=False)  # verified when selected
        self._check_compatible(step_dir, state, meta)
        try:
            if mode == "resume":
                same_run = step_dir.parent.resolve() == self.checkpoints_dir.resolve()
                self.load_state_dict(state, same_run=same_run)
                buffer = load_buffer(step_dir, verify=False)
                if buffer is None:
                    log.warning(
                        "%s holds no replay buffer; training resumes with an empty one, so it "
                        "will not match an uninterrupted run.",
                        step_dir,
                    )
                else:
                    self.buffer.load_state_dict(buffer)
            elif mode == "eval":
                self.learner.load_state_dict(state["learner"])
                self.runner.t_env = int(state["runner"]["t_env"])
            elif mode == "weights":
                self.learner.load_weights(state["learner"])
            else:
                raise ValueError(f"unknown load mode {mode!r}")
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{step_dir} does not fit this config: {err}") from err
        self.loaded_from = step_dir
        log.info("loaded checkpoint %s (%s, t_env %d)", step_dir, mode, self.t_env)

    def _check_compatible(
        self, step_dir: Path, state: dict[str, Any], meta: dict[str, Any]
    ) -> None:
        """Env shapes, algorithm and network shapes must match; name what differs."""
        saved_info, info = meta.get("env_info", {}), self.env_info.as_dict()
        differing = [k for k in info if saved_info.get(k) != info[k]]
        if differing:
            pairs = ", ".join(f"{k} (saved {saved_info.get(k)}, now {info[k]})" for k in differing)
            raise CheckpointError(f"{step_dir} does not fit this env: {pairs} differ.")
        if meta.get("algo") != self.cfg.algo.name:
            raise CheckpointError(
                f"{step_dir} was saved by algo={meta.get('algo')}, not algo={self.cfg.algo.name}."
            )
        learner_state = state.get("learner", {})
        mismatches = []
        for name, network in self.learner.networks().items():
            saved = learner_state.get(name) or {}
            mismatches += shape_mismatches(saved, network.state_dict(), prefix=f"{name}.")
        if mismatches:
            raise CheckpointError(
                f"{step_dir} has networks of other shapes: {'; '.join(mismatches[:5])}"
                + (f"; and {len(mismatches) - 5} more" if len(mismatches) > 5 else "")
                + "."
            )
