#!/usr/bin/env python
"""Final greedy test returns of each algorithm on the matrix games, across seeds.

    python scripts/matrix_games.py                            # qmix, vdn, iql on two_step
    python scripts/matrix_games.py --algos qmix --games two_step climbing --seeds 1 2 3
    python scripts/matrix_games.py --algos ow_qmix cw_qmix --games qtran --t-max 20000 \
        --set algo.action_selector.epsilon_anneal_time=10000   # the known-answer budget

Prints one JSON line per (game, algo) with the final greedy return of every seed,
the number of seeds reaching the game's optimum, and the optimum itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from marl.config import compose_config
from marl.experiment import Experiment


def final_greedy_return(
    algo: str, game: str, seed: int, t_max: int, settings: list[str] | None = None
) -> float:
    overrides = [
        f"algo={algo}",
        "env=matrix",
        "batch_size_run=1",
        f"env.game={game}",
        f"seed={seed}",
    ]
    overrides += [f"t_max={t_max}", "logger=[jsonl]", "test_nepisode=4", *(settings or [])]
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment(compose_config(overrides), Path(tmp))
        experiment.train()
        rows = (Path(tmp) / "metrics.jsonl").read_text().splitlines()
    tests = [json.loads(r)["test/return_mean"] for r in rows if "test/return_mean" in r]
    return tests[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["qmix", "vdn", "iql"])
    parser.add_argument("--games", nargs="+", default=["two_step"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--t-max", type=int, default=5000)
    parser.add_argument("--set", nargs="+", default=[], help="more overrides: key=value ...")
    args = parser.parse_args()
    optimum = {"two_step": 8.0, "penalty": 10.0, "climbing": 11.0, "qtran": 8.0}
    for game in args.games:
        for algo in args.algos:
            returns = [final_greedy_return(algo, game, s, args.t_max, args.set) for s in args.seeds]
            solved = sum(r == optimum[game] for r in returns)
            line = {"game": game, "algo": algo, "t_max": args.t_max, "seeds": args.seeds}
            line |= {"settings": args.set} if args.set else {}
            line.update(final_returns=returns, optimal=optimum[game], solved=solved)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
