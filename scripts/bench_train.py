#!/usr/bin/env python
"""Training throughput of fixed configs, one JSON line per config.

    python scripts/bench_train.py                     # every named config
    python scripts/bench_train.py --config qmix_two_step --repeats 5
    python scripts/bench_train.py --config qmix_battle_3m_b64 --override device=cuda

For each config it reports the median over ``--repeats`` of:

- ``env_steps_per_s``: env steps per second of the whole training loop
  (acting, buffer, learner updates; tests and checkpoints off);
- ``updates_per_s``: learner updates per second as training makes them, each on a
  batch freshly sampled from the final buffer (sampling included), over ``--updates``
  updates or 30 s (an on-policy update is all its epochs over a rollout);
- ``rollout_steps_per_s``: env steps per second of acting alone (no learning; after
  one untimed batch, which also compiles a compiled env);
- ``peak_rss_mb``: the peak resident memory of the process (each measurement runs
  in a fresh process), and on a GPU ``peak_device_mb``, the most it allocated.

The line also names the torch threads used for acting and for learner updates.

``--override`` adds Hydra overrides to every config (``device=cuda``,
``learner.compile=reduce-overhead``, ...); the JSON line lists them.

Compare numbers only between runs on the same machine; the JSON line names it.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from marl.config import compose_config
from marl.experiment import Experiment
from marl.machine import run_context, synchronize

EPYMARL_QMIX = ["algo=qmix_epymarl"]
"""EPyMARL's QMIX defaults (feed-forward agents, Adam, standardised rewards, no last action).
Like EPyMARL, one update per runner batch: per episode with B=1, per 4 episodes with B=4."""

LBF_B1 = [*EPYMARL_QMIX, "env=lbf", "batch_size_run=1", "t_max=50000"]
LBF_B4 = [*EPYMARL_QMIX, "env=lbf", "batch_size_run=4", "t_max=50000"]
FORAGING_B1 = [*EPYMARL_QMIX, "env=foraging", "batch_size_run=1", "t_max=50000"]
FORAGING_B4 = [*EPYMARL_QMIX, "env=foraging", "batch_size_run=4", "t_max=50000"]
"""The same work on env=foraging, marl's own LBF (lbforaging's game and episodes)."""
BATTLE_3M = ["algo=qmix", "env=battle"]
BATTLE_3S5Z = ["algo=qmix", "env=battle", "env.map_name=3s5z"]
B1 = ["batch_size_run=1", "t_max=20000"]
B8 = ["batch_size_run=8", "t_max=50000"]
B64 = ["batch_size_run=64", "t_max=200000"]

VMAS_BALANCE = ["env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"]
BENCHMARL_MLP = ["algo/agent=mlp", "algo.modules.mac.agent.hidden_dim=256"]
"""BenchMARL's default model: an MLP of two 256-unit layers (Tanh there, ReLU here)."""
BENCHMARL_WORK = {
    "qmix": [
        *("algo=qmix", *BENCHMARL_MLP, "algo.modules.mac.obs_last_action=false"),
        *("sample=transitions", "batch_size=128", "updates_per_env_step=0.16666666666666666"),
        "learner.double_q=false",  # TorchRL's QMixerLoss: the target network's own max
        "learner.optimizer=adam",  # BenchMARL's optimiser for every algorithm
    ],
    "mappo": [
        *("algo=mappo", *BENCHMARL_MLP, "algo.modules.critic.hidden_dim=256"),
        "learner.epochs=45",
    ],
}
"""BenchMARL's work per 6,000 frames: QMIX 1,000 updates of 128 transitions; MAPPO 45
epochs of 15 minibatches of 400 frames (here whole episodes: 15 minibatches of a 60-env
rollout, 3 of each 10-env one)."""

CONFIGS: dict[str, list[str]] = {
    # EPyMARL's reference work: QMIX on LBF 8x8-2p-2f, limit 50, 50k steps, one env / 4 envs.
    "qmix_lbf_epymarl_b1": LBF_B1,
    "qmix_lbf_epymarl_b1_compile": [*LBF_B1, "learner.compile=default"],
    "qmix_lbf_epymarl_b4": LBF_B4,
    "qmix_lbf_epymarl_b4_inproc": [*LBF_B4, "env.workers=false"],
    "qmix_foraging_epymarl_b1": FORAGING_B1,
    "qmix_foraging_epymarl_b4": FORAGING_B4,
    "qmix_battle_3m_b1": [*BATTLE_3M, *B1],
    "qmix_battle_3m_b8": [*BATTLE_3M, *B8],
    "qmix_battle_3m_b64": [*BATTLE_3M, *B64],
    "qmix_battle_3m_b8_compile": [*BATTLE_3M, *B8, "env.compile=true"],
    "qmix_battle_3s5z_b1": [*BATTLE_3S5Z, *B1],
    "qmix_battle_3s5z_b8": [*BATTLE_3S5Z, *B8],
    "qmix_battle_3s5z_b8_compile": [*BATTLE_3S5Z, *B8, "env.compile=true"],
    "qmix_battle_3s5z_b64": [*BATTLE_3S5Z, *B64],
    # MAPPO (on-policy: the buffer holds one rollout): EPyMARL's mappo.yaml runs 10 envs.
    "mappo_lbf_epymarl_b10": ["algo=mappo", "env=lbf", "batch_size_run=10", "t_max=50000"],
    "mappo_battle_3m_b8": ["algo=mappo", "env=battle", *B8],
    "mappo_battle_3s5z_b8": ["algo=mappo", "env=battle", "env.map_name=3s5z", *B8],
    "qmix_two_step": [
        "algo=qmix",
        "env=matrix",
        "env.game=two_step",
        "batch_size_run=1",
        "t_max=5000",
    ],
    "qmix_penalty_25rounds_b8": [
        *("algo=qmix", "env=matrix", "env.game=penalty", "env.rounds=25"),
        *("batch_size_run=8", "t_max=20000"),
    ],
    # BenchMARL's work per iteration on its vmas/balance task (4 agents, 100 steps), 3
    # iterations: 6,000 frames, then QMIX 1,000 updates (here of 2 episodes, 200
    # transitions, for its 128) or MAPPO 45 epochs over the rollout (15 minibatches of 4
    # episodes = its 400 frames; with 10 envs each 1,000-frame rollout gets 45 epochs of
    # 3). scripts/bench_benchmarl.py runs these beside BenchMARL.
    "qmix_vmas_balance_b10": [
        *("algo=qmix", "env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"),
        *("batch_size_run=10", "batch_size=2", "updates_per_rollout=167", "t_max=18000"),
    ],
    "qmix_vmas_balance_b60": [
        *("algo=qmix", "env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"),
        *("batch_size_run=60", "batch_size=2", "updates_per_rollout=1000", "t_max=18000"),
    ],
    "mappo_vmas_balance_b10": [
        *("algo=mappo", "env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"),
        *("batch_size_run=10", "learner.epochs=45", "learner.minibatches=3", "t_max=18000"),
    ],
    "mappo_vmas_balance_b60": [
        *("algo=mappo", "env=vmas", "env.scenario=balance", "+env.kwargs.n_agents=4"),
        *("batch_size_run=60", "learner.epochs=45", "learner.minibatches=15", "t_max=18000"),
    ],
    # The same with BenchMARL's networks (two 256-unit layers) and, for QMIX, its
    # sampling: 128 single transitions per update, 1,000 updates per 6,000 frames however
    # long the episodes, no last-action input (bench_benchmarl.py's `_exact` rows).
    **{
        f"{algo}_vmas_balance_b{n}_exact": [
            *BENCHMARL_WORK[algo],
            *VMAS_BALANCE,
            *(f"batch_size_run={n}", "t_max=18000"),
            *([f"learner.minibatches={-(-n // 4)}"] if algo == "mappo" else []),  # 4 episodes each
        ]
        for algo in ("qmix", "mappo")
        for n in (10, 60)
    },
}
QUIET = ["logger=[jsonl]", "test_nepisode=0", "log_interval=1000000000"]
UPDATE_SECONDS = 30.0
"""At most this long timing updates: an on-policy learner's update is a whole rollout's
epochs x minibatches (675 gradient steps in the BenchMARL MAPPO rows)."""


def measure(overrides: list[str], n_updates: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*overrides, *QUIET])
        experiment = Experiment(cfg, Path(tmp) / "train")
        # Acting alone first (training closes the env at its end); t_env stays 0 after.
        experiment.runner.run(test_mode=False)  # untimed: first-call work and compiling
        synchronize(experiment.device)
        played, start = 0, time.perf_counter()
        while played < 2000:
            _, rollout = experiment.runner.run(test_mode=False)
            played += int(rollout.lengths.sum())
        synchronize(experiment.device)
        rollout_steps_per_s = played / (time.perf_counter() - start)
        experiment.runner.t_env = 0

        start = time.perf_counter()
        experiment.train()
        synchronize(experiment.device)
        train_s = time.perf_counter() - start
        out = {
            "env_steps_per_s": experiment.t_env / train_s,
            "train_wall_s": train_s,
            "t_env": experiment.t_env,
            "updates": experiment.learner.train_steps,
            "rollout_steps_per_s": rollout_steps_per_s,
        }

        experiment.update(stats=False)  # warm-up
        synchronize(experiment.device)
        start, made = time.perf_counter(), 0
        while made < n_updates and time.perf_counter() - start < UPDATE_SECONDS:
            experiment.update(stats=False)
            made += 1
        synchronize(experiment.device)
        out["updates_per_s"] = made / (time.perf_counter() - start)
        out["device"] = str(experiment.device)
        out["threads"] = {
            "acting": experiment.cfg.torch_threads,
            "learner": experiment.learner_threads,
        }
        if experiment.device.type == "cuda":
            out["peak_device_mb"] = torch.cuda.max_memory_allocated(experiment.device) / 2**20
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def measure_in_subprocess(name: str, n_updates: int, overrides: list[str]) -> dict[str, Any]:
    """One measurement in a fresh process, so that peak memory is this config's alone."""
    cmd = [sys.executable, __file__, "--one", name, "--updates", str(n_updates)]
    cmd += [f"--override={override}" for override in overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--override", action="append", default=[], help="Hydra override")
    parser.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child of measure_in_subprocess
        logging.disable(logging.INFO)
        print(json.dumps(measure([*CONFIGS[args.one], *args.override], args.updates)))
        return
    for name in args.config or sorted(CONFIGS):
        runs = [
            measure_in_subprocess(name, args.updates, args.override) for _ in range(args.repeats)
        ]
        keys = ["env_steps_per_s", "updates_per_s", "rollout_steps_per_s", "train_wall_s"]
        keys += [k for k in ("peak_rss_mb", "peak_device_mb") if k in runs[0]]
        medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in keys}
        result = {"config": name, **medians}
        result.update(
            overrides=args.override,
            t_env=runs[0]["t_env"],
            updates=runs[0]["updates"],
            threads=runs[0]["threads"],
            repeats=args.repeats,
            **run_context(runs[0]["device"]),
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
