"""Env steps per second of the battle simulator with random available actions.

One JSON line per (map, batch size): the median of 3 timed runs, each of whole
episode batches (reset, then step until every copy has ended, as PyMARL's episode
runner does; a copy that ended waits frozen) for at least ``--seconds``, counting the
env steps of live copies only ("env_steps_per_s", transitions a runner collects) and
all B x batch steps ("copy_steps_per_s", the raw simulation rate; frozen copies are
still computed), with the machine named. Actions are drawn uniformly
among the available ones (argmax of uniform noise), inside the timing.

python scripts/bench_env.py                               # default maps, B = 1, 64, 1024
python scripts/bench_env.py --maps 3m MMM2 --batch 1 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

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
            avail = env.avail_actions()  # (B, N, A)
            noise = torch.rand(avail.shape, generator=gen, device=dev)  # (B, N, A)
            actions = (noise * avail).argmax(-1)  # (B, N) uniform among the available
            result = env.step(actions)
            live = live + active.sum()
            active = active & ~result.terminated  # (B,)
            steps += 1
        if time.perf_counter() - start >= seconds:
            break
    synchronize(dev)
    elapsed = time.perf_counter() - start
    return int(live) / elapsed, steps * env.batch_size / elapsed


def bench(
    map_name: str,
    batch_size: int,
    device: torch.device,
    seconds: float,
    repeats: int,
    compile: bool = False,
) -> dict[str, object]:
    env = BattleEnv(map_name, batch_size=batch_size, seed=0, device=device, compile=compile)
    gen = torch.Generator(device=device).manual_seed(0)
    run(env, gen, 0.0)  # warm-up: one episode batch (and the compiling)
    runs = [run(env, gen, seconds) for _ in range(repeats)]
    live, copies = [r[0] for r in runs], [r[1] for r in runs]
    return {
        "map": map_name,
        "batch_size": batch_size,
        "compile": compile,
        "env_steps_per_s": round(statistics.median(live), 1),
        "copy_steps_per_s": round(statistics.median(copies), 1),
        "runs": [round(r, 1) for r in live],
        "torch_threads": torch.get_num_threads(),
        **run_context(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=DEFAULT_MAPS)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the game loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for map_name in args.maps:
        for b in args.batch:
            result = bench(map_name, b, device, args.seconds, args.repeats, args.compile)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
