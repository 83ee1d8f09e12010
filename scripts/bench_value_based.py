#!/usr/bin/env python
"""The value-based algorithms side by side on `battle` maps: final greedy test win rate
(mean and 95% CI over seeds), with the step budget and wall time of every run.

    python scripts/bench_value_based.py                        # 8 algos x 3m x 3 seeds, 100k
    python scripts/bench_value_based.py --maps 3m 2s3z 5m_vs_6m --t-max 200000 --jobs 2

Each run is a whole `marl-train` process (`--jobs` at a time, one torch thread each) in
`<out>/<map>/<algo>/seed<s>`; its wall time and final test go to `<out>/runs.jsonl`.
Then `marl-plot` renders the curves and the summary table (mean [95% CI] of the final
greedy win rate) into `<out>/plots/`, and this script prints a Markdown table of both.
A folder that already holds a finished run is not run again (a rerun of the script
completes a benchmark it was stopped in). The battle simulator approximates SC2: these
are not SMAC results.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from marl.results import main as marl_plot

ALGOS = ["iql", "vdn", "qmix", "qmix_tuned", "qtran", "qplex", "ow_qmix", "cw_qmix"]
METRIC = "test/battle_won_mean"
RETURN = "test/return_mean"  # shown beside the win rate: it separates runs that all lose


def final_test(run_dir: Path, metric: str = METRIC) -> float | None:
    """The last logged greedy test value of a run, None if it logged none."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    values = [row[metric] for row in rows if metric in row]
    return values[-1] if values else None


def train(run_dir: Path, algo: str, map_name: str, seed: int, args: argparse.Namespace) -> dict:
    """One whole training process; its record for runs.jsonl."""
    overrides = [f"algo={algo}", "env=battle", f"env.map_name={map_name}", f"seed={seed}"]
    overrides += [f"t_max={args.t_max}", f"test_interval={args.t_max // 10}"]
    overrides += ["test_nepisode=32", "logger=[jsonl]", f"hydra.run.dir={run_dir.resolve()}"]
    started = time.perf_counter()
    # From the temp folder: `python -m` puts the working folder first on sys.path, so run
    # from a repo root it would import that tree's marl, not the one PYTHONPATH names.
    proc = subprocess.run(
        [sys.executable, "-m", "marl", *overrides],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{run_dir} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    record = {"map": map_name, "algo": algo, "seed": seed, "t_max": args.t_max}
    return record | {"wall_s": round(wall, 1), METRIC: final_test(run_dir)}


def table(records: list[dict], maps: list[str], algos: list[str], summary: Path, out: Path) -> str:
    """Markdown: per map and algo, marl-plot's final mean [95% CI], the mean final greedy
    return (from the run folders in ``out``) and the wall times."""
    ci = {}  # (map, algo) -> "mean [low, high]", from marl-plot's summary.csv
    with summary.open(newline="") as f:
        for row in csv.DictReader(f):
            stat = [float(row[f"win_rate_final_{x}"]) for x in ("mean", "ci_low", "ci_high")]
            ci[(row["task"], row["algo"])] = "{:.3f} [{:.3f}, {:.3f}]".format(*stat)
    lines = [
        "| map | algo | final greedy win rate, mean [95% CI] | final greedy return, mean "
        "| seeds | env steps | wall s per run, mean (min-max) |"
    ]
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for map_name in maps:
        for algo in algos:
            runs = [r for r in records if r["map"] == map_name and r["algo"] == algo]
            if not runs:
                continue
            walls = [r["wall_s"] for r in runs]
            wall = f"{statistics.mean(walls):.0f} ({min(walls):.0f}-{max(walls):.0f})"
            shown = ci.get((map_name, algo), "?")
            folders = [out / map_name / algo / f"seed{r['seed']}" for r in runs]
            returns = [x for x in (final_test(f, RETURN) for f in folders) if x is not None]
            ret = f"{statistics.mean(returns):.2f}" if returns else "-"
            lines.append(
                f"| {map_name} | {algo} | {shown} | {ret} | {len(runs)} "
                f"| {runs[0]['t_max']:,} | {wall} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=ALGOS)
    parser.add_argument("--maps", nargs="+", default=["3m"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--t-max", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_value_based"))
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    finished = {(r["map"], r["algo"], r["seed"], r["t_max"]) for r in done}
    todo = [
        (args.out / m / a / f"seed{s}", a, m, s)
        for m in args.maps
        for a in args.algos
        for s in args.seeds
        if (m, a, s, args.t_max) not in finished
    ]
    with ThreadPoolExecutor(args.jobs) as pool, log.open("a") as f:
        for record in pool.map(lambda job: train(*job, args), todo):
            f.write(json.dumps(record) + "\n")
            f.flush()
            print(json.dumps(record), flush=True)

    records = [json.loads(line) for line in log.read_text().splitlines()]
    records = [r for r in records if r["t_max"] == args.t_max]
    runs = [args.out / r["map"] / r["algo"] / f"seed{r['seed']}" for r in records]
    marl_plot([*map(str, runs), "--metric", METRIC, "--out", str(args.out / "plots")])
    print(table(records, args.maps, args.algos, args.out / "plots" / "summary.csv", args.out))


if __name__ == "__main__":
    main()
