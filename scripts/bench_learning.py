#!/usr/bin/env python
"""Env steps and wall time until MAPPO, IPPO and QMIX reach a greedy test target, as
one markdown table per suite (issue 16's learning benchmark; issue 20's VMAS rows).

    python scripts/bench_learning.py                                  # every row, seed 1
    python scripts/bench_learning.py --rows mappo_battle_3m ippo_battle_3m --seeds 1 2
    python scripts/bench_learning.py --render-only                    # table from saved runs
    python scripts/bench_learning.py --suite vmas --seeds 1 2 --figure vmas_learning.png

Each row runs in a fresh process, one at a time: `scripts/time_to_win.py` with the row's
overrides, stopping at the first greedy test (32 episodes) at or above the target. Its
JSON line is appended to ``--runs`` (a run that never reaches the target keeps its best
test) and the table of every saved run is written to ``--out``. ``t_env`` counts env
steps summed over all env copies for every algorithm, so the rows share one x-axis.
The battle simulator is an approximation of SC2: these are not SMAC results.

A suite is a set of rows with its own runs file and table: ``learning`` (battle, LBF)
and ``vmas`` (VMAS balance and navigation with BenchMARL's task settings). VMAS rows
train to ``t_max`` whatever their target (no win rate to stop at: the final test is the
result), and every run records the return of uniformly random actions on its env, the
floor its curve starts from. ``--figure`` draws the saved runs' greedy test returns
with `marl-plot`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

SCRIPTS = Path(__file__).resolve().parent
RESULTS = SCRIPTS / "results"
FIGURES = SCRIPTS / "figures"
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
    keep_going: bool = False  # train to t_max after the target too: the final test counts


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

VMAS_BALANCE = ("env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4")
VMAS_NAVIGATION = (
    "env=vmas",
    "env.scenario=navigation",
    "+env.kwargs.n_agents=3",
    "+env.kwargs.shared_rew=false",
)
"""BenchMARL's vmas/balance.yaml and vmas/navigation.yaml: 100 steps (env.max_steps'
default); its other keys are VMAS's defaults. Rewards are per agent and the team reward
is their mean, what BenchMARL plots as the episode reward."""
VMAS_QMIX = ("algo=qmix_tuned", "algo/agent=mlp", "batch_size_run=10", "updates_per_rollout=10")
"""BenchMARL's MLP agent and its 10 VMAS copies per collection, with marl's tuned QMIX and
one update per episode (EPyMARL's): with one per 10 episodes of 100 steps the greedy test
on navigation stayed below the random policy's (-0.60) up to 100k steps (final -1.32);
with 10 it passed it at 41k (+0.21), at 0.6x the env steps/s (1-minute runs, epsilon
annealed over 30k, a loaded machine)."""
VMAS_MAPPO = ("algo=mappo", "algo/agent=mlp", "batch_size_run=60", "learner.minibatches=4")
"""An MLP policy trained on BenchMARL's 6,000 steps per PPO update, 4 epochs x 4 minibatches
(60 VMAS copies step at about twice the env steps/s of 20 on 2 cores)."""


def vmas_row(algo: tuple[str, ...], scenario: tuple[str, ...], target: float, t_max: int) -> Row:
    """A VMAS row: trained to ``t_max`` (the final test is the result), 20 tests."""
    name = algo[0].removeprefix("algo=")
    env = f"vmas {scenario[1].removeprefix('env.scenario=')}"
    return Row(name, env, (*algo, *scenario), RETURN, target, t_max, t_max // 20, keep_going=True)


VMAS_ROWS: dict[str, Row] = {
    "qmix_vmas_balance": vmas_row(VMAS_QMIX, VMAS_BALANCE, 100, 400_000),
    "mappo_vmas_balance": vmas_row(VMAS_MAPPO, VMAS_BALANCE, 100, 1_000_000),
    "qmix_vmas_navigation": vmas_row(VMAS_QMIX, VMAS_NAVIGATION, 0.8, 400_000),
    "mappo_vmas_navigation": vmas_row(VMAS_MAPPO, VMAS_NAVIGATION, 0.8, 1_000_000),
}
"""Targets: about 2/3 of the best return, 100 of ~156 on balance (100 x the package's
mean start distance to its goal, 1.56) and 0.8 of ~1.1 on navigation (each agent's mean
start distance to its goal, 1.08, plus 0.01 a step once all are on their goals)."""
LEARNING_ROWS = dict(ROWS)
ROWS.update(VMAS_ROWS)


def time_to_win_args(row: Row, seed: int) -> list[str]:
    """The command line of `time_to_win.py` for one seed of ``row``."""
    args = [str(SCRIPTS / "time_to_win.py"), "--metric", row.metric, "--target", str(row.target)]
    args += ["--t-max", str(row.t_max), "--test-interval", str(row.test_interval)]
    if row.experiment is not None:
        args += ["--experiment", row.experiment]
    if row.keep_going:
        args.append("--keep-going")
    for override in (*row.overrides, f"seed={seed}"):
        args += ["--override", override]
    return args


def random_return(row: Row, episodes: int = 200, seed: int = 0) -> float:
    """Mean team return of uniformly random available actions on ``row``'s env, over
    ``episodes`` copies played at once: where a learning curve starts from."""
    import torch
    from hydra.utils import instantiate
    from time_to_win import train_overrides

    from marl.config import compose_config

    cfg = compose_config(train_overrides(row.experiment, list(row.overrides)))
    env = instantiate(cfg.env, batch_size=episodes, seed=seed, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(episodes)  # (B,)
    live = torch.ones(episodes, dtype=torch.bool)  # (B,) copies whose episode goes on
    env.reset()
    while bool(live.any()):  # every env ends its episodes by its limit
        avail = env.avail_actions().cpu()  # (B, N, A)
        b, n, a = avail.shape
        actions = torch.multinomial(avail.reshape(b * n, a).float(), 1, generator=generator)
        result = env.step(actions.view(b, n))  # (B, N)
        # what a copy returns after its episode ended is not part of that episode
        total += torch.where(live, result.reward.cpu(), 0.0)  # (B,)
        live &= ~result.terminated.cpu()  # (B,)
    env.close()
    return round(total.mean().item(), 4)


def run_row(name: str, row: Row, seed: int) -> dict:
    """Trains one seed of ``row`` in a fresh process and returns its JSON line, with the
    row's labels and settings as they were when it ran, and the random policy's return."""
    out = subprocess.run(
        [sys.executable, *time_to_win_args(row, seed)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed:\n{out.stderr[-4000:]}")
    (line,) = [s for s in out.stdout.splitlines() if s.startswith("{")]
    settings = [f"experiment={row.experiment}"] if row.experiment else list(row.overrides)
    labels = {"row": name, "algo": row.algo, "env": row.env, "settings": " ".join(settings)}
    random = {"random_return": random_return(row)}
    return {**labels, "seed": seed, "t_max": row.t_max, **random, **json.loads(line)}


HEADER = """\
# Env steps and wall time to a greedy test target (issue 16)

Written by `python scripts/bench_learning.py` from `learning_runs.jsonl` (each run's every
test is there). Env steps are summed over all env copies, for every algorithm; the wall
time counts training from its start to that test (tests included). A run that never
reaches the target shows its best test. Battle is marl's approximation of SC2, not SMAC.

"""
VMAS_HEADER = """\
# VMAS balance and navigation: greedy test return over env steps (issue 20)

Written by `python scripts/bench_learning.py --suite vmas` from `vmas_learning_runs.jsonl`
(each run's every test is there). Each run trains to its step budget (`t_max`); the
target is about 2/3 of the best return and only marks when a run got there. Discrete
actions (9 per agent), team reward the mean over agents (BenchMARL's episode reward),
100 steps, BenchMARL's task settings; "random policy" is uniformly random actions over
200 episodes. Env steps are summed over all env copies; the wall time counts training
(tests included).

"""


class Suite(NamedTuple):
    """Rows benchmarked together: their runs file and their table (in RESULTS)."""

    rows: tuple[str, ...]
    runs: str
    table: str
    header: str


SUITES = {
    "learning": Suite(tuple(LEARNING_ROWS), "learning_runs.jsonl", "learning_table.md", HEADER),
    "vmas": Suite(
        tuple(VMAS_ROWS), "vmas_learning_runs.jsonl", "vmas_learning_table.md", VMAS_HEADER
    ),
}


def latest(runs: list[dict]) -> list[dict]:
    """The last run of each row and seed, in ROWS' order."""
    last = {(run["row"], run["seed"]): run for run in runs}
    order = list(ROWS)
    return sorted(last.values(), key=lambda r: (order.index(r["row"]), r["seed"]))


def test_cell(test: list) -> str:
    """A test ``[t_env, value]`` as a table cell: ``0.94 (140,589)``."""
    return f"{test[1]:.2f} ({test[0]:,})"


def render(runs: list[dict]) -> str:
    """The markdown table of ``runs`` (JSON lines of `run_row`): the last run of each row
    and seed, in ROWS' order."""
    lines = [
        "| algo | env | target | seed | env steps to target | wall s to target "
        "| best test (env steps) | first -> last test (env steps) | random policy "
        "| settings | machine (load, 1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in latest(runs):
        reached = run["reached"]
        steps = f"{reached['t_env']:,}" if reached else f"not within {run['t_max']:,}"
        wall = f"{reached['wall_s']:.0f}" if reached else f"({run['train_wall_s']:.0f} in all)"
        best = test_cell(run["best"]) if run["best"] else "-"
        tests = run.get("tests") or [None]  # older lines may lack these
        first_last = f"{test_cell(tests[0])} -> {test_cell(tests[-1])}" if tests[0] else "-"
        random = f"{run['random_return']:.2f}" if "random_return" in run else "-"
        target = f"{run['metric'].removeprefix('test/')} {run['target']}"
        machine = f"{run['machine']} ({run['load_avg_1m']:.1f})"
        lines.append(
            f"| {run['algo']} | {run['env']} | {target} | {run['seed']} | {steps} | {wall} "
            f"| {best} | {first_last} | {random} | `{run['settings']}` | {machine} |"
        )
    return "\n".join(lines) + "\n"


def draw_figure(runs: list[dict], path: Path) -> None:
    """``runs``' greedy test curves (the last run of each row and seed), drawn by
    `marl-plot` from run folders rebuilt out of their saved tests: a panel per env, a
    line (mean and 95% CI over seeds) per algo."""
    from marl.results import main as marl_plot

    metrics = {run["metric"] for run in runs}
    if len(metrics) != 1:
        raise SystemExit(f"--figure plots one metric; these runs log {sorted(metrics)}.")
    (metric,) = metrics
    with tempfile.TemporaryDirectory() as tmp:
        for run in latest(runs):
            family, _, task = run["env"].partition(" ")  # "vmas balance"
            folder = Path(tmp, "runs", f"{run['row']}_seed{run['seed']}")
            folder.mkdir(parents=True)
            env = {"_target_": f"marl.envs.{family}.Env", "name": task or family}
            config = {"algo": {"name": run["algo"]}, "env": env, "seed": run["seed"]}
            (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
            rows = [{"t_env": t_env, metric: value} for t_env, value in run["tests"]]
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        plots = Path(tmp, "plots")
        if marl_plot([str(Path(tmp, "runs")), "--metric", metric, "--out", str(plots)]) != 0:
            raise SystemExit("marl-plot failed (see above).")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plots / f"{metric.replace('/', '_')}.png", path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="learning")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), help="default: the suite's")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--runs", type=Path, help="default: results/<the suite's runs file>")
    parser.add_argument("--out", type=Path, help="default: results/<the suite's table>")
    parser.add_argument("--render-only", action="store_true", help="only redraw the table")
    parser.add_argument("--figure", type=Path, help="also draw the test curves: figures/<name>")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    rows = args.rows or list(suite.rows)
    runs_path = args.runs or RESULTS / suite.runs
    out = args.out or RESULTS / suite.table
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for name in rows:
            for seed in args.seeds:
                run = run_row(name, ROWS[name], seed)
                with runs_path.open("a") as f:  # saved at once: a long benchmark can stop
                    f.write(json.dumps(run) + "\n")
                print(json.dumps({k: v for k, v in run.items() if k != "tests"}), flush=True)
    runs = [json.loads(line) for line in runs_path.read_text().splitlines() if line]
    out.write_text(suite.header + render(runs))
    print(out.read_text(), end="")
    if args.figure:
        draw_figure(runs, FIGURES / args.figure)


if __name__ == "__main__":
    main()
