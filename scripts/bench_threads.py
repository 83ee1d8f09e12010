#!/usr/bin/env python
"""Is the default `learner_threads` as fast as the best explicit count, idle and busy?

    python scripts/bench_threads.py                               # LBF one env, 3 rounds
    python scripts/bench_threads.py --config qmix_battle_3s5z_b8 --rounds 2

For each config it measures ``bench_train.py``'s end-to-end ``env_steps_per_s`` with the
default settings and with ``learner_threads`` set to each of ``--threads``, first on the
machine as it is ("idle") and then with ``--load`` CPU-bound processes running beside
it ("busy": another job on the same cores, as on a shared VM or node). Runs alternate
(default, 1, 2, default, 1, 2, ...: whole fresh processes) so that drift in the
machine's speed hits every setting alike. One JSON line per (config, condition): the
median of each setting, the best explicit setting and ``default_vs_best``, the default's
rate over the best one's (1.0 = as fast; 0.9 = 10% slower).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import CONFIGS, measure_in_subprocess

from marl.machine import run_context

BUSY_LOOP = "while True: pass"


def start_load(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that each keep one core busy until stopped."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def compare(name: str, threads: list[int], rounds: int, updates: int) -> dict[str, list[float]]:
    """env steps/s of each setting over ``rounds`` alternating rounds."""
    settings = {
        "default": [],
        **{f"learner_threads={n}": [f"learner_threads={n}"] for n in threads},
    }
    rates: dict[str, list[float]] = {label: [] for label in settings}
    for _ in range(rounds):
        for label, overrides in settings.items():
            result = measure_in_subprocess(name, updates, overrides)
            rates[label].append(result["env_steps_per_s"])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=1, help="busy processes beside the runs")
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--conditions", nargs="+", default=["idle", "busy"])
    args = parser.parse_args()
    for name in args.config or ["qmix_lbf_epymarl_b1"]:
        for condition in args.conditions:
            load = start_load(args.load) if condition == "busy" else []
            try:
                rates = compare(name, args.threads, args.rounds, args.updates)
            finally:
                stop_load(load)
            medians = {label: round(statistics.median(r), 1) for label, r in rates.items()}
            explicit = {k: v for k, v in medians.items() if k != "default"}
            best = max(explicit, key=lambda k: explicit[k])
            line = {
                "config": name,
                "condition": condition,
                "load_processes": len(load),
                "env_steps_per_s": medians,
                "runs": {k: [round(x) for x in v] for k, v in rates.items()},
                "best_explicit": best,
                "default_vs_best": round(medians["default"] / explicit[best], 3),
                "rounds": args.rounds,
                **run_context(),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
