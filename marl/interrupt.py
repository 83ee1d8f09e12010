"""Stopping a run on a signal without losing its work.

Ctrl-C (SIGINT), ``kill`` (SIGTERM) and the signals SLURM and submitit send before a
time limit or a preemption (SIGUSR1, SIGUSR2) do not stop a training run mid-step: they
ask it to stop at the end of the current iteration, where the loop saves a checkpoint
(with ``save_model=true``) exactly like a periodic one, then exits with one line. A
second Ctrl-C (a second or more later) stops at once.

A handler that was there before (submitit's save-and-requeue on SIGUSR2, for one) is
called after the checkpoint is on disk, so a requeued SLURM job resumes from it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)

FORCE_AFTER_S = 1.0
"""A Ctrl-C this long after the first stops at once; sooner, it is the same keypress
delivered twice (by a wrapper such as ``timeout`` or ``srun`` forwarding it)."""


class Interrupted(Exception):
    """Training stopped on a signal at the end of an iteration (after its checkpoint)."""

    def __init__(
        self,
        signum: int,
        t_env: int,
        t_max: int,
        checkpoint: Any | None,
        forward: Callable[[int, FrameType | None], Any] | None = None,
    ) -> None:
        self.signum = signum
        self.forward = forward
        """The handler that was installed before ours (submitit's requeue), to call last."""
        self.t_env = t_env
        self.t_max = t_max
        self.checkpoint = checkpoint
        saved = (
            f"saved checkpoint {checkpoint}; rerunning the same command (or a requeue) "
            "resumes from it"
            if checkpoint is not None
            else "nothing was saved (save_model=false)"
        )
        super().__init__(
            f"stopped by {signal_name(signum)} at t_env {t_env:,} of {t_max:,}: {saved}."
        )

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """A context in which the stop signals only record that a stop was asked for.

    ``received`` is the first signal caught (None: none). Outside the main thread, where
    Python cannot install handlers, it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._received_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue  # someone chose to ignore it (nohup, a worker): keep that
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._received_at = signum, now
        elif signum == signal.SIGINT and now - self._received_at > FORCE_AFTER_S:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now

    def previous_handler(self, signum: int) -> Callable[[int, FrameType | None], Any] | None:
        """The Python handler that was installed before for ``signum`` (e.g. submitit's
        requeue), or None where it was the default action."""
        previous = self._previous.get(signum)
        if callable(previous) and previous is not signal.default_int_handler:
            return previous  # type: ignore[no-any-return]
        return None
