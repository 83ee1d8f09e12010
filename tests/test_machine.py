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


def test_default_learner_threads_take_the_usable_cpus_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for cpus, expected in ((1, 1), (2, 2), (64, machine.DEFAULT_LEARNER_THREADS_CAP)):
        monkeypatch.setattr(machine, "usable_cpus", lambda cpus=cpus: cpus)
        assert machine.default_learner_threads() == expected
