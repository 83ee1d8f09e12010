#!/usr/bin/env python
"""Env steps and wall time until MAPPO, IPPO and QMIX reach a greedy test target, as
one markdown table (issue 16's learning benchmark).

    python scripts/bench_learning.py                                  # every row, seed 1
    python scripts/bench_learning.py --rows mappo_battle_3m ippo_battle_3m --seeds 1 2
    python scripts/bench_learning.py --render-only                    # table from saved runs

Each row runs in a fresh process, one at a time: `scripts/time_to_win.py` with the row's
overrides, stopping at the first greedy test (32 episodes) at or above the target. Its
JSON line is appended to ``--runs`` (a run that never reaches the target keeps its best
test) and the table of every saved run is written to ``--out``. ``t_env`` counts env
steps summed over all env copies for every algorithm, so the rows share one x-axis.
The battle simulator is an approximation of SC2: these are not SMAC results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

SCRIPTS = Path(__file__).resolve().parent
RESULTS = SCRIPTS / "results"
WON = "test/battle_won_mean"
RETURN = "test/return_mean"


class Row(NamedTuple):
    """One line of the table: a config trained until its greedy test metric reaches
    ``target``, or until ``t_max`` env steps."""

    algo: str
    env: str
    overrides: tuple[str, ...]
    metric: str
    target: float
    t_max: int
    test_interval: int
    experiment: str | None = None


IPPO_BATTLE = ("learner.value_norm=true", "learner.advantage_norm=true")
"""MAPPO's normalised value targets: at ippo.yaml's raw returns (up to 20 on battle) its
policy collapsed (entropy 0.02) at a 0.5 win rate on 3m within 350k steps."""
LBF = ("env=lbf", "env.workers=false")  # a cheap env: in-process copies spare the round trips
LBF_PPO = ("learner.entropy_coef=0.001",)
"""EPyMARL's entropy weight for MAPPO and IPPO: at the yamls' 0.01 the policy stays too
random on LBF (entropy 1.3 of ln 6 = 1.8 at 450k steps) for its argmax to act as well."""
ROWS: dict[str, Row] = {
    "mappo_battle_3m": Row("mappo", "battle 3m", ("algo=mappo",), WON, 0.9, 1_000_000, 20_000),
    "ippo_battle_3m": Row(
        "ippo", "battle 3m", ("algo=ippo", *IPPO_BATTLE), WON, 0.9, 1_000_000, 20_000
    ),
    "qmix_battle_3m": Row(
        "qmix_tuned", "battle 3m", ("algo=qmix_tuned",), WON, 0.9, 1_000_000, 20_000
    ),
    "mappo_battle_8m": Row(
        "mappo", "battle 8m", ("algo=mappo", "env.map_name=8m"), WON, 0.9, 600_000, 25_000
    ),
    "qmix_battle_8m": Row(
        "qmix_tuned",
        "battle 8m",
        ("algo=qmix_tuned", "env.map_name=8m"),
        WON,
        0.9,
        600_000,
        25_000,
    ),
    "mappo_lbf": Row(
        "mappo", "lbf 8x8-2p-2f", ("algo=mappo", *LBF, *LBF_PPO), RETURN, 0.9, 1_000_000, 50_000
    ),
    "ippo_lbf": Row(
        "ippo", "lbf 8x8-2p-2f", ("algo=ippo", *LBF, *LBF_PPO), RETURN, 0.9, 1_000_000, 50_000
    ),
    # README's LBF recipe: qmix_epymarl, TD(lambda), 4 in-process copies, an update per episode
    "qmix_lbf": Row(
        "qmix_epymarl", "lbf 8x8-2p-2f", (), RETURN, 0.9, 1_000_000, 50_000, "lbf_qmix"
    ),
}


def time_to_win_args(row: Row, seed: int) -> list[str]:
    """The command line of `time_to_win.py` for one seed of ``row``."""
    args = [str(SCRIPTS / "time_to_win.py"), "--metric", row.metric, "--target", str(row.target)]
    args += ["--t-max", str(row.t_max), "--test-interval", str(row.test_interval)]
    if row.experiment is not None:
        args += ["--experiment", row.experiment]
    for override in (*row.overrides, f"seed={seed}"):
        args += ["--override", override]
    return args


def run_row(name: str, row: Row, seed: int) -> dict:
    """Trains one seed of ``row`` in a fresh process and returns its JSON line, with the
    row's labels and settings as they were when it ran."""
    out = subprocess.run(
        [sys.executable, *time_to_win_args(row, seed)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed:\n{out.stderr[-4000:]}")
    (line,) = [s for s in out.stdout.splitlines() if s.startswith("{")]
    settings = [f"experiment={row.experiment}"] if row.experiment else list(row.overrides)
    labels = {"row": name, "algo": row.algo, "env": row.env, "settings": " ".join(settings)}
    return {**labels, "seed": seed, "t_max": row.t_max, **json.loads(line)}


HEADER = """\
# Env steps and wall time to a greedy test target (issue 16)

Written by `python scripts/bench_learning.py` from `learning_runs.jsonl` (each run's every
test is there). Env steps are summed over all env copies, for every algorithm; the wall
time counts training from its start to that test (tests included). A run that never
reaches the target shows its best test. Battle is marl's approximation of SC2, not SMAC.

"""


def render(runs: list[dict]) -> str:
    """The markdown table of ``runs`` (JSON lines of `run_row`): the last run of each row
    and seed, in ROWS' order."""
    latest = {(run["row"], run["seed"]): run for run in runs}
    order = list(ROWS)
    lines = [
        "| algo | env | target | seed | env steps to target | wall s to target "
        "| best test (env steps) | settings | machine (load, 1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in sorted(latest.values(), key=lambda r: (order.index(r["row"]), r["seed"])):
        reached = run["reached"]
        steps = f"{reached['t_env']:,}" if reached else f"not within {run['t_max']:,}"
        wall = f"{reached['wall_s']:.0f}" if reached else f"({run['train_wall_s']:.0f} in all)"
        best = f"{run['best'][1]:.2f} ({run['best'][0]:,})" if run["best"] else "-"
        target = f"{run['metric'].removeprefix('test/')} {run['target']}"
        machine = f"{run['machine']} ({run['load_avg_1m']:.1f})"
        lines.append(
            f"| {run['algo']} | {run['env']} | {target} | {run['seed']} | {steps} | {wall} "
            f"| {best} | `{run['settings']}` | {machine} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--runs", type=Path, default=RESULTS / "learning_runs.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning_table.md")
    parser.add_argument("--render-only", action="store_true", help="only redraw the table")
    args = parser.parse_args()
    args.runs.parent.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for name in args.rows:
            for seed in args.seeds:
                run = run_row(name, ROWS[name], seed)
                with args.runs.open("a") as f:  # saved at once: a long benchmark can stop
                    f.write(json.dumps(run) + "\n")
                print(json.dumps({k: v for k, v in run.items() if k != "tests"}), flush=True)
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line]
    args.out.write_text(HEADER + render(runs))
    print(args.out.read_text(), end="")


if __name__ == "__main__":
    main()
