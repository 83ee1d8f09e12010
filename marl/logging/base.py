"""The logger interface and the group that fans metrics out to every backend.

A logger receives flat metric dicts with namespaced keys (``train/return_mean``,
``test/battle_won_mean``, ``learner/loss``, ``time/sps``) at an env step. Loggers
are built from ``conf/logger/*.yaml`` and never read global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """What a logger may need to know about the run it records."""

    run_dir: Path
    t_max: int
    config: dict[str, Any]


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


class LoggerGroup(Logger):
    """Forwards every call to each of its loggers, in order."""

    def __init__(self, loggers: Sequence[Logger]) -> None:
        self.loggers = list(loggers)

    def start(self, run: RunInfo) -> None:
        for logger in self.loggers:
            logger.start(run)

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        for logger in self.loggers:
            logger.log(metrics, t_env)

    def progress(self, t_env: int) -> None:
        for logger in self.loggers:
            logger.progress(t_env)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
