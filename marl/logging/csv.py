"""``metrics.csv``: one row per log event and a column per metric, for spreadsheets and
pandas (EPyMARL and BenchMARL users' habit).

Metrics arrive in groups (training-episode stats, test stats, learner stats), each at its
own interval, so a row holds the metrics of one event and leaves the others blank. A
metric seen for the first time adds a column: the file is rewritten with the wider header
(rare: new names appear in the first few events). A run resumed in place keeps the rows
its checkpoint had written and drops the later ones, which it logs again: no duplicates.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from marl.logging.base import Logger, RunInfo

STEP = "t_env"


@dataclass
class CsvLoggerConfig:
    """Schema for the `csv` logger."""

    _target_: str = "marl.logging.csv.CsvLogger"
    filename: str = "metrics.csv"
    """File name inside the run folder."""
    exclude_prefixes: list[str] = field(default_factory=list)
    """Metric prefixes left out (e.g. ["time/"] for files identical across reruns)."""


class CsvLogger(Logger):
    """Writes ``t_env`` and one column per metric to the run's csv file."""

    def __init__(
        self,
        filename: str = CsvLoggerConfig.filename,
        exclude_prefixes: Sequence[str] = (),
    ) -> None:
        self.filename = filename
        self.exclude_prefixes = tuple(exclude_prefixes)
        self.path: Path | None = None
        self.columns: list[str] = [STEP]
        self.rows = 0
        self._file: IO[str] | None = None
        self._resume: dict[str, Any] | None = None

    def start(self, run: RunInfo) -> None:
        self.path = run.run_dir / self.filename
        exists = self.path.exists() and self.path.stat().st_size > 0
        if self._resume is None:
            if exists:
                raise FileExistsError(
                    f"{self.path} already holds metrics of a run with no checkpoint to "
                    "resume from; use resume=never (a new folder) or another hydra.run.dir."
                )
            self._rewrite([])
            return
        kept = self._read() if exists else []
        if len(kept) < self._resume["rows"]:
            raise FileExistsError(
                f"{self.path} has fewer rows ({len(kept)}) than its checkpoint recorded "
                f"({self._resume['rows']}); it was changed after the run stopped."
            )
        self.columns = list(self._resume["columns"])
        self._rewrite(kept[: self._resume["rows"]])  # the rows logged after it come again

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        if self._file is None:
            raise RuntimeError("CsvLogger.log called before start")
        kept = {k: v for k, v in metrics.items() if not k.startswith(self.exclude_prefixes)}
        if not kept:
            return
        new = sorted(k for k in kept if k not in self.columns)
        if new:
            self.columns += new
            self._rewrite(self._read())
        csv.DictWriter(self._file, self.columns).writerow({STEP: t_env, **kept})
        self._file.flush()
        self.rows += 1

    def state_dict(self) -> dict[str, Any]:
        """Rows written and the header; a resume in place keeps exactly these."""
        return {"rows": self.rows, "columns": list(self.columns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read(self) -> list[dict[str, str]]:
        """The data rows now in the file."""
        assert self.path is not None
        if self._file is not None:
            self._file.flush()
        with self.path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        """The file anew with the current header and ``rows``; left open for appending."""
        assert self.path is not None
        self.close()
        with self.path.open("w", newline="", encoding="utf-8") as f:
            # Rows read back from a wider file (columns added after a checkpoint) are blank
            # in those columns: ignoring them loses nothing.
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.rows = len(rows)
        self._file = self.path.open("a", newline="", encoding="utf-8")
