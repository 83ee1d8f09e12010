"""What an update draws and how many updates a rollout brings: ``sample=transitions``
(single steps, for feed-forward agents) and ``updates_per_env_step`` (a replay ratio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import get_class

from marl.config import compose_config
from marl.errors import UsageError
from marl.experiment import Experiment
from marl.validation import validate_config
from tests.conftest import group_options

FEED_FORWARD = ["algo/agent=mlp", "algo.modules.mac.obs_last_action=false", "sample=transitions"]
TINY = ["env=matrix", "batch_size_run=2", "t_max=60", "batch_size=8", "test_nepisode=0"]
TINY += ["logger=[jsonl]"]


def off_policy_algos() -> list[str]:
    """The algos whose learner keeps a replay buffer (all but the actor-critic family)."""
    learners = {a: compose_config([f"algo={a}"]).learner._target_ for a in group_options("algo")}
    return [a for a, target in learners.items() if not get_class(target).on_policy]


@pytest.mark.parametrize("algo", off_policy_algos())
def test_every_off_policy_algo_trains_on_transitions(algo: str, tmp_path: Path) -> None:
    qtran = ["algo.modules.mixer.agent_hidden_dim=0"] if algo == "qtran" else []  # mlp: no h
    cfg = compose_config([f"algo={algo}", *FEED_FORWARD, "learner.td_lambda=0", *qtran, *TINY])
    experiment = Experiment(cfg, tmp_path)
    experiment.train()
    assert experiment.learner.train_steps > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("learner/loss" in row for row in rows)


def test_qmix_on_transitions_solves_the_two_step_game(tmp_path: Path) -> None:
    """Feed-forward QMIX learning from single transitions reaches the optimum 8 (its
    observation carries the step, so no memory is needed) in at least 4 of 5 seeds."""
    solved = []
    for seed in range(1, 6):
        overrides = ["algo=qmix", *FEED_FORWARD, "env=matrix", "env.game=two_step"]
        overrides += ["batch_size_run=1", "batch_size=32", "t_max=1200", f"seed={seed}"]
        overrides += ["test_interval=600", "test_nepisode=4", "logger=[jsonl]"]
        run_dir = tmp_path / str(seed)
        Experiment(compose_config(overrides), run_dir).train()
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        tests = [json.loads(x)["test/return_mean"] for x in lines if "test/return_mean" in x]
        solved.append(tests[-1] == 8.0)
    assert sum(solved) >= 4, solved


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algo=qmix", "sample=transitions"], "feed-forward agents"),
        (["algo=qmix", "algo/agent=mlp", "sample=transitions"], "obs_last_action=false"),
        (["algo=qmix_tuned", *FEED_FORWARD], "one-step targets"),
        (["algo=mappo", *FEED_FORWARD], "off-policy learner"),
        (["algo=mappo", "updates_per_env_step=0.5"], "updates_per_env_step must stay null"),
    ],
)
def test_settings_that_need_whole_episodes_are_refused(overrides: list, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_config(compose_config(overrides))


@pytest.mark.parametrize(("ratio", "t_max"), [(0.25, 400), (1 / 6, 600), (1.5, 100)])
def test_updates_per_env_step_makes_int_t_env_times_ratio_updates(
    ratio: float, t_max: int, tmp_path: Path
) -> None:
    """Two-step matrix episodes, 2 copies: 4 env steps a rollout; the buffer can sample
    after the first, so every update due is made."""
    cfg = compose_config([*TINY, "batch_size=2", f"t_max={t_max}", f"updates_per_env_step={ratio}"])
    experiment = Experiment(cfg, tmp_path)
    experiment.train()
    assert experiment.learner.train_steps == int(round(experiment.t_env * ratio, 6))
