#!/usr/bin/env python
"""marl beside BenchMARL on VMAS ``balance``, with BenchMARL's work per iteration.

    python scripts/bench_benchmarl.py --benchmarl-python /tmp/venv_benchmarl/bin/python
    python scripts/bench_benchmarl.py --benchmarl-python ... --row qmix_b10 --repeats 5

BenchMARL (1.5.2 was measured) lives in its own venv: torch==2.13.0 first, then
``benchmarl==1.5.2 vmas==1.5.2`` with torch pinned by a constraint file, then
``pip uninstall torchvision`` (the PyPI build does not import beside the CPU torch).

For each row (QMIX and MAPPO, 10 and 60 envs) the script runs whole processes, marl then
BenchMARL, ``--repeats`` times (A B A B A B), and times each from start to exit (imports,
env construction and set-up included, wall clock). Both sides run ``--iterations`` of
BenchMARL's iteration on the same task (4 agents, 100 steps): 6,000 frames, then

- QMIX: BenchMARL 1,000 updates of 128 transitions; marl ``updates_per_rollout`` updates
  after each rollout of ``batch_size_run`` episodes (167 after each 1,000-frame rollout
  of 10 envs, 1,000 after each 6,000-frame rollout of 60), each of 2 whole episodes
  (200 transitions, at least BenchMARL's 128);
- MAPPO: BenchMARL 45 epochs of 15 minibatches of 400 frames; marl 45 epochs over each
  rollout, 15 minibatches of 4 episodes with 60 envs, 3 minibatches (4, 4, 2 episodes)
  of each 1,000-frame rollout with 10 envs (marl trains on-policy after every rollout).

marl's episodes end when the package falls, so its rollouts hold fewer than
``100 * batch_size_run`` frames and it makes more updates per frame than BenchMARL; the
line gives each side's frames and updates. marl's overrides are bench_train.py's
``<algo>_vmas_balance_b<envs>`` configs with ``t_max`` set to the frames.

The ``_exact`` rows (``qmix_b60_exact``, ...) do BenchMARL's work itself: its networks
(MLPs of two 256-unit layers; marl's defaults are 64 units) and, for QMIX, its sampling
(``sample=transitions batch_size=128``: 128 single transitions per update) and schedule
(``updates_per_env_step=1/6``: 1,000 updates per 6,000 frames however long the episodes),
without last-action inputs.

Each row prints one JSON line: both sides' frames per second (frames / whole-process
wall time; median, min, max), the ratio of the medians (marl / BenchMARL), the frames,
the work per iteration, CPU time / wall time, peak memory and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_train import CONFIGS

from marl.machine import run_context

REPO = Path(__file__).resolve().parent.parent
FRAMES_PER_ITER = 6000
"""BenchMARL's default frames collected per iteration (on- and off-policy)."""
QUIET = ["test_nepisode=0", "logger=[jsonl]", "save_model=false"]
"""marl: no test episodes, no console logger, no checkpoints (BenchMARL's are off too)."""


@dataclass(frozen=True)
class Row:
    algo: str
    n_envs: int
    exact: bool = False  # BenchMARL's networks and (QMIX) sampling, not marl's defaults

    @property
    def on_policy(self) -> bool:
        return self.algo == "mappo"

    @property
    def marl_config(self) -> str:
        return f"{self.algo}_vmas_balance_b{self.n_envs}" + ("_exact" if self.exact else "")


ROWS = {
    f"{algo}_b{n}{'_exact' if exact else ''}": Row(algo, n, exact)
    for algo in ("qmix", "mappo")
    for n in (10, 60)
    for exact in (False, True)
}


def benchmarl_work(row: Row) -> dict[str, int]:
    """BenchMARL's experiment keys for the row's iteration (its defaults, set explicitly)."""
    if row.on_policy:
        return {
            "on_policy_collected_frames_per_batch": FRAMES_PER_ITER,
            "on_policy_n_envs_per_worker": row.n_envs,
            "on_policy_n_minibatch_iters": 45,
            "on_policy_minibatch_size": 400,
        }
    return {
        "off_policy_collected_frames_per_batch": FRAMES_PER_ITER,
        "off_policy_n_envs_per_worker": row.n_envs,
        "off_policy_n_optimizer_steps": 1000,
        "off_policy_train_batch_size": 128,
    }


def benchmarl_command(python: str, row: Row, iterations: int, run_dir: Path) -> list[str]:
    """BenchMARL's own entry point: a bounded run, no evaluation, loggers or checkpoints."""
    experiment = {
        **benchmarl_work(row),
        "max_n_iters": iterations,
        "max_n_frames": "null",
        "evaluation": "false",
        "render": "false",
        "loggers": "[]",
        "create_json": "false",
        "checkpoint_interval": 0,
        "checkpoint_at_end": "false",
    }
    cmd = [python, "-m", "benchmarl.run", f"algorithm={row.algo}", "task=vmas/balance"]
    cmd += [f"experiment.{key}={value}" for key, value in experiment.items()]
    return [*cmd, f"hydra.run.dir={run_dir}"]


def marl_overrides(row: Row, frames: int, extra: list[str]) -> list[str]:
    """bench_train.py's config for the row plus ``extra``, run for ``frames`` env steps."""
    kept = [o for o in CONFIGS[row.marl_config] if not o.startswith("t_max=")]
    return [*kept, *extra, f"t_max={frames}"]


def override_value(overrides: list[str], key: str, default: float) -> float:
    values = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return float(values[-1]) if values else default


def marl_updates(overrides: list[str], rollouts: int, frames: int) -> int:
    """Learner gradient steps marl made in ``rollouts`` rollouts of ``frames`` in all with
    these overrides (with updates_per_env_step: int(frames * ratio), as the loop makes)."""
    ratio = override_value(overrides, "updates_per_env_step", 0.0)
    if ratio:
        return math.floor(frames * ratio * (1 + 1e-12))
    if "algo=mappo" in overrides:
        episodes = int(override_value(overrides, "batch_size_run", 8))
        asked = int(override_value(overrides, "learner.minibatches", 1))
        per_chunk = -(-episodes // asked)  # torch.chunk's sizes
        epochs = int(override_value(overrides, "learner.epochs", 1))
        return rollouts * epochs * -(-episodes // per_chunk)
    return rollouts * int(override_value(overrides, "updates_per_rollout", 1))


def timed(cmd: list[str], cwd: Path, log: Path) -> dict[str, Any]:
    """Run ``cmd`` to its end: wall seconds, CPU seconds and peak RSS of that process."""
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"exit {code}: {' '.join(cmd)}\n{tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def run_marl(row: Row, frames: int, extra: list[str], tmp: Path) -> dict[str, Any]:
    overrides = marl_overrides(row, frames, extra)
    run_dir = tmp / "marl"
    cmd = [sys.executable, "-m", "marl", *overrides, *QUIET, f"hydra.run.dir={run_dir}"]
    out = timed(cmd, REPO, tmp / "marl.log")  # from the repo: `-m marl` is this checkout's
    t_env = int((run_dir / "FINISHED").read_text())
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    rollouts = int(last["train/episode"]) // row.n_envs
    return {**out, "frames": t_env, "updates": marl_updates(overrides, rollouts, t_env)}


def run_benchmarl(python: str, row: Row, iterations: int, tmp: Path) -> dict[str, Any]:
    cmd = benchmarl_command(python, row, iterations, tmp / "benchmarl")
    out = timed(cmd, tmp, tmp / "benchmarl.log")
    work = benchmarl_work(row)
    if row.on_policy:
        per_iter = work["on_policy_n_minibatch_iters"] * -(
            -FRAMES_PER_ITER // work["on_policy_minibatch_size"]
        )
    else:
        per_iter = work["off_policy_n_optimizer_steps"]
    return {**out, "frames": iterations * FRAMES_PER_ITER, "updates": iterations * per_iter}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fps = [r["frames"] / r["wall_s"] for r in runs]
    return {
        "frames_per_s": round(statistics.median(fps), 1),
        "frames_per_s_min": round(min(fps), 1),
        "frames_per_s_max": round(max(fps), 1),
        "wall_s": [round(r["wall_s"], 1) for r in runs],
        "frames": [r["frames"] for r in runs],
        "updates": [r["updates"] for r in runs],
        "updates_per_iteration": round(
            statistics.median(r["updates"] * FRAMES_PER_ITER / r["frames"] for r in runs)
        ),
        "cpu_per_wall": round(statistics.median(r["cpu_s"] / r["wall_s"] for r in runs), 2),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
    }


def work_description(row: Row, extra: list[str]) -> dict[str, str]:
    kept = [o for o in CONFIGS[row.marl_config] if not o.startswith("t_max=")]
    marl = " ".join([*kept, *extra])
    if row.on_policy:
        benchmarl = "6000 frames, then 45 epochs x 15 minibatches of 400 frames"
    else:
        benchmarl = "6000 frames, then 1000 updates of 128 transitions"
    benchmarl += "; MLPs of two 256-unit layers (its default model)"
    return {"benchmarl": benchmarl, "marl": marl}


def measure_row(name: str, row: Row, args: argparse.Namespace) -> dict[str, Any]:
    frames = args.iterations * FRAMES_PER_ITER
    loads = [os.getloadavg()[0]]
    marl_runs: list[dict[str, Any]] = []
    benchmarl_runs: list[dict[str, Any]] = []
    for _ in range(args.repeats):  # alternating whole processes: A B A B ...
        with tempfile.TemporaryDirectory() as tmp:
            marl_runs.append(run_marl(row, frames, args.marl_override, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            benchmarl_runs.append(
                run_benchmarl(args.benchmarl_python, row, args.iterations, Path(tmp))
            )
        loads.append(os.getloadavg()[0])
    marl, benchmarl = summary(marl_runs), summary(benchmarl_runs)
    context = run_context("cpu")
    return {
        "row": name,
        "task": "vmas/balance (4 agents, 100 steps)",
        "algo": row.algo,
        "n_envs": row.n_envs,
        "iterations": args.iterations,
        "marl": marl,
        "benchmarl": benchmarl,
        "ratio": round(marl["frames_per_s"] / benchmarl["frames_per_s"], 2),
        "work_per_iteration": work_description(row, args.marl_override),
        "repeats": args.repeats,
        "load_avg_1m": [round(x, 2) for x in loads],  # before the row, after each pair
        "marl_version": context["marl"],
        "torch": context["torch"],
        "machine": context["machine"],
    }


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print ``result`` as one JSON line, and append it to ``out`` when given."""
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        with out.open("a") as f:
            f.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarl-python", required=True, help="python of BenchMARL's venv")
    parser.add_argument("--row", choices=sorted(ROWS), action="append")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3, help="of 6,000 frames each")
    parser.add_argument(
        "--marl-override", action="append", default=[], help="Hydra override for marl's runs"
    )
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    for name in args.row or list(ROWS):
        emit(measure_row(name, ROWS[name], args), args.out)


if __name__ == "__main__":
    main()
