"""Checkpoints: pick one by ``load_step``, save atomically, verify, load without running code.

Layout: ``<run dir>/checkpoints/<t_env>/`` holding

- ``state.pt``: every stateful part of the run (tensors and plain containers,
  loaded with ``weights_only=True``, so no pickled code can run);
- ``buffer.pt``: the replay buffer, kept per ``checkpoint.save_buffer``;
- ``meta.json``: format version, package versions, algorithm, env info, the
  resolved config and, under ``files``, the size and sha256 of each ``.pt`` file;
- ``COMPLETE``: written last. A step folder is written as a temporary sibling,
  fsynced, then renamed; one without ``COMPLETE`` is never selected.

A valid pickle with the wrong numbers loads without error, so each file is checked
against its recorded sha256 before it is loaded: once per step by ``verify_step``
(which ``select_checkpoint`` and ``newest_good_step`` call), or per file by
``load_checkpoint`` and ``load_buffer`` unless told the step was just verified.
``files`` was added without a format change: older marl ignores it, and checkpoints
saved before it load unchecked (loading still catches a truncated file).

A damaged step folder found on resume is renamed ``damaged-<step>`` (``move_aside``):
kept for inspection, no longer a step name, so selection and pruning ignore it and
the run can save that step again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import marl
from marl.errors import UsageError
from marl.validation import bounds, choices

FORMAT_VERSION = 1
STATE_FILE = "state.pt"
BUFFER_FILE = "buffer.pt"
META_FILE = "meta.json"
COMPLETE_MARKER = "COMPLETE"
DAMAGED_PREFIX = "damaged-"
SAVE_BUFFER_MODES = ("latest", "all", "never")

log = logging.getLogger("marl")


class CheckpointError(UsageError):
    """A checkpoint path or file the user gave cannot be used; the message says why."""


@dataclass
class CheckpointConfig:
    """Schema for `checkpoint.*`: what a checkpoint keeps and how many are kept."""

    save_buffer: str = field(default="latest", metadata=choices(*SAVE_BUFFER_MODES))
    """latest: only the newest checkpoint keeps the replay buffer | all | never."""
    keep_last: int = field(default=0, metadata=bounds(0, note="0 keeps all"))
    """Keep only the newest N checkpoints (0 keeps all)."""


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
    data_files = [STATE_FILE]
    torch.save(state, tmp / STATE_FILE)
    if buffer is not None:
        torch.save(buffer, tmp / BUFFER_FILE)
        data_files.append(BUFFER_FILE)
    meta = {
        "format_version": FORMAT_VERSION,
        "marl_version": marl.__version__,
        "torch_version": torch.__version__,
        "t_env": t_env,
        "has_buffer": buffer is not None,
        **meta,
        "files": {name: file_record(tmp / name) for name in data_files},
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    for name in [*data_files, META_FILE]:
        with (tmp / name).open("rb") as f:
            os.fsync(f.fileno())
    (tmp / COMPLETE_MARKER).write_text("")  # only once everything else is on disk
    with (tmp / COMPLETE_MARKER).open("rb") as f:
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    tmp.rename(final)
    _fsync_dir(root)
    return final


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks: a replay buffer can be gigabytes."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What ``meta.json`` records of a saved file, to recognise it on load."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def is_step_name(name: str) -> bool:
    """Step folders are named by ASCII digits only."""
    return name.isascii() and name.isdigit()


def is_step_folder(path: Path) -> bool:
    """A folder holding a checkpoint's own files, judged by content, not name: Hydra's
    sweep jobs are run folders named 0, 1, ... (a run folder holds ``checkpoints/``)."""
    if not path.is_dir() or (path / "checkpoints").is_dir():
        return False
    return any((path / name).exists() for name in (STATE_FILE, META_FILE, COMPLETE_MARKER))


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


# ---------------------------------------------------------------------- select


def select_checkpoint(path: str | Path, load_step: int = 0) -> Path:
    """The step folder for ``load_step`` (0 = largest, else nearest, ties to the smaller).

    ``path`` is a run folder, its ``checkpoints/`` folder or one step folder. The
    chosen step is verified here (``verify_step``), so loading it needs no second
    check; a damaged one raises, naming the steps that verify instead.
    """
    folder = Path(path).expanduser()
    if is_step_folder(folder):
        root, step_dir = folder.parent, _given_step(folder, load_step)
    else:
        root = checkpoints_root(folder)
        step_dir = root / str(_nearest_step(root, load_step))
    try:
        verify_step(step_dir)
    except CheckpointError as err:
        raise CheckpointError(
            f"{str(err).rstrip('.')}; {_good_steps_hint(root, step_dir)}"
        ) from err
    return step_dir


def _nearest_step(root: Path, load_step: int) -> int:
    """The complete step for ``load_step`` under ``root``; incomplete ones are skipped."""
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
        return complete[-1]
    return min(complete, key=lambda s: (abs(s - load_step), s))


def _given_step(step_dir: Path, load_step: int) -> Path:
    """A step folder given as ``checkpoint_path`` is that step: another ``load_step`` is an
    error rather than a silent choice between the two."""
    if load_step and not (is_step_name(step_dir.name) and int(step_dir.name) == load_step):
        raise CheckpointError(
            f"checkpoint_path {step_dir} is the checkpoint of step {step_dir.name} but "
            f"load_step={load_step} asks for another; drop load_step, or give "
            f"checkpoint_path={step_dir.parent} to choose by load_step."
        )
    return step_dir


def _good_steps_hint(root: Path, bad: Path) -> str:
    """What to load instead of ``bad``: the other steps under ``root`` that verify."""
    complete, _ = list_steps(root)
    good = [str(s) for s in complete if root / str(s) != bad and _verifies(root / str(s))]
    if not good:
        return f"no other checkpoint in {root} verifies."
    return (
        f"load a good one instead with checkpoint_path={root} load_step=<step> "
        f"(good steps: {', '.join(good)})."
    )


def _verifies(step_dir: Path) -> bool:
    try:
        verify_step(step_dir)
    except CheckpointError:
        return False
    return True


# ---------------------------------------------------------------------- resume fallback


def newest_good_step(root: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(newest step folder under ``root`` that verifies, [(newer bad step, why)...]).

    For resuming a run in place: each bad step (damaged, or incomplete) newer than the
    good one is returned with the reason, for the caller to warn about and ``move_aside``
    (else the run could not save that step again). Older steps are not checked. The
    good step is verified, so loading it needs no second check. (None, bad) when no
    step verifies, including when there is none.
    """
    complete, incomplete = list_steps(root)
    bad: list[tuple[Path, str]] = []
    for step in sorted(complete + incomplete, reverse=True):
        step_dir = root / str(step)
        try:
            verify_step(step_dir)
        except CheckpointError as err:
            bad.append((step_dir, str(err)))
            continue
        return step_dir, bad
    return None, bad


def move_aside(step_dir: Path) -> Path:
    """Rename a bad step folder to ``damaged-<step>`` (``damaged-<step>-2``... when taken),
    keeping every file; it is no longer a step name, so selection and pruning ignore it."""
    target = step_dir.with_name(f"{DAMAGED_PREFIX}{step_dir.name}")
    k = 2
    while target.exists():
        target = step_dir.with_name(f"{DAMAGED_PREFIX}{step_dir.name}-{k}")
        k += 1
    step_dir.rename(target)
    _fsync_dir(step_dir.parent)
    return target


# ---------------------------------------------------------------------- verify and load


def verify_step(step_dir: Path) -> None:
    """Raise CheckpointError, naming the file and what is wrong, unless ``step_dir`` can be
    loaded: ``COMPLETE`` present, ``meta.json`` readable and of a known format, ``state.pt``
    present, and each ``.pt`` file matching its recorded size and sha256.

    An absent ``buffer.pt`` is fine: ``save_buffer=latest`` removes older ones, and
    ``load_buffer`` then returns None.
    """
    if not (step_dir / COMPLETE_MARKER).is_file():
        raise CheckpointError(
            f"checkpoint {step_dir} is incomplete: it has no {COMPLETE_MARKER} marker, "
            "so its saving never finished."
        )
    meta = read_meta(step_dir)
    verify_file(step_dir, STATE_FILE, meta)
    if (step_dir / BUFFER_FILE).is_file():
        verify_file(step_dir, BUFFER_FILE, meta)


def read_meta(step_dir: Path) -> dict[str, Any]:
    """``meta.json`` of a step folder, refused when missing, garbled or of another format."""
    path = step_dir / META_FILE
    _require_file(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bad UTF-8
        raise CheckpointError(f"checkpoint file {path} is damaged: {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint file {path} is damaged: it holds no JSON object.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{step_dir} has checkpoint format {version!r}; "
            f"this marl reads format {FORMAT_VERSION}."
        )
    return meta


def verify_file(step_dir: Path, name: str, meta: dict[str, Any]) -> None:
    """Check one file against the size and sha256 ``meta`` recorded when it was saved.

    A checkpoint saved before marl recorded them (no ``files`` in meta.json) passes.
    """
    path = step_dir / name
    _require_file(path)
    records = meta.get("files")
    if records is None:
        return
    try:
        saved_bytes, saved_sha256 = records[name]["bytes"], records[name]["sha256"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint file {step_dir / META_FILE} is damaged: it records no sha256 for {name}."
        ) from err
    size = path.stat().st_size
    if size != saved_bytes:
        raise CheckpointError(
            f"checkpoint file {path} is damaged or truncated: it holds {size} bytes, "
            f"{saved_bytes} were saved."
        )
    if file_sha256(path) != saved_sha256:
        raise CheckpointError(
            f"checkpoint file {path} is damaged: its content does not match the sha256 "
            "recorded when it was saved."
        )


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing.")


def load_checkpoint(
    step_dir: Path, *, verify: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a step folder; refuses damaged files, pickled code, unknown formats.

    ``verify=False`` skips the sha256 of ``state.pt``, for a step that ``verify_step``
    (through ``select_checkpoint`` or ``newest_good_step``) has just checked.
    """
    meta = read_meta(step_dir)
    if verify:
        verify_file(step_dir, STATE_FILE, meta)
    return safe_load(step_dir / STATE_FILE), meta


def load_buffer(step_dir: Path, *, verify: bool = True) -> dict[str, Any] | None:
    """The replay buffer saved with a checkpoint, or None when it was not kept.

    ``verify`` as for ``load_checkpoint``: False when ``verify_step`` has checked the step.
    """
    path = step_dir / BUFFER_FILE
    if not path.is_file():
        return None
    if verify:
        verify_file(step_dir, BUFFER_FILE, read_meta(step_dir))
    return safe_load(path)


def safe_load(path: Path) -> Any:
    """``torch.load`` that accepts only tensors and plain containers; says which of
    missing, damaged or refused (pickled code) a file that fails is."""
    _require_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the weights-only unpickler refused something
        raise CheckpointError(
            f"{path} cannot be loaded safely (only tensors and plain data are accepted): "
            f"{_first_line(err)}"
        ) from err
    except Exception as err:  # a broken zip or pickle: RuntimeError, EOFError, KeyError...
        raise CheckpointError(
            f"checkpoint file {path} is damaged or truncated: {_first_line(err)}"
        ) from err


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ---------------------------------------------------------------------- prune


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
