"""Weights & Biases: one W&B run per job, continued when the job resumes in its folder.

The W&B run id lives in the run folder (``wandb_run_id.txt``), so a resumed or
requeued job continues its W&B run (``resume="allow"``); W&B's own files go to
``<run folder>/wandb/``. Metrics are plotted against ``t_env``, logged as a field
rather than as W&B's ``step``: a job resumed from a checkpoint logs env steps
again that W&B has already seen, and W&B drops rows whose ``step`` goes back.

W&B is optional: when it is not installed, or any W&B call fails (no API key,
no network, a bad project), this logger warns once and turns itself off, and
training goes on with the other loggers. Online, it first says that it is
connecting: without network ``wandb.init`` waits ``init_timeout`` seconds
(W&B's ``Settings.init_timeout``) before it fails.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marl.envs.base import env_task as task_of_env
from marl.logging.base import Logger, RunInfo
from marl.validation import bounds, choices

log = logging.getLogger("marl")

RUN_ID_FILE = "wandb_run_id.txt"
"""The W&B run id of a train job, in its run folder."""
MULTIRUN_FOLDER = "multirun"
"""A run folder under a folder of this name is one job of a sweep."""
INSTALL_HINT = "pip install wandb"
_ID_CHARS = string.ascii_lowercase + string.digits
_BAD_ID_CHARS = re.compile(r"[/\\#?%:\s]")
_MAX_TAG_LEN = 64


@dataclass
class WandbLoggerConfig:
    """Schema for the `wandb` logger."""

    _target_: str = "marl.logging.wandb.WandbLogger"
    project: str = "marl"
    """W&B project the runs go to."""
    entity: str | None = None
    """W&B user or team; null: the account's default entity."""
    mode: str = field(default="online", metadata=choices("online", "offline", "disabled"))
    """online | offline (sync later with `wandb sync`) | disabled (log nothing)."""
    group: str | None = None
    """null: the sweep folder for a multirun job, else algo-env-task (the config minus seed)."""
    tags: list[str] | None = None
    """null: algo name, env name and map/game."""
    name: str | None = None
    """Display name; null: the run folder's name."""
    notes: str | None = None
    """Free text shown with the run."""
    init_timeout: float = field(default=30.0, metadata=bounds(0, low_open=True))
    """Seconds `wandb.init` may wait for the server before this logger gives up."""


def new_run_id() -> str:
    """Eight random lowercase letters and digits, like W&B's own run ids."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(8))


def run_id_path(run_dir: Path, job_type: str = "train") -> Path:
    """``wandb_run_id.txt`` for train jobs; other job types keep their own W&B run."""
    if job_type == "train":
        return run_dir / RUN_ID_FILE
    return run_dir / f"wandb_run_id.{job_type}.txt"


def env_name(config: Mapping[str, Any]) -> str | None:
    """``marl.envs.matrix.MatrixEnv`` -> ``matrix``: the env class, lowercase, minus ``Env``."""
    env = config.get("env")
    target = env.get("_target_") if isinstance(env, Mapping) else None
    if not target:
        return None
    short = str(target).rsplit(".", 1)[-1]
    return (short.removesuffix("Env") or short).lower()


def env_task(config: Mapping[str, Any]) -> str | None:
    """The task inside the env family: its ``map_name``, ``game`` or ``key``."""
    env = config.get("env")
    return task_of_env(env) if isinstance(env, Mapping) else None


def algo_name(config: Mapping[str, Any]) -> str | None:
    algo = config.get("algo")
    name = algo.get("name") if isinstance(algo, Mapping) else None
    return str(name) if name else None


def sweep_group(run_dir: Path) -> str | None:
    """``.../multirun/2024-05-01/12-00-00/0_qmix_seed1`` -> ``2024-05-01/12-00-00``."""
    parent = run_dir.absolute().parent
    parts = parent.parts
    if MULTIRUN_FOLDER not in parts:
        return None
    last = len(parts) - 1 - parts[::-1].index(MULTIRUN_FOLDER)
    return "/".join(parts[last + 1 :]) or MULTIRUN_FOLDER


def config_group(config: Mapping[str, Any]) -> str | None:
    """The config without its seed, readably: ``qmix-matrix_two_step``."""
    env = "_".join(p for p in (env_name(config), env_task(config)) if p)
    return "-".join(p for p in (algo_name(config), env) if p) or None


def default_group(run: RunInfo) -> str | None:
    """The sweep folder for a multirun job, else the config without its seed."""
    return sweep_group(run.run_dir) or config_group(run.config)


def default_tags(config: Mapping[str, Any]) -> list[str]:
    """Algo name, env name and map/game, for filtering runs in the W&B UI."""
    tags = (algo_name(config), env_name(config), env_task(config))
    return list(dict.fromkeys(t[:_MAX_TAG_LEN] for t in tags if t))


class WandbLogger(Logger):
    """Logs the resolved config and every metric to one W&B run per job.

    A failing W&B never stops training: the first error is logged as a warning
    and the logger does nothing from then on. ``close`` may be called twice.
    """

    def __init__(
        self,
        project: str = WandbLoggerConfig.project,
        entity: str | None = WandbLoggerConfig.entity,
        mode: str = WandbLoggerConfig.mode,
        group: str | None = WandbLoggerConfig.group,
        tags: Sequence[str] | None = WandbLoggerConfig.tags,
        name: str | None = WandbLoggerConfig.name,
        notes: str | None = WandbLoggerConfig.notes,
        init_timeout: float = WandbLoggerConfig.init_timeout,
    ) -> None:
        self.project = project
        self.entity = entity
        self.mode = mode
        self.group = group
        self.tags = None if tags is None else list(tags)
        self.name = name
        self.notes = notes
        self.init_timeout = init_timeout
        self.run_id: str | None = None
        self.run: Any = None
        """The live ``wandb.Run``; None before ``start``, after ``close`` or a failure."""
        self.disabled = False
        self._warned = False

    def _fail(self, what: str, err: BaseException | str) -> None:
        """Warn (once per logger) and stop logging to W&B."""
        self.disabled = True
        if not self._warned:
            self._warned = True
            log.warning(
                "W&B %s failed (%s); W&B logging is off for this run, training goes on "
                "with the other loggers. Without network, use logger.wandb.mode=offline "
                "and `wandb sync` later.",
                what,
                err,
            )

    def _resolve_run_id(self, path: Path) -> str:
        """The id stored in the run folder, else the checkpoint's, else a new one."""
        if path.is_file():
            stored = path.read_text(encoding="utf-8").strip()
            if stored and not _BAD_ID_CHARS.search(stored):
                return stored
            log.warning("%s holds no valid W&B run id; starting a new W&B run", path)
        if self.run_id and not _BAD_ID_CHARS.search(self.run_id):
            return self.run_id
        return new_run_id()

    def start(self, run: RunInfo) -> None:
        if self.run is not None:
            self.close()
        self.disabled = False
        if self.mode == "disabled":
            self.disabled = True
            return
        try:
            import wandb
        except ImportError as err:
            self._fail("import", f"{err}; install it with `{INSTALL_HINT}`")
            return
        try:
            id_path = run_id_path(run.run_dir, run.job_type)
            self.run_id = self._resolve_run_id(id_path)
            id_path.write_text(self.run_id + "\n", encoding="utf-8")
            if self.mode == "online":
                self._announce_connecting()
            self.run = wandb.init(
                project=self.project,
                entity=self.entity,
                mode=self.mode,  # type: ignore[arg-type]  # checked by wandb
                group=self.group if self.group is not None else default_group(run),
                job_type=run.job_type,
                tags=self.tags if self.tags is not None else default_tags(run.config),
                name=self.name or run.run_dir.name,
                notes=self.notes,
                config=dict(run.config),
                allow_val_change=True,  # a resumed job may change e.g. t_max
                dir=str(run.run_dir),
                id=self.run_id,
                resume="allow",
                # A run of its own, even while another W&B run is open in this process.
                reinit="create_new",
                settings=wandb.Settings(init_timeout=self.init_timeout),
            )
            self.run.define_metric("t_env")
            self.run.define_metric("*", step_metric="t_env")
        except Exception as err:
            self._fail("init", err)
            self._finish_quietly()

    def _announce_connecting(self) -> None:
        """Say why the run may pause: without network ``wandb.init`` waits ``init_timeout``."""
        log.info(
            "W&B: connecting to the server. Without network, wandb.init gives up after "
            "logger.wandb.init_timeout=%g s and training goes on without W&B; "
            "WANDB_MODE=offline logs locally instead, for `wandb sync` later.",
            self.init_timeout,
        )

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        if self.disabled or self.run is None:
            return
        try:
            self.run.log({**metrics, "t_env": t_env})
        except Exception as err:
            self._fail("log", err)

    def close(self) -> None:
        if self.run is None:
            return
        try:
            self.run.finish()
        except Exception as err:
            self._fail("finish", err)
        finally:
            self.run = None

    def _finish_quietly(self) -> None:
        """Release a run that failed part-way through ``start``."""
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish()
            except Exception:
                log.debug("finishing a failed W&B run raised", exc_info=True)

    def state_dict(self) -> dict[str, Any]:
        """The W&B run id; the run folder's ``wandb_run_id.txt`` takes precedence."""
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        run_id = state.get("run_id")
        self.run_id = str(run_id) if run_id else None
