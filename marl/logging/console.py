"""The console: a live progress bar on a terminal, plain periodic lines otherwise.

On a terminal the progress line is a tqdm bar, trimmed to the terminal's width
so that a redraw never wraps and leaves no old lines behind. While the bar is
live, Python logging's console handlers write through tqdm
(``logging_redirect_tqdm``), as do this logger's metric lines: each is printed
above the bar, which redraws below it. Off a terminal (a file, a pipe, a SLURM
log) the progress is a plain line every ``print_interval_s``.

In a Hydra multirun every line of a job starts with its label, e.g.
``[#2 seed=3]`` (the job number and seed): jobs of a ``local_parallel`` sweep
share one terminal, where live bars would overwrite one another, so sweep jobs
print plain lines even there. Logging lines get the same label from
``conf/hydra/job_logging/marl.yaml``, which builds a ``JobFormatter``.

Steps/s and ETA (the rule, in ``SteadyRate``): the first ``eta_window_s``
seconds of a run, or of its resumption, are ignored, because steps come far
faster then than later (the replay buffer fills before the learner's first
update); afterwards both come from the last ``eta_window_s`` seconds. The ETA
reads ``?`` until half such a window has been measured (1.5 windows after the
start); until then steps/s is the average since the start.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections import deque
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from marl.logging.base import Logger, RunInfo
from marl.validation import bounds

log = logging.getLogger("marl")


@dataclass
class ConsoleLoggerConfig:
    """Schema for the `console` logger."""

    _target_: str = "marl.logging.console.ConsoleLogger"
    refresh_s: float = field(default=0.5, metadata=bounds(0, note="0: every runner batch"))
    """Seconds between redraws of the progress bar on a terminal (0: every runner batch)."""
    print_interval_s: float = field(default=30.0, metadata=bounds(0, note="0: every runner batch"))
    """Seconds between plain progress lines when stdout is not a terminal (or in a sweep);
    0: every runner batch."""
    eta_window_s: float = field(default=20.0, metadata=bounds(0, low_open=True))
    """Steps/s and ETA ignore the first this many seconds, then use the last this many."""


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


def job_label(job_num: int | None, seed: Any = None) -> str:
    """``[#2 seed=3]`` for job 2 of a multirun; ``""`` for a single run (``job_num`` None)."""
    if job_num is None:
        return ""
    return f"[#{job_num} seed={seed}]" if seed is not None else f"[#{job_num}]"


def sweep_job_num() -> int | None:
    """This job's number in a Hydra multirun; None in a single run or outside Hydra."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return int(hydra_cfg.job.num) if hydra_cfg.mode == RunMode.MULTIRUN else None


class JobFormatter(logging.Formatter):
    """A logging formatter that starts every line of a sweep job's records with its label.

    ``conf/hydra/job_logging/marl.yaml`` builds it for the console handler with
    the job number (null outside a multirun) and the seed.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        job_num: int | None = None,
        seed: Any = None,
    ) -> None:
        super().__init__(fmt, datefmt)
        self.label = job_label(job_num, seed)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.label:
            return text
        return "\n".join(f"{self.label} {line}" for line in text.splitlines())


class SteadyRate:
    """Steps per second of steady progress: none from the first ``window_s`` seconds.

    A run's first steps come far faster than the rest (the replay buffer fills
    before the learner's first update), so a rate that counted them would
    promise an ETA several times too early. Progress before ``start + window_s``
    is ignored; after it, the rate is over the last ``window_s`` seconds, and
    None until half a window has been measured.
    """

    def __init__(self, window_s: float, start: float) -> None:
        self.window_s = window_s
        self.warmup_end = start + window_s
        self.samples: deque[tuple[float, int]] = deque()
        """(time, t_env) pairs; the first is the newest at least ``window_s`` old."""

    def add(self, now: float, t_env: int) -> None:
        if now < self.warmup_end:
            return
        self.samples.append((now, t_env))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()

    def steps_per_s(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 - t0 < self.window_s / 2 or t1 <= t0:
            return None
        return (n1 - n0) / (t1 - t0)


class ProgressBar(tqdm):
    """tqdm without its monitor thread: ``ConsoleLogger`` decides when to redraw."""

    monitor_interval = 0


BAR_FORMAT = "|{bar:10}| {desc}"
"""The bar, then ``ConsoleLogger.status`` (tqdm's own rate and ETA would count the warm-up)."""


def terminal_size() -> tuple[int, int]:
    """(columns - 1, lines) for tqdm's ``ncols`` and ``nrows``.

    ``COLUMNS``/``LINES`` win, and a size the terminal does not know (0x0, as in
    some pseudo terminals) reads 80x24: left to itself, tqdm hides a bar on a
    terminal of 0 lines.
    """
    columns, lines = shutil.get_terminal_size()
    return columns - 1, lines


class ConsoleLogger(Logger):
    """Shows steps, steps/s, ETA and the last test return; prints each log event."""

    def __init__(
        self,
        refresh_s: float = ConsoleLoggerConfig.refresh_s,
        print_interval_s: float = ConsoleLoggerConfig.print_interval_s,
        eta_window_s: float = ConsoleLoggerConfig.eta_window_s,
        stream: TextIO | None = None,
    ) -> None:
        self.refresh_s = refresh_s
        self.print_interval_s = print_interval_s
        self.eta_window_s = eta_window_s
        self.stream = stream if stream is not None else sys.stdout
        self.t_max = 0
        self.last_test: dict[str, float] = {}
        self.label = ""
        """``[#2 seed=3]`` in a multirun job, else empty: the start of every line."""
        self._start_time = 0.0
        self._start_t_env = 0
        self._t_env = 0
        self._last_draw = 0.0
        self._rate = SteadyRate(eta_window_s, 0.0)
        self._bar: ProgressBar | None = None
        self._redirect = ExitStack()

    @property
    def interactive(self) -> bool:
        """A live bar: on a terminal, except in a sweep (parallel jobs share the terminal)."""
        return self.stream.isatty() and not self.label

    def start(self, run: RunInfo) -> None:
        self.close()
        self.t_max = run.t_max
        self._start_t_env = self._t_env = run.t_env
        self._start_time = self._last_draw = time.monotonic()
        self._rate = SteadyRate(self.eta_window_s, self._start_time)
        self.label = job_label(sweep_job_num(), run.config.get("seed"))
        log.info("run folder: %s", run.run_dir)

    def _open_bar(self) -> None:
        """Draw the bar and route console logging through tqdm until ``close``.

        At the first ``progress``, not at ``start``: an evaluation has no progress to show.
        """
        ncols, nrows = terminal_size()
        self._bar = ProgressBar(
            total=max(self.t_max, 1),
            initial=self._t_env,
            desc=self.status(self._t_env),
            bar_format=BAR_FORMAT,
            ncols=ncols,
            nrows=nrows,
            file=self.stream,
            leave=True,
        )
        self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=ProgressBar))

    def status(self, t_env: int) -> str:
        elapsed = time.monotonic() - self._start_time
        steady = self._rate.steps_per_s()
        average = (t_env - self._start_t_env) / elapsed if elapsed > 0 else 0.0
        sps = average if steady is None else steady
        eta = format_duration((self.t_max - t_env) / steady) if steady else "?"
        parts = [
            f"t_env {t_env:,}/{self.t_max:,} ({100 * t_env / max(self.t_max, 1):.0f}%)",
            f"{sps:,.0f} steps/s",
            f"ETA {eta}",
        ]
        if "test/return_mean" in self.last_test:
            parts.append(f"test return {self.last_test['test/return_mean']:.3f}")
        if "test/battle_won_mean" in self.last_test:
            parts.append(f"win {100 * self.last_test['test/battle_won_mean']:.0f}%")
        # Last: what a narrow terminal cuts first.
        parts.append(f"elapsed {format_duration(elapsed)}")
        return " | ".join(parts)

    def progress(self, t_env: int) -> None:
        now = time.monotonic()
        self._t_env = t_env
        self._rate.add(now, t_env)
        if self._bar is None and self.interactive:
            self._open_bar()
            self._last_draw = now
        elif self._bar is not None:
            if now - self._last_draw >= self.refresh_s:
                self._update_bar()
                self._bar.refresh()
                self._last_draw = now
        elif now - self._last_draw >= self.print_interval_s:
            self._print(self.status(t_env))
            self._last_draw = now

    def _update_bar(self) -> None:
        """Give the bar the latest t_env and status, and the terminal's current size."""
        assert self._bar is not None
        self._bar.n = self._t_env
        self._bar.ncols, self._bar.nrows = terminal_size()
        self._bar.set_description_str(self.status(self._t_env), refresh=False)

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
        if tests:
            self.last_test = tests
        self._print(f"[t_env {t_env:,}] {format_metrics(metrics)}")

    def _print(self, text: str) -> None:
        """One line, labelled in a sweep; above the live bar, which redraws below it."""
        line = f"{self.label} {text}" if self.label else text
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Leave the final bar on screen and give logging its own handlers back."""
        if self._bar is not None:
            self._update_bar()
            self._bar.close()  # leave=True: draws it a last time and ends its line
            self._bar = None
        self._redirect.close()
        self.stream.flush()
