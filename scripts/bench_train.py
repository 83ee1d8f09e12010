#!/usr/bin/env python
"""Training throughput of fixed configs, one JSON line per config.

    python scripts/bench_train.py                     # every named config
    python scripts/bench_train.py --config qmix_two_step --repeats 5

For each config it reports the median over ``--repeats`` of:

- ``env_steps_per_s``: env steps per second of the whole training loop
  (acting, buffer, learner updates; tests and checkpoints off);
- ``updates_per_s``: learner updates per second on a full sampled batch;
- ``rollout_steps_per_s``: env steps per second of acting alone (no learning).

Compare numbers only between runs on the same machine; the JSON line names it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import marl
from marl.config import compose_config
from marl.experiment import Experiment

CONFIGS: dict[str, list[str]] = {
    "qmix_two_step": [
        "algo=qmix",
        "env=matrix",
        "env.game=two_step",
        "batch_size_run=1",
        "t_max=5000",
    ],
    "qmix_penalty_25rounds_b8": [
        "algo=qmix",
        "env=matrix",
        "env.game=penalty",
        "env.rounds=25",
        "batch_size_run=8",
        "t_max=20000",
    ],
}
QUIET = ["logger=[jsonl]", "test_interval=1000000000", "log_interval=1000000000"]


def measure(overrides: list[str], n_updates: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*overrides, *QUIET])
        experiment = Experiment(cfg, Path(tmp) / "train")
        start = time.perf_counter()
        experiment.train()
        train_s = time.perf_counter() - start
        out = {
            "env_steps_per_s": experiment.t_env / train_s,
            "train_wall_s": train_s,
            "t_env": experiment.t_env,
            "updates": experiment.learner.train_steps,
        }

        sample = experiment.buffer.sample(cfg.batch_size, experiment.sample_generator)
        sample = sample.slice_time(sample.max_t_filled()).to(experiment.device)
        experiment.learner.train(sample, experiment.t_env, experiment.episode)  # warm-up
        start = time.perf_counter()
        for _ in range(n_updates):
            experiment.learner.train(sample, experiment.t_env, experiment.episode)
        out["updates_per_s"] = n_updates / (time.perf_counter() - start)

        played, start = 0, time.perf_counter()
        while played < 2000:
            _, rollout = experiment.runner.run(test_mode=False)
            played += int(rollout.lengths.sum())
        out["rollout_steps_per_s"] = played / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    for name in args.config or sorted(CONFIGS):
        runs = [measure(CONFIGS[name], args.updates) for _ in range(args.repeats)]
        keys = ("env_steps_per_s", "updates_per_s", "rollout_steps_per_s", "train_wall_s")
        medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in keys}
        result = {"config": name, **medians}
        result.update(
            t_env=runs[0]["t_env"],
            updates=runs[0]["updates"],
            repeats=args.repeats,
            marl=marl.__version__,
            torch=torch.__version__,
            machine=f"{platform.machine()} {os.cpu_count()} cpus, {platform.processor() or '?'}",
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
