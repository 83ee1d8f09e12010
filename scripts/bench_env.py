"""Env steps per second of the battle simulator with random available actions.

One JSON line per (map, batch size): the median of 3 timed runs, each of whole
episode batches (reset, then step until every copy has ended, as PyMARL's episode
runner does; a copy that ended waits frozen) for at least ``--seconds``, counting the
env steps of live copies only ("env_steps_per_s", transitions a runner collects) and
all B x batch steps ("copy_steps_per_s", the raw simulation rate; frozen copies are
still computed), with the machine named. Actions are drawn uniformly
among the available ones (argmax of uniform noise), inside the timing.

With ``--runner autoreset`` a copy whose episode ended sits out one step and then
starts its next episode while the others play on, as ``runner=autoreset`` plays them:
the timing starts after one episode limit of untimed steps (the copies' episodes then
begin at different times, as in training) and runs for at least ``--seconds``. Each line
gives ``real_fraction``, the share of simulated copy steps that are real env steps.

With ``--compare KEY=VALUE ...`` every map and batch size is run once per setting
(BattleEnv keyword arguments, e.g. ``collisions=false``) besides the defaults, the
runs of all settings alternating (A B A B ...), and each line gives every setting's
median and its ratio to the defaults: the cost of a mechanic measured in one sitting.

python scripts/bench_env.py                               # default maps, B = 1, 64, 1024
python scripts/bench_env.py --maps 3m MMM2 --batch 1 64 --device cuda
python scripts/bench_env.py --maps 3m 2s3z corridor --compare collisions=false
python scripts/bench_env.py --maps 3m 3s5z --batch 8 64 1024 --runner autoreset
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
import yaml

from marl.envs.battle.env import BattleEnv
from marl.machine import run_context, synchronize

DEFAULT_MAPS = ["3m", "2s3z", "MMM2", "corridor", "2c_vs_64zg", "protoss_10_vs_10"]


def run(env: BattleEnv, gen: torch.Generator, seconds: float) -> tuple[float, float]:
    """(Live env steps, all copy steps) per second over whole episode batches.

    Runs last at least ``seconds``.
    Every run starts at a reset and ends when all copies have ended, so runs compare
    (a run cut mid-episode would weigh busy early steps and cheap late ones unevenly).
    """
    dev = env.device
    live = torch.zeros((), dtype=torch.long, device=dev)
    steps = 0
    synchronize(dev)
    start = time.perf_counter()
    while True:
        env.reset()
        active = torch.ones(env.batch_size, dtype=torch.bool, device=dev)  # (B,)
        while bool(active.any()):
            result = env.step(random_actions(env, gen))
            live = live + active.sum()
            active = active & ~result.terminated  # (B,)
            steps += 1
        if time.perf_counter() - start >= seconds:
            break
    synchronize(dev)
    elapsed = time.perf_counter() - start
    return int(live) / elapsed, steps * env.batch_size / elapsed


def random_actions(env: BattleEnv, gen: torch.Generator) -> torch.Tensor:
    """Actions (B, N) drawn uniformly among the available ones."""
    avail = env.avail_actions()  # (B, N, A)
    noise = torch.rand(avail.shape, generator=gen, device=env.device)  # (B, N, A)
    return (noise * avail).argmax(-1)  # (B, N)


def run_autoreset(env: BattleEnv, gen: torch.Generator, seconds: float) -> tuple[float, float]:
    """(Real env steps, all copy steps) per second with copies that restart on their own,
    after ``episode_limit`` untimed steps; runs last at least ``seconds``."""
    dev = env.device
    env.reset()
    sitting_out = torch.zeros(env.batch_size, dtype=torch.bool, device=dev)  # (B,)

    def step() -> torch.Tensor:
        nonlocal sitting_out
        result = env.step(random_actions(env, gen))
        playing = ~sitting_out  # (B,)
        if bool(sitting_out.any()):
            env.reset_copies(sitting_out)
        sitting_out = result.terminated & playing  # (B,) ended now: sit out the next step
        if bool(sitting_out.all()):  # none plays on: all restart now (as the runner does)
            env.reset_copies(sitting_out)
            sitting_out = torch.zeros_like(sitting_out)
        return playing.sum()

    for _ in range(env.episode_limit):
        step()
    live = torch.zeros((), dtype=torch.long, device=dev)
    steps = 0
    synchronize(dev)
    start = time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        live = live + step()
        steps += 1
    synchronize(dev)
    elapsed = time.perf_counter() - start
    return int(live) / elapsed, steps * env.batch_size / elapsed


def setting(text: str) -> tuple[str, Any]:
    """``key=value`` as a BattleEnv keyword argument, the value read as YAML (true, 1.0)."""
    key, _, raw = text.partition("=")
    return key, yaml.safe_load(raw)


def bench(
    map_name: str,
    batch_size: int,
    device: torch.device,
    seconds: float,
    repeats: int,
    compile: bool = False,
    compare: tuple[str, ...] = (),
    runner: str = "episode",
) -> dict[str, object]:
    play = run_autoreset if runner == "autoreset" else run
    labels = ["defaults", *compare]
    envs, gens = [], []
    for label in labels:
        kwargs = dict([setting(label)]) if label != "defaults" else {}
        envs.append(
            BattleEnv(
                map_name, batch_size=batch_size, seed=0, device=device, compile=compile, **kwargs
            )
        )
        gens.append(torch.Generator(device=device).manual_seed(0))
        run(envs[-1], gens[-1], 0.0)  # warm-up: one episode batch (and the compiling)
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for _ in range(repeats):  # alternating: every setting sees the same machine load
        for label, env, gen in zip(labels, envs, gens, strict=True):
            runs[label].append(play(env, gen, seconds))
    live = {label: [r[0] for r in got] for label, got in runs.items()}
    every = {label: [r[1] for r in got] for label, got in runs.items()}
    copies = every["defaults"]
    result: dict[str, object] = {
        "map": map_name,
        "batch_size": batch_size,
        "compile": compile,
        "runner": runner,
        "env_steps_per_s": round(statistics.median(live["defaults"]), 1),
        "copy_steps_per_s": round(statistics.median(copies), 1),
        "real_fraction": round(
            statistics.median(r / c for r, c in zip(live["defaults"], copies, strict=True)), 3
        ),
        "runs": [round(r, 1) for r in live["defaults"]],
    }
    for label in compare:
        median = statistics.median(live[label])
        result[label] = {
            "env_steps_per_s": round(median, 1),
            "copy_steps_per_s": round(statistics.median(every[label]), 1),
            "runs": [round(r, 1) for r in live[label]],
            "defaults_over_this": round(statistics.median(live["defaults"]) / median, 3),
            "copy_steps_defaults_over_this": round(
                statistics.median(copies) / statistics.median(every[label]), 3
            ),
        }
    return result | {"torch_threads": torch.get_num_threads(), **run_context(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=DEFAULT_MAPS)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the game loop")
    parser.add_argument(
        "--compare", nargs="+", default=[], help="KEY=VALUE env settings run beside the defaults"
    )
    parser.add_argument(
        "--runner",
        choices=["episode", "autoreset"],
        default="episode",
        help="lock-step episode batches, or copies that restart as they end",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for map_name in args.maps:
        for b in args.batch:
            result = bench(
                map_name,
                b,
                device,
                args.seconds,
                args.repeats,
                args.compile,
                tuple(args.compare),
                args.runner,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
