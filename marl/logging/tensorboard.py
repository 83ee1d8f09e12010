"""TensorBoard event files in the run folder (``<run folder>/tensorboard/``), with
torch's ``SummaryWriter``: every metric a scalar plotted against ``t_env``.

    marl-train logger=[console,jsonl,tensorboard]
    tensorboard --logdir outputs

A run resumed from a checkpoint logs again the env steps after it. The writer of a
resumed run starts with ``purge_step`` just past the checkpoint's ``t_env``: TensorBoard
hides the first attempt's events after that step, so each curve reads as one run. The
writer flushes at every checkpoint, so what a checkpoint counts is on disk.

Needs the ``tensorboard`` package (``pip install 'marl[tensorboard]'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marl.errors import UsageError
from marl.logging.base import Logger, RunInfo

INSTALL_HINT = "pip install 'marl[tensorboard]'"


@dataclass
class TensorBoardLoggerConfig:
    """Schema for the `tensorboard` logger."""

    _target_: str = "marl.logging.tensorboard.TensorBoardLogger"
    folder: str = "tensorboard"
    """Folder of the event files inside the run folder (`tensorboard --logdir` it)."""
    exclude_prefixes: list[str] = field(default_factory=list)
    """Metric prefixes left out (e.g. ["time/"])."""


class TensorBoardLogger(Logger):
    """Adds every metric as a scalar at global step ``t_env``."""

    def __init__(
        self,
        folder: str = TensorBoardLoggerConfig.folder,
        exclude_prefixes: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.exclude_prefixes = tuple(exclude_prefixes)
        self.writer: Any = None
        self.purge_after: bool | None = None
        """None: a new run; True: resumed from a checkpoint; False: started over."""

    def start(self, run: RunInfo) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch's writer imports the tensorboard package
            raise UsageError(f"logger tensorboard needs TensorBoard: {INSTALL_HINT}.") from err
        # TensorBoard hides earlier events at steps >= purge: after the checkpoint's
        # step when resuming from it, all of them when the run started over in place.
        purge = None if self.purge_after is None else run.t_env + 1 if self.purge_after else 0
        self.writer = SummaryWriter(str(run.run_dir / self.folder), purge_step=purge)

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        if self.writer is None:
            raise RuntimeError("TensorBoardLogger.log called before start")
        for key, value in metrics.items():
            if not key.startswith(self.exclude_prefixes):
                self.writer.add_scalar(key, value, global_step=t_env)

    def state_dict(self) -> dict[str, Any]:
        """Whether events were written (a resume hides those after its checkpoint's step,
        a start over all); flushes what the checkpoint counts to disk."""
        if self.writer is None:
            return {"started": False}
        self.writer.flush()
        return {"started": True}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.purge_after = bool(state.get("started"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
