"""Learning tests on tiny tasks with known answers."""

from __future__ import annotations

import json
from pathlib import Path

from marl.config import compose_config
from marl.train import run

TWO_STEP = ["algo=qmix", "env=matrix", "env.game=two_step", "batch_size_run=1"]
TWO_STEP += ["test_interval=1000"]
TWO_STEP += ["test_nepisode=4", "logger=[jsonl]"]


def final_test_return(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["test/return_mean"] for r in rows if "test/return_mean" in r][-1]


def test_qmix_solves_the_two_step_game(tmp_path: Path) -> None:
    """QMIX's greedy return reaches the optimum 8 in at least 4 of 5 seeds (Rashid et al.)."""
    solved = []
    for seed in range(1, 6):
        cfg = compose_config([*TWO_STEP, f"seed={seed}", "t_max=2000"])
        run(cfg, tmp_path / str(seed))
        solved.append(final_test_return(tmp_path / str(seed)) == 8.0)
    assert sum(solved) >= 4, solved
