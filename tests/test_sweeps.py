"""Sweeps with the default launcher: jobs share nothing; sweep presets expand as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAST = ["env=matrix", "t_max=120", "test_interval=40", "log_interval=40", "learner_log_interval=40"]
FAST += ["batch_size=8", "buffer_size=64", "test_nepisode=4", "batch_size_run=2"]


def marl_train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "marl", *args]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_sequential_jobs_match_the_same_seed_run_alone(tmp_path: Path) -> None:
    """RNG, loggers and threads do not leak from job 1 into job 2 of one process."""
    marl_train("-m", "seed=1,2", "algo=vdn", *FAST, cwd=tmp_path)
    jobs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/*_seed*"))
    assert [j.name for j in jobs] == ["0_vdn_matrix_two_step_seed1", "1_vdn_matrix_two_step_seed2"]
    for seed, job in zip((1, 2), jobs, strict=True):
        alone = tmp_path / f"alone{seed}"
        marl_train(f"seed={seed}", "algo=vdn", *FAST, f"hydra.run.dir={alone}", cwd=tmp_path)
        assert (job / "metrics.jsonl").read_text() == (alone / "metrics.jsonl").read_text()


def test_sweep_presets_expand(tmp_path: Path) -> None:
    out = marl_train(
        "-m",
        "sweep=seeds",
        "env=matrix",
        "batch_size_run=1",
        "t_max=2",
        "test_interval=2",
        "batch_size=1",
        cwd=tmp_path,
    )
    assert out.stdout.count("sweep=seeds") >= 5 or out.stderr.count("sweep=seeds") >= 5
    jobs = sorted(p.name for p in (tmp_path / "outputs" / "multirun").glob("*/*/*_seed*"))
    assert [j.split("_")[-1] for j in jobs] == [f"seed{k}" for k in range(1, 6)]
