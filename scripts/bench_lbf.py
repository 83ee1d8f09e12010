"""Raw env steps per second of LBF through marl's Gymnasium adapter (random valid actions).

python scripts/bench_lbf.py                 # B = 1 and 4, workers and serial
python scripts/bench_lbf.py --steps 20000 --batch 1 8
"""

from __future__ import annotations

import argparse
import time

import torch

from marl.envs.gymnasium_env import GymnasiumEnv


def steps_per_second(batch_size: int, workers: bool, steps: int) -> float:
    """Env steps (summed over copies, ended copies excluded) per second of wall time."""
    env = GymnasiumEnv(
        "Foraging-8x8-2p-2f-v3",
        import_module="lbforaging",
        time_limit=50,
        workers=workers,
        kwargs={"max_episode_steps": 50},
        batch_size=batch_size,
        seed=0,
    )
    gen = torch.Generator().manual_seed(0)
    done, start = 0, time.perf_counter()
    try:
        while done < steps:
            env.reset()
            active = torch.ones(batch_size, dtype=torch.bool)  # (B,)
            while bool(active.any()):
                avail = env.avail_actions().float()  # (B, N, A)
                actions = torch.multinomial(avail.flatten(0, 1), 1, generator=gen)  # (B*N, 1)
                _, terminated, _ = env.step(actions.view(batch_size, -1))  # (B, N) in
                done += int(active.sum())
                active &= ~terminated
    finally:
        env.close()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for b in args.batch:
        modes = [True, False] if b > 1 else [False]
        for workers in modes:
            sps = steps_per_second(b, workers, args.steps)
            print(f"B={b} {'workers' if workers else 'serial '}: {sps:8.0f} env steps/s")


if __name__ == "__main__":
    main()
