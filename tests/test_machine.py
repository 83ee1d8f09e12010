"""The run context that benchmark scripts end their JSON lines with."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import marl
from marl import machine


def test_run_context_names_versions_device_and_processor() -> None:
    context = machine.run_context()
    assert context["marl"] == marl.__version__
    assert context["torch"] == torch.__version__
    assert context["device"] == "cpu"
    cpus = f", {os.cpu_count()} cpus"
    assert context["machine"].endswith(cpus) and len(context["machine"]) > len(cpus)
    assert context["load_avg_1m"] >= 0
    json.dumps(context)  # goes into a JSON line as it is


def test_processor_reads_the_cpu_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000 @ 1 GHz\nflags\t: x\n")
    real_path = machine.Path
    monkeypatch.setattr(
        machine, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p)
    )
    assert machine.processor("cpu") == "Test CPU 9000 @ 1 GHz"


def test_processor_names_the_gpu_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    assert machine.processor("cuda:0") == "NVIDIA H200"
    assert machine.run_context("cuda:0")["machine"].startswith("NVIDIA H200, ")


def test_torch_threads_sets_then_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with machine.torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), machine.torch_threads(before + 2):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_usable_cpus_counts_the_affinity() -> None:
    assert 1 <= machine.usable_cpus() <= (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("cpus", "jobs", "acting", "learner", "expected"),
    [
        (2, 1, 1, 1, (1, 1, 0)),
        (2, 1, 1, None, (1, 2, 0)),  # null: the job's share
        (64, 1, 1, None, (1, machine.SHARED_LEARNER_THREADS_CAP, 0)),
        (2, 2, 1, 2, (1, 1, 1)),  # two parallel jobs on 2 CPUs: one thread each
        (2, 2, 1, None, (1, 1, 0)),
        (2, 1, 4, 8, (2, 2, 2)),  # never more threads than CPUs
        (16, 4, 1, 8, (1, 4, 1)),
    ],
)
def test_thread_counts_never_oversubscribe_the_jobs_cpus(
    monkeypatch: pytest.MonkeyPatch,
    cpus: int,
    jobs: int,
    acting: int,
    learner: int | None,
    expected: tuple[int, int, int],
) -> None:
    monkeypatch.setattr(machine, "usable_cpus", lambda: cpus)
    got_acting, got_learner, warnings = machine.thread_counts(acting, learner, jobs)
    assert (got_acting, got_learner, len(warnings)) == expected
    for warning in warnings:
        assert "so threads do not compete for cores" in warning
        assert ("parallel jobs" in warning) == (jobs > 1)
