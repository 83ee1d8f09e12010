#!/usr/bin/env python
"""The least time any framework needs for BenchMARL's work on this CPU: its matrix
products alone, timed here, against BenchMARL's own measured time for the same work.

    python scripts/bench_compute_floor.py
    python scripts/bench_compute_floor.py --threads 1 2 --repeats 7

BenchMARL's VMAS work per iteration (issue 20; `bench_benchmarl.py`'s ``_exact`` rows) is
6,000 frames of vmas/balance (4 agents, 16 observations, 9 actions), then

- QMIX: 1,000 updates, each on 128 sampled transitions: the agent MLP (16 -> 256 -> 256
  -> 9) forward and backward on the 128 x 4 observations, and the target MLP forward on
  the 128 x 4 next observations (TorchRL's QMixerLoss, no double Q);
- MAPPO: 45 epochs x 15 minibatches of 400 frames: the actor MLP forward and backward on
  400 x 4 observations and the critic MLP (64 -> 256 -> 256 -> 1) on 400 states.

Only the matrix products of the MLPs are counted: no mixer, no acting, no env, no
optimiser, no start-up, and the critic on one row per frame (BenchMARL's centralised
critic evaluates it once per agent). So the floor is below what any implementation
needs, and ``best_ratio`` (BenchMARL's measured seconds per iteration over the floor) is
above any speed-up an implementation could show on this machine. Each product is timed
with ``torch.mm`` (the kernel ``nn.Linear`` runs: addmm forward, two mm backward, the
first layer without its input gradient) at the given thread counts, median of
``--repeats``.

A second, higher floor, ``bare_s_per_iteration``: the same passes as a bare PyTorch
training step (``nn.Linear`` and ReLU layers, a squared loss, ``backward``, one fused
Adam step over the trained networks; no framework around it), timed the same way. It
is what eager PyTorch itself costs for the work; ``bare_ratio`` compares BenchMARL's
time with it.

BenchMARL's seconds per iteration come from the newest line of
``results/benchmarl_side_by_side.jsonl`` for the row (whole processes, start-up
included, as that script times them). One JSON line per row and thread count.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import torch

from marl.machine import run_context

RESULTS = Path(__file__).resolve().parent / "results"
SIDE_BY_SIDE = RESULTS / "benchmarl_side_by_side.jsonl"
FRAMES_PER_ITERATION = 6000
AGENTS, OBS, ACTIONS, HIDDEN = 4, 16, 9, 256
ACTOR = (OBS, HIDDEN, HIDDEN, ACTIONS)
CRITIC = (AGENTS * OBS, HIDDEN, HIDDEN, 1)


class Pass(NamedTuple):
    """An MLP of ``widths`` run on ``rows`` rows, ``backward`` or forward only,
    ``times`` times per iteration."""

    widths: tuple[int, ...]
    rows: int
    backward: bool
    times: int


WORK: dict[str, tuple[Pass, ...]] = {
    "qmix": (
        Pass(ACTOR, 128 * AGENTS, backward=True, times=1000),  # live network
        Pass(ACTOR, 128 * AGENTS, backward=False, times=1000),  # target network
    ),
    "mappo": (
        Pass(ACTOR, 400 * AGENTS, backward=True, times=45 * 15),
        Pass(CRITIC, 400, backward=True, times=45 * 15),
    ),
}
ROWS = {"qmix_b60_exact": "qmix", "qmix_b10_exact": "qmix", "mappo_b60_exact": "mappo"}


def products(p: Pass) -> list[tuple[int, int, int]]:
    """The (m, k, n) of every matrix product of one pass: forward x W^T, backward the
    weight gradient g^T x and (past the first layer) the input gradient g W."""
    shapes = []
    for layer, (k, n) in enumerate(zip(p.widths[:-1], p.widths[1:], strict=True)):
        shapes.append((p.rows, k, n))  # forward: (rows, k) @ (k, n)
        if p.backward:
            shapes.append((n, p.rows, k))  # weight gradient: (n, rows) @ (rows, k)
            if layer > 0:
                shapes.append((p.rows, n, k))  # input gradient: (rows, n) @ (n, k)
    return shapes


def time_product(m: int, k: int, n: int, repeats: int) -> float:
    """Median seconds of one (m, k) @ (k, n) float32 product."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    calls = max(1, int(2e8 / (2 * m * k * n)))  # about 0.2 GFLOP a sample
    for _ in range(calls):
        torch.mm(a, b, out=out)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def mlp(widths: tuple[int, ...]) -> torch.nn.Sequential:
    """Linear layers of ``widths`` with ReLU between them."""
    layers: list[torch.nn.Module] = []
    for k, n in itertools.pairwise(widths):
        layers += [torch.nn.Linear(k, n), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def time_bare_step(work: tuple[Pass, ...], repeats: int) -> float:
    """Median seconds of one bare training step: every pass of ``work`` once (forward
    and backward, or forward without gradient), then one Adam step."""
    nets = [mlp(p.widths) for p in work]
    inputs = [torch.randn(p.rows, p.widths[0]) for p in work]
    trained = [q for p, net in zip(work, nets, strict=True) if p.backward for q in net.parameters()]
    optimiser = torch.optim.Adam(trained, lr=1e-4, fused=True)

    def step() -> None:
        optimiser.zero_grad()
        loss = torch.zeros(())
        for p, net, x in zip(work, nets, inputs, strict=True):
            if p.backward:
                loss = loss + net(x).square().mean()
            else:
                with torch.no_grad():
                    net(x)
        loss.backward()
        optimiser.step()

    for _ in range(10):
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            step()
        samples.append((time.perf_counter() - start) / 20)
    return statistics.median(samples)


def benchmarl_seconds_per_iteration(row: str) -> float | None:
    """BenchMARL's measured wall seconds per 6,000-frame iteration (newest line)."""
    if not SIDE_BY_SIDE.exists():
        return None
    lines = [json.loads(s) for s in SIDE_BY_SIDE.read_text().splitlines() if s]
    found = [line for line in lines if line["row"] == row]
    if not found:
        return None
    return FRAMES_PER_ITERATION / found[-1]["benchmarl"]["frames_per_s"]


def floor_row(row: str, threads: int, repeats: int) -> dict:
    """One row's JSON line: its matmul work, timed at ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    work = WORK[ROWS[row]]
    (steps,) = {p.times for p in work}  # every pass runs once per training step
    flops = seconds = 0.0
    try:
        for p in work:
            for m, k, n in products(p):
                flops += p.times * 2 * m * k * n
                seconds += p.times * time_product(m, k, n, repeats)
        bare = steps * time_bare_step(work, repeats)
    finally:
        torch.set_num_threads(before)
    theirs = benchmarl_seconds_per_iteration(row)
    return {
        "row": row,
        "threads": threads,
        "matmul_gflop_per_iteration": round(flops / 1e9, 1),
        "floor_s_per_iteration": round(seconds, 3),
        "gflops": round(flops / seconds / 1e9, 1),
        "bare_s_per_iteration": round(bare, 3),
        "benchmarl_s_per_iteration": None if theirs is None else round(theirs, 2),
        "best_ratio": None if theirs is None else round(theirs / seconds, 2),
        "bare_ratio": None if theirs is None else round(theirs / bare, 2),
        **run_context(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for row in args.rows:
        for threads in args.threads:
            print(json.dumps(floor_row(row, threads, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
