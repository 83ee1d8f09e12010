#!/usr/bin/env python
"""Learning is not traded for speed: final test results of the fast and plain paths.

    python scripts/fast_vs_plain.py                        # qmix_tuned, battle 3m, seeds 1-3
    python scripts/fast_vs_plain.py --seeds 1 2 --t-max 200000 --override env.map_name=2s3z

Trains the same config on the same seeds twice: the plain path (float32 replay
storage) and the fast path (the default: 8-bit storage of the env's unit-range
features, a quarter of the memory; with ``--compile`` also ``learner.compile=default``).
Prints one JSON line per run and a summary line with each path's mean final test
metric and wall time. The paths differ by rounding, so runs diverge after a while:
compare the means over seeds, not seed by seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from marl.config import compose_config
from marl.experiment import Experiment, resolve_device
from marl.logging.base import Logger
from marl.machine import run_context

PATHS = {"plain": ["buffer_obs_dtype=float32"], "fast": ["buffer_obs_dtype=auto"]}


class LastTest(Logger):
    """Keeps the last value of one metric."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.value: float | None = None

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        if self.metric in metrics:
            self.value = metrics[self.metric]


def train_once(overrides: list[str], metric: str) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment(compose_config([*overrides, "logger=[jsonl]"]), Path(tmp))
        watch = LastTest(metric)
        experiment.loggers.loggers["last_test"] = watch
        start = time.perf_counter()
        experiment.train()
        return {"final": watch.value, "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--t-max", type=int, default=300_000)
    parser.add_argument("--metric", default="test/battle_won_mean")
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--compile", action="store_true", help="fast path: learner.compile")
    args = parser.parse_args()
    paths = {name: list(extra) for name, extra in PATHS.items()}
    if args.compile:
        paths["fast"].append("learner.compile=default")
    base = ["algo=qmix_tuned", "env=battle", "env.map_name=3m", *args.override]
    base += [f"t_max={args.t_max}", "test_nepisode=64"]
    finals: dict[str, list[float]] = {path: [] for path in paths}
    walls: dict[str, list[float]] = {path: [] for path in paths}
    for seed in args.seeds:
        for path, extra in paths.items():
            result = train_once([*base, *extra, f"seed={seed}"], args.metric)
            print(json.dumps({"path": path, "seed": seed, **result}), flush=True)
            finals[path].append(float(result["final"] or 0.0))
            walls[path].append(float(result["wall_s"] or 0.0))
    summary = {
        "overrides": base,
        "paths": paths,
        "metric": args.metric,
        "seeds": args.seeds,
        **{f"{p}_mean": round(statistics.mean(v), 4) for p, v in finals.items()},
        **{f"{p}_wall_s_median": statistics.median(v) for p, v in walls.items()},
        **run_context(resolve_device(compose_config(base).device)),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
