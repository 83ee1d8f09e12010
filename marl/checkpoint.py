"""Checkpoints: pick one by ``load_step``, save atomically, load without running code.

Layout: ``<run dir>/checkpoints/<t_env>/`` holding ``state.pt`` (tensors and
plain containers, loaded with ``weights_only=True``), ``meta.json`` (config,
env info, algorithm, versions) and ``COMPLETE``, written last. A step folder
without ``COMPLETE`` is never selected.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

import marl
from marl.errors import UsageError

FORMAT_VERSION = 1
STATE_FILE = "state.pt"
META_FILE = "meta.json"
COMPLETE_MARKER = "COMPLETE"


class CheckpointError(UsageError):
    """A checkpoint path or file the user gave cannot be used; the message says why."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: Path, t_env: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``root/<t_env>/`` atomically: a temporary sibling, fsync, rename."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(t_env)
    if final.exists():
        raise CheckpointError(f"checkpoint {final} already exists; refusing to overwrite it.")
    tmp = root / f".tmp-{t_env}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(state, tmp / STATE_FILE)
    meta = {
        "format_version": FORMAT_VERSION,
        "marl_version": marl.__version__,
        "t_env": t_env,
        **meta,
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    (tmp / COMPLETE_MARKER).write_text("")
    for name in (STATE_FILE, META_FILE, COMPLETE_MARKER):
        with (tmp / name).open("rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    tmp.rename(final)
    _fsync_dir(root)
    return final


def is_step_name(name: str) -> bool:
    """Step folders are named by ASCII digits only."""
    return name.isascii() and name.isdigit()


def checkpoints_root(path: str | Path) -> Path:
    """Accept a run folder or its ``checkpoints/`` folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint_path {path} does not exist.")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint_path {path} is not a folder.")
    if (path / "checkpoints").is_dir():
        return path / "checkpoints"
    return path


def select_checkpoint(path: str | Path, load_step: int = 0) -> Path:
    """The step folder for ``load_step``: 0 = largest, else nearest (ties to the smaller)."""
    root = checkpoints_root(path)
    steps = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and is_step_name(p.name))
    if not steps:
        raise CheckpointError(f"{root} holds no checkpoint step folders (numeric names).")
    complete = [s for s in steps if (root / str(s) / COMPLETE_MARKER).is_file()]
    if not complete:
        raise CheckpointError(
            f"{root} holds only incomplete checkpoints (steps {steps}); none can be loaded."
        )
    if load_step == 0:
        return root / str(complete[-1])
    best = min(complete, key=lambda s: (abs(s - load_step), s))
    return root / str(best)


def load_checkpoint(step_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a step folder; refuses pickled code and unknown formats."""
    meta = json.loads((step_dir / META_FILE).read_text())
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{step_dir} has checkpoint format {version!r}; "
            f"this marl reads format {FORMAT_VERSION}."
        )
    try:
        state = torch.load(step_dir / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError
        raise CheckpointError(
            f"{step_dir / STATE_FILE} cannot be loaded safely (weights_only): {err}"
        ) from err
    return state, meta
