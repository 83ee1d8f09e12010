"""The logger interface and the group that fans metrics out to every backend.

A logger receives flat metric dicts with namespaced keys (``train/return_mean``,
``test/battle_won_mean``, ``learner/loss``, ``time/sps``) at an env step. Loggers
are built from ``conf/logger/*.yaml`` and never read global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """What a logger may need to know about the run it records."""

    run_dir: Path
    t_max: int
    config: dict[str, Any]
    t_env: int = 0
    """Env step the run starts (or resumes) at."""
    job_type: str = "train"
    """train | eval."""


class Logger:
    """Base class: every hook is optional."""

    def start(self, run: RunInfo) -> None:
        """Called once before the first metric."""

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        """Record metrics measured at env step ``t_env``."""

    def progress(self, t_env: int) -> None:
        """Called after every batch of episodes; for progress displays."""

    def close(self) -> None:
        """Flush and release resources; called in a ``finally``."""

    def state_dict(self) -> dict[str, Any]:
        """The logger's position, saved with checkpoints (e.g. bytes written)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a saved position: called before ``start`` when a run resumes in place."""


class LoggerGroup(Logger):
    """Forwards every call to each of its named loggers, in order."""

    def __init__(self, loggers: Mapping[str, Logger]) -> None:
        self.loggers = dict(loggers)

    def start(self, run: RunInfo) -> None:
        for logger in self.loggers.values():
            logger.start(run)

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        for logger in self.loggers.values():
            logger.log(metrics, t_env)

    def progress(self, t_env: int) -> None:
        for logger in self.loggers.values():
            logger.progress(t_env)

    def close(self) -> None:
        for logger in self.loggers.values():
            logger.close()

    def state_dict(self) -> dict[str, Any]:
        return {name: logger.state_dict() for name, logger in self.loggers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, logger in self.loggers.items():
            if name in state:
                logger.load_state_dict(state[name])
