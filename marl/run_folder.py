"""A run folder held by one process at a time.

``marl-train`` takes an exclusive lock (``flock``) on ``<run dir>/.lock`` before it reads
or writes anything there and keeps it until the run ends, so a second ``marl-train`` in a
live run's folder stops with one sentence instead of resuming from the live run's
checkpoint and writing into its files. The operating system drops the lock when the
process ends in any way (SIGKILL, a node lost), so a requeued or restarted run takes the
folder back at once; nothing needs cleaning up by hand.

A folder this process made and left holding nothing of a run (only Hydra's log, its
``.hydra`` files and the lock, as after a setting was refused) is removed when the run
fails, so failed attempts leave no empty run folders behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

from marl.errors import UsageError

LOCK_FILE = ".lock"
HYDRA_FILES = ".hydra"
RUN_LOG_NAMES = frozenset({"train.log", "__main__.log"})
"""Hydra's job log of ``marl-train`` (module ``marl.train``) or ``python -m marl``."""


class RunFolderBusy(UsageError):
    """Another live process holds the run folder."""


class RunFolder:
    """The lock on one run folder; a context manager that releases it on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None

    def try_lock(self) -> bool:
        """Take the folder's lock (creating the folder); False when another process has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = (self.path / LOCK_FILE).open("a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}\n")
        f.flush()
        self._lock = f
        return True

    def holder(self) -> str:
        """Who holds the lock, as written in the lock file ("pid N on host")."""
        try:
            pid, _, host = (self.path / LOCK_FILE).read_text().strip().partition(" ")
        except OSError:
            return "another process"
        return f"pid {pid} on {host}" if pid else "another process"

    def lock(self) -> RunFolder:
        """Take the lock or raise ``RunFolderBusy`` naming the holder."""
        if not self.try_lock():
            raise RunFolderBusy(
                f"{self.path} is in use by another marl-train ({self.holder()}); wait for it "
                "to end, or add resume=never to start a new run in a folder beside it."
            )
        return self

    def unused(self) -> bool:
        """True when the folder holds nothing of a run: only a log, ``.hydra`` and the lock."""
        if not self.path.is_dir():
            return False
        ours = RUN_LOG_NAMES | {LOCK_FILE, HYDRA_FILES}
        return all(entry.name in ours for entry in self.path.iterdir())

    def release(self, remove_if_unused: bool = False) -> None:
        """Drop the lock; first remove the folder if asked and it holds nothing of a run."""
        if self._lock is None:
            return
        try:
            if remove_if_unused and self.unused():
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._lock.close()
            self._lock = None

    def remove_if_unused(self) -> None:
        """Remove the folder if no live run holds it and it holds nothing of a run."""
        if self.path.is_dir() and self.try_lock():
            self.release(remove_if_unused=True)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc_type is not None and not issubclass(exc_type, KeyboardInterrupt)
        self.release(remove_if_unused=failed)
