"""Settings checked at composition: ranges, choices, unknown keys, unset values, and
settings that fail together; each problem is one sentence naming the key."""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path

import pytest

from marl.checkpoint import CheckpointConfig
from marl.config import SCHEMAS, TrainConfig, compose_config
from marl.errors import UsageError
from marl.train import run
from marl.validation import INT64_MAX, check_value, declared_check, validate_config
from tests.conftest import group_options

ALL_SCHEMAS = sorted(
    {TrainConfig, CheckpointConfig, *(s for options in SCHEMAS.values() for s in options.values())},
    key=lambda schema: schema.__name__,
)
ENV_OVERRIDES = {  # the generic adapters need a task
    "gymnasium": ["env.key=lbforaging:Foraging-8x8-2p-2f-v3"],
    "pettingzoo": ["env.module=mpe2", "env.name=simple_spread_v3"],
    "vmas": ["env.scenario=balance"],
}


def refused(*overrides: str) -> str:
    """The message `validate_config` refuses the composed config with."""
    with pytest.raises(UsageError) as info:
        validate_config(compose_config(list(overrides)))
    return str(info.value)


# ---------------------------------------------------------------- what was reported


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learner.gamma=5", "learner.gamma must be in [0, 1], got 5.0."),
        (
            "algo.action_selector.epsilon_start=-3",
            "algo.action_selector.epsilon_start must be in [0, 1], got -3.0.",
        ),
        ("load_step=-5", "load_step must be at least 0 (0 loads the largest), got -5."),
        ("load_step=500", "load_step=500 needs checkpoint_path=<run or checkpoints folder>"),
        ("device=gpu", "device must be cpu, cuda, cuda:<i> or auto, got 'gpu'."),
        ("seed=9999999999999999999", f"seed must be in [0, {INT64_MAX}], got 9999999999999999999."),
        ("seed=18446744073709551616", f"seed must be in [0, {INT64_MAX}]"),  # past torch's 2^64
        ("env=gymnasium", "env.key must be set: env=gymnasium needs env.key=<Gymnasium id>"),
        (
            "+learner.lrr=1",
            "learner.lrr is not a setting of the q_learning learner; did you mean lr?",
        ),
        ("learner.lr=-1", "learner.lr must be greater than 0, got -1.0."),
    ],
)
def test_reported_bad_values_are_one_sentence_naming_the_key(override: str, message: str) -> None:
    assert message in refused(override)


def test_run_refuses_a_bad_value_before_building_anything(make_config, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"learner\.gamma must be in \[0, 1\]"):
        run(make_config("learner.gamma=5"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- good configs pass


@pytest.mark.parametrize("algo", group_options("algo"))
def test_every_algo_validates(algo: str) -> None:
    validate_config(compose_config([f"algo={algo}"]))


@pytest.mark.parametrize("env", group_options("env"))
def test_every_env_validates(env: str) -> None:
    """Validation builds nothing, so envs whose packages are missing validate too."""
    validate_config(compose_config([f"env={env}", *ENV_OVERRIDES.get(env, [])]))


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        *([f"experiment={name}"] for name in group_options("experiment")),
        ["logger=[console,jsonl,wandb]"],
        ["device=auto", "buffer_device=cpu", "learner_threads=null", "learner.compile=default"],
        ["seed=0"],
        [f"seed={INT64_MAX}"],
        ["test_nepisode=0", "checkpoint.keep_last=0", "algo.action_selector.epsilon_anneal_time=0"],
        ["+algo.modules.mac.agent._recursive_=true"],  # Hydra's own keys are allowed in any node
    ],
)
def test_good_configs_validate(overrides: list[str]) -> None:
    validate_config(compose_config(overrides))


# ---------------------------------------------------------------- every setting declares its range


def numeric_fields() -> list[tuple[type, str]]:
    """(schema, field) for every int or float (or Optional) field of every schema."""
    found = []
    for schema in ALL_SCHEMAS:
        hints = typing.get_type_hints(schema)
        for spec in fields(schema):
            types = set(typing.get_args(hints[spec.name])) or {hints[spec.name]}
            if types & {int, float}:
                found.append((schema, spec.name))
    return found


def test_every_numeric_setting_declares_its_range() -> None:
    """A new int or float setting must say what it accepts (`marl.validation.bounds`)."""
    assert len(numeric_fields()) > 40
    undeclared = [
        f"{schema.__name__}.{name}"
        for schema, name in numeric_fields()
        if not declared_check(next(spec for spec in fields(schema) if spec.name == name))
    ]
    assert not undeclared, f"declare bounds(...) or choices(...) for {undeclared}"


@pytest.mark.parametrize("schema", ALL_SCHEMAS, ids=lambda schema: schema.__name__)
def test_every_default_is_within_its_declared_range(schema: type) -> None:
    for spec in fields(schema):
        if isinstance(spec.default, (int, float, str)):
            check_value(f"{schema.__name__}.{spec.name}", spec.default, spec)


# ---------------------------------------------------------------- the kinds of check


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["learner.lr=nan"], "learner.lr must be a finite number, got nan."),
        (["learner.grad_norm_clip=inf"], "learner.grad_norm_clip must be a finite number"),
        (["t_max=18446744073709551616"], f"t_max must fit in 64 bits (at most {INT64_MAX})"),
        (["t_max=0"], "t_max must be at least 1, got 0."),
        (["learner.tau=0"], "learner.tau must be in (0, 1], got 0.0."),
        (["learner.optim_alpha=1"], "learner.optim_alpha must be in [0, 1), got 1.0."),
        (["env=matrix", "env.k=5"], "env.k must be at most 0, got 5.0."),
        (["env=matrix", "env.game=chess"], "env.game must be one of penalty, climbing, two_step"),
        (
            ["algo.modules.mixer.hypernet_layers=3"],
            "algo.modules.mixer.hypernet_layers must be one of 1, 2, got 3.",
        ),
        (["learner.optimizer=sgd"], "learner.optimizer must be one of rmsprop, adam, got 'sgd'."),
        (["learner.compile=fast"], "learner.compile must be null or one of default, reduce-over"),
        (["resume=always"], "resume must be one of auto, never, got 'always'."),
        (["buffer_obs_dtype=int4"], "buffer_obs_dtype must be one of auto, float32, float16, int8"),
        (["buffer_device=gpu"], "buffer_device must be cpu, cuda, cuda:<i> or auto, got 'gpu'."),
        (
            ["checkpoint.save_buffer=some"],
            "checkpoint.save_buffer must be one of latest, all, never",
        ),
        (["checkpoint.keep_last=-1"], "checkpoint.keep_last must be at least 0 (0 keeps all), got"),
        (["runner.sync_every=0"], "runner.sync_every must be at least 1, got 0."),
        (["logger.console.refresh_s=-1"], "logger.console.refresh_s must be at least 0"),
        (["env=sc2", "env.difficulty=B"], "env.difficulty must be one of 1, 2, 3, 4, 5, 6, 7, 8"),
        (["test_nepisode=-1"], "test_nepisode must be at least 0 (0 turns testing off), got -1."),
    ],
)
def test_declared_bounds_and_choices(overrides: list[str], message: str) -> None:
    assert message in refused(*overrides)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+learner.zzz=1", "learner.zzz is not a setting of the q_learning learner; its settings"),
        ("+env.map=3m", "env.map is not a setting of the battle env; did you mean map_name?"),
        (
            "+algo.modules.mac.agent.hidden=8",
            "algo.modules.mac.agent.hidden is not a setting of the rnn agent; did you",
        ),
        ("+algo.nam=x", "algo.nam is not a setting of algo; did you mean name?"),
        ("+checkpoint.keep=1", "checkpoint.keep is not a setting of checkpoint; did you mean"),
        ("+seeds=3", "seeds is not a top-level setting; did you mean seed?"),
        ("+logger.console.refresh=1", "logger.console.refresh is not a setting of the console"),
    ],
)
def test_unknown_keys_added_with_plus_are_named(override: str, message: str) -> None:
    assert message in refused(override)


def test_unset_values_say_what_to_set() -> None:
    assert refused("env=pettingzoo") == (
        "env.module must be set: env=pettingzoo needs env.module=<package>, e.g. env.module=mpe2."
    )
    assert "env.name must be set: env=pettingzoo needs env.name=" in refused(
        "env=pettingzoo", "env.module=mpe2"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["batch_size=64", "buffer_size=32"], "batch_size=64 exceeds buffer_size=32"),
        (["evaluate=true"], "evaluate=true needs checkpoint_path=<run or checkpoints folder>."),
        (["save_replay=true"], "save_replay=true needs checkpoint_path"),
        (["finetune=true"], "finetune=true needs checkpoint_path and trains (no evaluate=true)."),
        (
            ["checkpoint_path=x", "evaluate=true", "test_nepisode=0"],
            "test_nepisode must be at least 1 to evaluate",
        ),
    ],
)
def test_settings_that_fail_together(overrides: list[str], message: str) -> None:
    assert message in refused(*overrides)


def test_load_step_with_a_checkpoint_path_validates() -> None:
    validate_config(compose_config(["checkpoint_path=some/run", "load_step=500"]))
