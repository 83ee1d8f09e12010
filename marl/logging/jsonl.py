"""``metrics.jsonl``: one JSON object per log event, so results survive without W&B."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from marl.logging.base import Logger, RunInfo


@dataclass
class JsonlLoggerConfig:
    """Schema for the `jsonl` logger."""

    _target_: str = "marl.logging.jsonl.JsonlLogger"
    filename: str = "metrics.jsonl"
    """File name inside the run folder."""
    exclude_prefixes: list[str] = field(default_factory=lambda: ["time/"])
    """Metric prefixes left out; wall-clock metrics would make identical runs differ."""


class JsonlLogger(Logger):
    """Appends ``{"t_env": ..., <metric>: <value>, ...}`` lines to the run's file."""

    def __init__(
        self,
        filename: str = JsonlLoggerConfig.filename,
        exclude_prefixes: Sequence[str] = ("time/",),
    ) -> None:
        self.filename = filename
        self.exclude_prefixes = tuple(exclude_prefixes)
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._resume_offset: int | None = None

    def start(self, run: RunInfo) -> None:
        self.path = run.run_dir / self.filename
        size = self.path.stat().st_size if self.path.exists() else 0
        if self._resume_offset is None and size > 0:
            raise FileExistsError(
                f"{self.path} already holds metrics of a run with no checkpoint to resume "
                "from; use resume=never (a new folder) or another hydra.run.dir."
            )
        if self._resume_offset is not None:
            if size < self._resume_offset:
                raise FileExistsError(
                    f"{self.path} is shorter ({size} bytes) than its checkpoint recorded "
                    f"({self._resume_offset}); it was changed after the run stopped."
                )
            # Lines written after the checkpoint will be written again: cut them.
            with self.path.open("r+b") as f:
                f.truncate(self._resume_offset)
        self._file = self.path.open("a", encoding="utf-8")

    def state_dict(self) -> dict[str, int]:
        """Bytes written so far; a resume in place cuts the file back to it."""
        if self._file is None:
            return {"offset": 0}
        self._file.flush()
        return {"offset": self._file.tell()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_offset = int(state["offset"])

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        if self._file is None:
            raise RuntimeError("JsonlLogger.log called before start")
        kept = {k: v for k, v in metrics.items() if not k.startswith(self.exclude_prefixes)}
        if kept:
            self._file.write(json.dumps({"t_env": t_env, **kept}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
