"""Config composition: every algo x env pair builds; schemas reject bad overrides."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from marl.config import SCHEMAS, TrainConfig, compose_config, env_tag
from marl.experiment import Experiment
from tests.conftest import group_options

ALGOS = group_options("algo")
ENVS = group_options("env")
ENV_PACKAGES = {  # env option -> the optional package it needs
    "gymnasium": "lbforaging",
    "lbf": "lbforaging",
    "rware": "rware",
    "pettingzoo": "mpe2",
    "mpe": "mpe2",
    "vmas": "vmas",
}
ENV_OVERRIDES = {  # the generic adapters need a task
    "gymnasium": ["env.key=lbforaging:Foraging-8x8-2p-2f-v3", "env.time_limit=50"],
    "pettingzoo": ["env.module=mpe2", "env.name=simple_spread_v3", "env.time_limit=25"],
    "vmas": ["env.scenario=balance"],
}


def algo_env_pairs() -> list[Any]:
    """Every algo on the matrix game, and every env with one value-based and one on-policy
    algo (every pair would cost minutes of CI for what these cover); skipped where the
    env's optional package is not installed."""
    pairs = []
    covering = [(algo, "matrix") for algo in ALGOS]
    covering += [(algo, env) for algo, env in itertools.product(("qmix", "mappo"), ENVS)]
    for algo, env in dict.fromkeys(covering):
        if env == "sc2":  # tests/envs/test_sc2.py runs the adapter over the battle simulator
            pairs.append(pytest.param(algo, env, marks=pytest.mark.skip("needs StarCraft II")))
            continue
        package = ENV_PACKAGES.get(env)
        missing = package is not None and importlib.util.find_spec(package) is None
        skip = pytest.mark.skipif(missing, reason=f"env={env} needs {package}")
        pairs.append(pytest.param(algo, env, marks=skip))
    return pairs


def test_groups_have_options() -> None:
    assert {"iql", "vdn", "qmix"} <= set(ALGOS)
    assert "matrix" in ENVS
    for group in ("learner", "runner", "logger"):
        assert group_options(group), group


@pytest.mark.parametrize(("algo", "env"), algo_env_pairs())
def test_every_algo_env_pair_composes_and_builds(algo: str, env: str, tmp_path: Path) -> None:
    cfg = compose_config([f"algo={algo}", f"env={env}", *ENV_OVERRIDES.get(env, [])])
    assert cfg.algo.name == algo
    experiment = Experiment(cfg, tmp_path)
    assert experiment.env_info.n_agents >= 1
    assert set(experiment.modules) == set(cfg.algo.modules) == set(experiment.learner.networks())
    batch, _ = experiment.runner.run(test_mode=False)
    assert batch.max_t_filled() >= 2


@pytest.mark.parametrize("preset", group_options("experiment"))
def test_every_experiment_preset_composes_builds_and_trains(preset: str, tmp_path: Path) -> None:
    """A recipe sets its algo and env; one short run goes through its whole loop."""
    cfg = compose_config([f"experiment={preset}", "t_max=300", "batch_size=2"])
    experiment = Experiment(cfg, tmp_path)
    experiment.train()
    assert experiment.t_env >= 300 and experiment.learner.train_steps >= 1


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("algo.lrr=1", ConfigCompositionException),  # typo'd key
        ("learner.lrr=1", ConfigCompositionException),
        ("env.gamee=1", ConfigCompositionException),
        ("t_max=abc", ConfigCompositionException),  # wrong type
        ("learner.double_q=maybe", ConfigCompositionException),
        ("algo=nope", MissingConfigException),  # unknown group option
        ("env=nope", MissingConfigException),
    ],
)
def test_bad_overrides_fail_at_composition(override: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        compose_config([override])
    if error is ConfigCompositionException:
        assert isinstance(
            info.value.__cause__, ConfigAttributeError | ConfigKeyError | ValidationError
        )


def test_every_group_option_has_a_schema() -> None:
    """Each yaml in a schema'd group pulls its schema, so its keys are typed."""
    for group in ("learner", "env", "runner"):
        for option in group_options(group):
            cfg = compose_config([f"{group}={option}"])
            assert cfg[group]._metadata.object_type in SCHEMAS[group].values(), (group, option)
    # algo/agent: one yaml per agent schema, selectable from the command line
    assert group_options("algo/agent") == sorted(SCHEMAS["agent"])
    for option in group_options("algo/agent"):
        cfg = compose_config([f"algo/agent={option}"])
        assert cfg.algo.modules.mac.agent._metadata.object_type is SCHEMAS["agent"][option]


def test_env_tag_names_the_task() -> None:
    cfg = compose_config(["env=matrix", "env.game=climbing"])
    assert env_tag("matrix", cfg.env) == "matrix_climbing"


def test_an_algo_yaml_sets_run_sizes_and_the_command_line_beats_it(tmp_path: Path) -> None:
    """Run sizes come from TrainConfig, then the algo yaml, then the command line."""
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "big_batches.yaml").write_text(
        "# @package _global_\ndefaults:\n  - qmix\n  - _self_\n"
        "algo:\n  name: big_batches\nbatch_size: 64\nbuffer_size: 640\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    assert compose_config([]).batch_size == TrainConfig.batch_size
    cfg = compose_config([searchpath, "algo=big_batches"])
    assert (cfg.algo.name, cfg.batch_size, cfg.buffer_size) == ("big_batches", 64, 640)
    cfg = compose_config([searchpath, "algo=big_batches", "batch_size=16"])
    assert (cfg.batch_size, cfg.buffer_size) == (16, 640)
