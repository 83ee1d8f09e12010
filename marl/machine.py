"""The machine a run uses: its CPUs and torch threads, and for measurements what they
ran on (the fields every benchmark script's JSON line ends with) and waiting for the
device before a timer is read."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import marl


def processor(device: torch.device | str = "cpu") -> str:
    """The GPU's name on CUDA, else the CPU model (from /proc/cpuinfo where there is one)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_context(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions, machine and load, so that results can be compared across commits."""
    return {
        "marl": marl.__version__,
        "torch": torch.__version__,
        "device": str(device),
        "machine": f"{processor(device)}, {os.cpu_count()} cpus",
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so that a timer reads finished work."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


SHARED_LEARNER_THREADS_CAP = 4
"""`learner_threads=null` takes the job's CPU share up to this many. Two threads gave
1.3-1.4x faster updates than one on an idle 2-core VM (LBF, 3s5z) but up to 12x slower
ones when another job kept a core busy; more are unmeasured."""


def cpu_share(parallel_jobs: int = 1) -> int:
    """CPUs this job may use without oversubscribing: its usable CPUs divided by the jobs
    that share them (a local parallel sweep's ``n_jobs``), at least 1."""
    return max(1, usable_cpus() // max(1, parallel_jobs))


def thread_counts(
    acting: int, learner: int | None, parallel_jobs: int = 1
) -> tuple[int, int, list[str]]:
    """(acting threads, learner threads, warnings): the settings, never above the job's
    CPU share (each capped setting gets a warning); ``learner=None`` takes the share, at
    most ``SHARED_LEARNER_THREADS_CAP``."""
    share = cpu_share(parallel_jobs)
    jobs = f" shared by {parallel_jobs} parallel jobs" if parallel_jobs > 1 else ""
    warnings = []
    if learner is None:
        learner = min(share, SHARED_LEARNER_THREADS_CAP)
    out = []
    for key, n in (("torch_threads", acting), ("learner_threads", learner)):
        if n > share:
            warnings.append(
                f"{key}={n} is more than this job's {share} CPU(s) ({usable_cpus()} usable"
                f"{jobs}); using {share} so threads do not compete for cores."
            )
            n = share
        out.append(n)
    return out[0], out[1], warnings


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity: a SLURM job's share, not the node's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous number.
    Switching costs nothing measurable next to a learner update, which it wraps."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
