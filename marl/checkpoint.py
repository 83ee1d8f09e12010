"""Checkpoints: pick one by ``load_step``, save atomically, load without running code.

Layout: ``<run dir>/checkpoints/<t_env>/`` holding

- ``state.pt``: every stateful part of the run (tensors and plain containers,
  loaded with ``weights_only=True``, so no pickled code can run);
- ``buffer.pt``: the replay buffer, kept per ``checkpoint.save_buffer``;
- ``meta.json``: format version, package versions, algorithm, env info and the
  resolved config;
- ``COMPLETE``: written last. A step folder is written as a temporary sibling,
  fsynced, then renamed; one without ``COMPLETE`` is never selected.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import marl
from marl.errors import UsageError

FORMAT_VERSION = 1
STATE_FILE = "state.pt"
BUFFER_FILE = "buffer.pt"
META_FILE = "meta.json"
COMPLETE_MARKER = "COMPLETE"
SAVE_BUFFER_MODES = ("latest", "all", "never")

log = logging.getLogger("marl")


class CheckpointError(UsageError):
    """A checkpoint path or file the user gave cannot be used; the message says why."""


@dataclass
class CheckpointConfig:
    """Schema for `checkpoint.*`: what a checkpoint keeps and how many are kept."""

    save_buffer: str = "latest"
    """latest: only the newest checkpoint keeps the replay buffer | all | never."""
    keep_last: int = 0
    """Keep only the newest N checkpoints (0 keeps all)."""


def check_checkpoint_config(save_buffer: str, keep_last: int) -> None:
    if save_buffer not in SAVE_BUFFER_MODES:
        raise UsageError(
            f"checkpoint.save_buffer must be one of {', '.join(SAVE_BUFFER_MODES)}, "
            f"got {save_buffer!r}."
        )
    if keep_last < 0:
        raise UsageError(f"checkpoint.keep_last must be 0 (keep all) or more, got {keep_last}.")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: Path,
    t_env: int,
    state: dict[str, Any],
    meta: dict[str, Any],
    buffer: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/<t_env>/`` atomically: a temporary sibling, fsync, rename."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(t_env)
    if final.exists():
        raise CheckpointError(f"checkpoint {final} already exists; refusing to overwrite it.")
    tmp = root / f".tmp-{t_env}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files = [STATE_FILE, META_FILE, COMPLETE_MARKER]
    torch.save(state, tmp / STATE_FILE)
    if buffer is not None:
        torch.save(buffer, tmp / BUFFER_FILE)
        files.append(BUFFER_FILE)
    meta = {
        "format_version": FORMAT_VERSION,
        "marl_version": marl.__version__,
        "torch_version": torch.__version__,
        "t_env": t_env,
        "has_buffer": buffer is not None,
        **meta,
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    for name in files:
        if name == COMPLETE_MARKER:
            continue
        with (tmp / name).open("rb") as f:
            os.fsync(f.fileno())
    (tmp / COMPLETE_MARKER).write_text("")  # only once everything else is on disk
    with (tmp / COMPLETE_MARKER).open("rb") as f:
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


def list_steps(root: Path) -> tuple[list[int], list[int]]:
    """(complete, incomplete) checkpoint steps under ``root``, each sorted."""
    if not root.is_dir():
        return [], []
    steps = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and is_step_name(p.name))
    complete = [s for s in steps if (root / str(s) / COMPLETE_MARKER).is_file()]
    return complete, [s for s in steps if s not in complete]


def select_checkpoint(path: str | Path, load_step: int = 0) -> Path:
    """The step folder for ``load_step``: 0 = largest, else nearest (ties to the smaller)."""
    root = checkpoints_root(path)
    complete, incomplete = list_steps(root)
    if not complete and not incomplete:
        raise CheckpointError(f"{root} holds no checkpoint step folders (numeric names).")
    if not complete:
        raise CheckpointError(
            f"{root} holds only incomplete checkpoints (steps {incomplete}); none can be loaded."
        )
    if incomplete:
        log.warning("ignoring incomplete checkpoints in %s: steps %s", root, incomplete)
    if load_step == 0:
        return root / str(complete[-1])
    best = min(complete, key=lambda s: (abs(s - load_step), s))
    return root / str(best)


def load_checkpoint(step_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a step folder; refuses pickled code and unknown formats."""
    try:
        meta = json.loads((step_dir / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{step_dir / META_FILE} cannot be read: {err}") from err
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{step_dir} has checkpoint format {version!r}; "
            f"this marl reads format {FORMAT_VERSION}."
        )
    return safe_load(step_dir / STATE_FILE), meta


def load_buffer(step_dir: Path) -> dict[str, Any] | None:
    """The replay buffer saved with a checkpoint, or None when it was not kept."""
    path = step_dir / BUFFER_FILE
    return safe_load(path) if path.is_file() else None


def safe_load(path: Path) -> Any:
    """``torch.load`` that accepts only tensors and plain containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, OSError...
        text = str(err).strip()
        first_line = text.splitlines()[0] if text else type(err).__name__
        raise CheckpointError(
            f"{path} cannot be loaded safely (only tensors and plain data are accepted): "
            f"{first_line}"
        ) from err


def prune_checkpoints(root: Path, latest: int, save_buffer: str, keep_last: int) -> None:
    """Once ``latest`` is complete: drop older buffers (``latest``), old steps, temp folders."""
    complete, _ = list_steps(root)
    older = [s for s in complete if s < latest]
    if save_buffer == "latest":
        for step in older:
            (root / str(step) / BUFFER_FILE).unlink(missing_ok=True)
    if keep_last > 0:
        keep = set(complete[-keep_last:]) | {latest}
        for step in older:
            if step not in keep:
                shutil.rmtree(root / str(step), ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def shape_mismatches(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose tensor shapes differ, or that exist on one side only, in two state dicts."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += shape_mismatches(a, b, prefix=f"{name}.")
        elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            shape_a = tuple(a.shape) if isinstance(a, torch.Tensor) else None
            shape_b = tuple(b.shape) if isinstance(b, torch.Tensor) else None
            if shape_a != shape_b:
                out.append(f"{name} (saved {shape_a}, now {shape_b})")
    return out
