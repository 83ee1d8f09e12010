#!/usr/bin/env python
"""Wall time and env steps until a run's greedy test metric first reaches a target.

    python scripts/time_to_win.py                                   # qmix_tuned, battle 3m, 90%
    python scripts/time_to_win.py --override algo=qmix --override env.map_name=2s3z --target 0.8
    python scripts/time_to_win.py --experiment lbf_qmix --metric test/return_mean --keep-going
    python scripts/time_to_win.py --override algo=mappo --override env=lbf --metric test/return_mean

Trains with marl's normal loop (tests every --test-interval steps, 32 episodes) and
prints one JSON line: the first test at or above the target (t_env, wall seconds since
training started), the best test (for runs that never reach it), the whole run's wall
seconds, the machine, and the config. The overrides apply on top of `algo=qmix_tuned`
and the config's default env (battle 3m). The battle simulator is an
approximation of SC2: these are not SMAC results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from marl.config import compose_config
from marl.experiment import Experiment
from marl.logging.base import Logger
from marl.machine import run_context


class TargetWatch(Logger):
    """Records every test's metric and the first one that reaches the target."""

    def __init__(self, metric: str, target: float, on_reached: Callable[[int], None]) -> None:
        self.metric = metric
        self.target = target
        self.on_reached = on_reached
        self.started = time.perf_counter()
        self.reached: dict[str, float] | None = None
        self.tests: list[tuple[int, float]] = []

    def log(self, metrics: Mapping[str, float], t_env: int) -> None:
        value = metrics.get(self.metric)
        if value is None:
            return
        self.tests.append((t_env, round(value, 4)))
        if self.reached is None and value >= self.target:
            wall = time.perf_counter() - self.started
            self.reached = {"t_env": t_env, "wall_s": round(wall, 1), self.metric: value}
            self.on_reached(t_env)


def train_overrides(experiment: str | None, overrides: list[str]) -> list[str]:
    """The Hydra overrides of a run: ``overrides`` on top of the experiment preset, or
    of `algo=qmix_tuned` on the default env (battle 3m) without one."""
    base = [f"experiment={experiment}"] if experiment else ["algo=qmix_tuned"]
    return [*base, *overrides]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", help="a conf/experiment preset instead of battle 3m")
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--metric", default="test/battle_won_mean")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--t-max", type=int, default=2_000_000)
    parser.add_argument("--test-interval", type=int, default=20_000)
    parser.add_argument("--keep-going", action="store_true", help="train to t_max anyway")
    args = parser.parse_args()
    overrides = train_overrides(args.experiment, args.override)
    overrides += [f"t_max={args.t_max}", f"test_interval={args.test_interval}"]
    overrides += ["logger=[console,jsonl]"]
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment(compose_config(overrides), Path(tmp))
        cfg = experiment.cfg

        def stop_at(t_env: int) -> None:  # end training once the target is reached
            if not args.keep_going:
                cfg.t_max = min(cfg.t_max, t_env)

        watch = TargetWatch(args.metric, args.target, stop_at)
        experiment.loggers.loggers["target_watch"] = watch
        watch.started = time.perf_counter()
        experiment.train()
    best = max(watch.tests, key=lambda test: test[1], default=None)  # the earliest of the best
    print(
        json.dumps(
            {
                "overrides": overrides,
                "metric": args.metric,
                "target": args.target,
                "reached": watch.reached,
                "best": best,
                "train_wall_s": round(time.perf_counter() - watch.started, 1),
                "tests": watch.tests,
                **run_context(experiment.device),
            }
        )
    )


if __name__ == "__main__":
    main()
