"""The battle simulator's collision pass as one C loop (``collide.c``) on the CPU.

In eager torch the pass is some 25 tensor ops per game loop, each a few microseconds
at one copy and a full sweep over the (B, U, U) pairs at many; in C it is one call and
one sweep. It is built once per machine with the system's C compiler (``$CC``, else
``cc``; about 0.2 s) into ``$XDG_CACHE_HOME/marl`` (``~/.cache/marl``), keyed by the
source, the command and the machine's architecture, and called through ctypes
(compiled game loops call it as an opaque op, ``separate_op``). With no compiler, or
``MARL_NATIVE=0``, the pass runs as torch ops (``sim._separate``); on an accelerator
it always does.

Each copy is computed on its own in a fixed order, so a copy's positions do not depend
on B. They round slightly differently from the torch ops (``sqrt`` of the squares
where eager torch takes ``hypot``, one sum order): runs with and without the kernel
agree to float rounding, not to the bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("collide.c")
FLAGS = ["-O2", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"]
"""IEEE float arithmetic as written: no fused multiply-adds, no reassociation."""
ENABLED = os.environ.get("MARL_NATIVE", "1") != "0"
"""``MARL_NATIVE=0``: never use the kernel (tests switch this to check both paths)."""


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "marl"


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "cc")


@cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, loaded; None (after one warning) when it cannot be built."""
    text = SOURCE.read_bytes()
    command = [*compiler(), *FLAGS]
    built_for = " ".join([*command, sys.platform, platform.machine()]).encode()
    key = hashlib.sha256(text + built_for).hexdigest()[:16]
    target = cache_dir() / f"collide-{key}.so"
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [*command, str(SOURCE), "-o", str(partial), "-lm"],
                check=True,
                capture_output=True,
                timeout=120,
            )
            os.replace(partial, target)  # whole, even with other processes building it
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        partial.unlink(missing_ok=True)
        detail = getattr(err, "stderr", None) or err
        log.warning(
            "battle: could not build the C collision pass (%s); using torch ops (slower).",
            detail.decode().strip() if isinstance(detail, bytes) else detail,
        )
        return None
    fn = lib.marl_separate
    pointer, size, real = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    fn.argtypes = [*[pointer] * 6, size, size, size, real, real, real, pointer]
    fn.restype = None
    return lib


def available(device: torch.device) -> bool:
    """Whether the collision pass can run in the kernel: on the CPU, kernel built (asked
    once per unit table, so the compiled game loop need not ask)."""
    return ENABLED and device.type == "cpu" and _library() is not None


def _table(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A (B, U, U) table as a contiguous (B or 1, U, U) block and its stride per copy: 0
    for one table expanded over the copies (fixed maps), U * U for one per copy."""
    if t.stride(0) == 0:
        t = t[:1]
    return t.contiguous(), (0 if t.shape[0] == 1 else t.shape[1] * t.shape[2])


def separate(
    pos: torch.Tensor,
    live: torch.Tensor,
    step: torch.Tensor,
    tie: torch.Tensor,
    touch: torch.Tensor,
    push: torch.Tensor,
    slide: float,
    eps: float,
) -> torch.Tensor:
    """``sim._separate`` over every pair in the kernel: pos, step (B, U, 2) float32, live
    (B, U) bool, tie (U, 2), touch and push (B, U, U) -> positions after pushing (B, U, 2).
    """
    lib = _library()
    assert lib is not None, "separate() needs available() first"
    b, u, _ = pos.shape
    pos, step, live, tie = pos.contiguous(), step.contiguous(), live.contiguous(), tie.contiguous()
    touch, stride = _table(touch)
    push, push_stride = _table(push)
    assert stride == push_stride and pos.dtype == step.dtype == touch.dtype == torch.float32
    out = torch.empty_like(pos)  # (B, U, 2)
    lib.marl_separate(
        pos.data_ptr(),
        live.data_ptr(),
        step.data_ptr(),
        tie.data_ptr(),
        touch.data_ptr(),
        push.data_ptr(),
        stride,
        b,
        u,
        math.cos(slide),
        math.sin(slide),
        eps,
        out.data_ptr(),
    )
    return out


@torch.library.custom_op("marl::separate", mutates_args=())
def separate_op(
    pos: torch.Tensor,
    live: torch.Tensor,
    step: torch.Tensor,
    tie: torch.Tensor,
    touch: torch.Tensor,
    push: torch.Tensor,
    slide: float,
    eps: float,
) -> torch.Tensor:
    """``separate`` as an op the compiled game loop calls (Inductor cannot see into it;
    no graph break). Eager calls ``separate`` directly: the op's dispatch costs more
    than the kernel at one copy."""
    return separate(pos, live, step, tie, touch, push, slide, eps)


@separate_op.register_fake
def _separate_shape(pos: torch.Tensor, *_: object) -> torch.Tensor:
    return torch.empty_like(pos)
