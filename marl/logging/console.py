"""The console: a live progress line on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from marl.logging.base import Logger, RunInfo

log = logging.getLogger("marl")


@dataclass
class ConsoleLoggerConfig:
    """Schema for the `console` logger."""

    _target_: str = "marl.logging.console.ConsoleLogger"
    refresh_s: float = 0.5
    """Seconds between redraws of the progress line on a terminal."""
    print_interval_s: float = 30.0
    """Seconds between plain progress lines when stdout is not a terminal."""


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def format_value(value: float) -> str:
    """Whole numbers with thousands separators, others to 4 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def format_metrics(metrics: Mapping[str, float]) -> str:
    """``train/return_mean`` ... -> ``train: return_mean 1.5 ep_length_mean 2 | time: ...``."""
    groups: dict[str, list[str]] = {}
    for key in sorted(metrics):
        namespace, _, name = key.rpartition("/")
        groups.setdefault(namespace, []).append(f"{name} {format_value(metrics[key])}")
    return " | ".join(
        f"{ns}: {' '.join(items)}" if ns else " ".join(items) for ns, items in groups.items()
    )


class ConsoleLogger(Logger):
    """Shows steps, steps/s, ETA and the last test return; prints each log event."""

    def __init__(
        self, refresh_s: float = 0.5, print_interval_s: float = 30.0, stream: TextIO | None = None
    ) -> None:
        self.refresh_s = refresh_s
        self.print_interval_s = print_interval_s
        self.stream = stream if stream is not None else sys.stdout
        self.t_max = 0
        self.last_test: dict[str, float] = {}
        self._start_time = 0.0
        self._start_t_env = 0
        self._last_draw = 0.0
        self._line_open = False

    @property
    def interactive(self) -> bool:
        return self.stream.isatty()

    def start(self, run: RunInfo) -> None:
        self.t_max = run.t_max
        self._start_t_env = run.t_env
        self._start_time = self._last_draw = time.monotonic()
        log.info("run folder: %s", run.run_dir)

    def status(self, t_env: int) -> str:
        elapsed = time.monotonic() - self._start_time
        sps = (t_env - self._start_t_env) / elapsed if elapsed > 0 else 0.0
        eta = (self.t_max - t_env) / sps if sps > 0 else float("inf")
        parts = [
            f"t_env {t_env:,}/{self.t_max:,} ({100 * t_env / max(self.t_max, 1):.0f}%)",
            f"{sps:,.0f} steps/s",
            f"elapsed {format_duration(elapsed)}",
            f"ETA {format_duration(eta) if eta != float('inf') else '?'}",
        ]
        if "test/return_mean" in self.last_test:
            parts.append(f"test return {self.last_test['test/return_mean']:.3f}")
        if "test/battle_won_mean" in self.last_test:
            parts.append(f"win {100 * self.last_test['test/battle_won_mean']:.0f}%")
        return " | ".join(parts)

    def progress(self, t_env: int) -> None:
        now = time.monotonic()
        if self.interactive:
            if now - self._last_draw >= self.refresh_s:
                self.stream.write("\r\033[K" + self.status(t_env))
                self.stream.flush()
                self._line_open = True
                self._last_draw = now
        elif now - self._last_draw >= self.print_interval_s:
            self.stream.write(self.status(t_env) + "\n")
            self.stream.flush()
            self._last_draw = now

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
        if tests:
            self.last_test = tests
        self._end_line()
        self.stream.write(f"[t_env {t_env:,}] {format_metrics(metrics)}\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False

    def close(self) -> None:
        self._end_line()
        self.stream.flush()
