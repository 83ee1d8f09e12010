"""A real SLURM cluster: a seed sweep as a job array, and a preempted job that is
requeued, resumes from its checkpoint and ends exactly like an uninterrupted run.

Runs when a cluster is reachable (`SLURM_CONF` set, `sbatch` on PATH); `.ci/run`
starts one with ../shared/tools/slurm/start.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from marl.checkpoint import STATE_FILE, list_steps

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not (os.environ.get("SLURM_CONF") and shutil.which("sbatch")),
        reason="no SLURM cluster (set SLURM_CONF; .ci/run starts one)",
    ),
]

SLURM = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=5", "hydra.launcher.mem_gb=1"]
SLURM += ["hydra.launcher.cpus_per_task=1"]
TINY = ["env=matrix", "batch_size_run=1"]  # the two-step game: fast, and known


def marl_train(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "marl", *args]
    return subprocess.Popen(cmd, cwd=cwd, text=True, **kwargs)


def job_dirs(cwd: Path) -> list[Path]:
    return sorted(
        p.parent
        for p in (cwd / "outputs" / "multirun").rglob("config.yaml")
        if p.parent.name != ".hydra"
    )


def test_seed_sweep_runs_as_a_job_array(tmp_path: Path) -> None:
    args = ["-m", "seed=1,2,3", *TINY, "t_max=60", "test_interval=30", "batch_size=4", *SLURM]
    proc = marl_train(args, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    runs = job_dirs(tmp_path)
    assert [r.name.split("_")[-1] for r in runs] == ["seed1", "seed2", "seed3"]
    assert all((r / "metrics.jsonl").stat().st_size > 0 for r in runs)


def running_job_id(name: str) -> str | None:
    out = subprocess.run(
        ["squeue", "-h", "-n", name, "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()
    return out[0] if out else None


def test_preempted_job_requeues_and_resumes_exactly(tmp_path: Path) -> None:
    train = [*TINY, "seed=5", "t_max=6000", "save_model=true", "save_model_interval=500"]
    train += ["test_interval=1000", "log_interval=1000", "learner_log_interval=1000"]
    name = f"marl-preempt-{os.getpid()}"
    sweep = marl_train(
        ["-m", *train, *SLURM, f"hydra.launcher.name={name}"],
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # The uninterrupted reference runs here meanwhile.
    reference = tmp_path / "reference"
    ref = marl_train([*train, f"hydra.run.dir={reference}"], tmp_path, stdout=subprocess.DEVNULL)

    # Preempt the job at its second checkpoint, while most of its run is still ahead
    # (waiting for the reference first let a fast job finish before the signal).
    deadline, signalled = time.time() + 240, False
    while time.time() < deadline and not signalled:
        runs = job_dirs(tmp_path)
        job = running_job_id(name)
        if runs and job and len(list_steps(runs[0] / "checkpoints")[0]) >= 2:
            subprocess.run(["scancel", "-s", "USR2", job], check=True)
            signalled = True
        time.sleep(0.1)
    assert signalled, "the job never got to its second checkpoint"
    assert ref.wait(timeout=300) == 0
    out, _ = sweep.communicate(timeout=400)
    assert sweep.returncode == 0, out

    (run_dir,) = job_dirs(tmp_path)
    log_text = "".join(p.read_text() for p in run_dir.glob("*.log"))
    assert "resuming this run from its latest checkpoint" in log_text
    assert (run_dir / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
    last = list_steps(reference / "checkpoints")[0][-1]
    assert list_steps(run_dir / "checkpoints")[0][-1] == last
    got = torch.load(run_dir / "checkpoints" / str(last) / STATE_FILE, weights_only=True)
    want = torch.load(reference / "checkpoints" / str(last) / STATE_FILE, weights_only=True)
    for key, value in want["learner"]["mac"].items():
        assert torch.equal(got["learner"]["mac"][key], value), key
    for key, value in want["learner"]["mixer"].items():
        assert torch.equal(got["learner"]["mixer"][key], value), key
