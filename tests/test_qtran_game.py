"""Known answers over seeds on the one-step matrix game of the QTRAN paper (Son et al. 2019).

The payoff is [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]: the optimum 8 needs both agents
on action 0, and one agent leaving it costs 12. Under the near-uniform data of
epsilon-greedy exploration, additive (VDN) and monotonic (QMIX) joint values cannot
represent the payoff and settle on the safe 0 (as the QTRAN and Weighted QMIX papers
report); QTRAN's unrestricted joint Q and Weighted QMIX's weighting reach the optimum,
and QPLEX does with the authors' matrix-game mixer, whose attention can fit the -12s.
Each case trains seeds 1-5 for 20k steps on the known-answer budget of
tests/test_algorithms.py and counts the seeds whose final greedy return is 8. Minutes
per seed on one CPU core: `make test-all`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marl.config import compose_config
from marl.train import run
from tests.test_algorithms import REPLAY_BUDGET

OPTIMUM = 8.0
SEEDS = (1, 2, 3, 4, 5)
QPLEX_MATRIX = ("algo.modules.mixer.heads=10", "algo.modules.mixer.attention_layers=2")
"""The authors' matrix-game mixer (wjh720/QPLEX qplex.yaml: 10 heads, deeper attention
networks) instead of their SMAC one, the yaml's default."""
SOLVED: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {
    # (algo, settings): (fewest, most) of the 5 seeds whose final greedy return is 8, as
    # measured (vdn 0, qmix 1: seed 4).
    ("vdn", ()): (0, 1),
    ("qmix", ()): (0, 1),
    ("qplex", ()): (0, 1),  # settled on 0 in seeds 1-5 (the literature: seed-dependent)
    ("qplex", QPLEX_MATRIX): (4, 5),  # 5 of 5
    ("qtran", ()): (4, 5),  # base and alt: 5 of 5
    ("ow_qmix", ()): (4, 5),
    ("cw_qmix", ()): (4, 5),
}


def final_greedy_return(algo: str, seed: int, extra: tuple[str, ...], run_dir: Path) -> float:
    settings = [f"algo={algo}", "env=matrix", "env.game=qtran", f"seed={seed}", *REPLAY_BUDGET]
    settings += ["t_max=20000", "test_interval=20000", "test_nepisode=1", "log_interval=20000"]
    settings += ["learner_log_interval=20000", "logger=[jsonl]", *extra]
    run(compose_config(settings), run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["test/return_mean"] for row in rows if "test/return_mean" in row][-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra"), list(SOLVED), ids=[a + ("-matrix_mixer" if e else "") for a, e in SOLVED]
)
def test_seeds_reaching_the_optimum(algo: str, extra: tuple[str, ...], tmp_path: Path) -> None:
    returns = [final_greedy_return(algo, seed, extra, tmp_path / str(seed)) for seed in SEEDS]
    fewest, most = SOLVED[(algo, extra)]
    assert fewest <= sum(r == OPTIMUM for r in returns) <= most, returns
