"""Sweeps with the default launcher: jobs share nothing; sweep presets expand as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAST = ["env=matrix", "t_max=120", "test_interval=40", "log_interval=40", "learner_log_interval=40"]
FAST += ["batch_size=8", "buffer_size=64", "test_nepisode=4", "batch_size_run=2"]


def marl_train(*args: str, cwd: Path, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "marl", *args]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == returncode, out.stdout + out.stderr
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


def test_a_failing_job_does_not_stop_the_sweep(tmp_path: Path) -> None:
    """The others run; the sweep ends naming the failed job and exits 1; a rerun of the
    same command skips what finished and retries what failed."""
    sweep = ["-m", "torch_threads=0,1", *FAST, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    out = marl_train(*sweep, cwd=tmp_path, returncode=1)
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    assert "1 job(s) of this sweep failed" in text
    assert "#0 [torch_threads=0 " in text and "torch_threads must be at least 1, got 0." in text
    (job,) = (tmp_path / "sweep").glob("*_seed1")  # the failed job left no folder
    assert job.name.startswith("1_") and (job / "metrics.jsonl").is_file()
    metrics = (job / "metrics.jsonl").read_text()

    again = marl_train(*sweep, cwd=tmp_path, returncode=1)
    assert "already finished (t_env 120); nothing to do" in again.stdout + again.stderr
    assert (job / "metrics.jsonl").read_text() == metrics


def test_parallel_jobs_share_the_cpus(tmp_path: Path) -> None:
    """Each of n_jobs local jobs gets at most its share of the CPUs."""
    sweep = ["-m", "seed=1,2", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2"]
    out = marl_train(*sweep, "learner_threads=64", *FAST, cwd=tmp_path)
    assert "learner_threads=64 is more than this job's" in out.stdout + out.stderr
    assert "shared by 2 parallel jobs" in out.stdout + out.stderr
