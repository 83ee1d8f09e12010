"""Every setting checked at composition: ranges, choices, unknown keys, unset values.

Each schema declares what its fields accept in their dataclass metadata, beside the
field and its docstring::

    gamma: float = field(default=0.99, metadata=bounds(0, 1))
    optimizer: str = field(default="rmsprop", metadata=choices("rmsprop", "adam"))

`validate_config` walks a composed config before anything is built: each node made
from a schema (found by its ``_target_``, else by the structured type Hydra merged
it with) has its keys, unset (``???``) values and declared bounds checked, then the
settings that only fail together. The first problem is a `UsageError` whose one
sentence names the full dotted key, the value and what it must be.

This module imports no schema at import time, so that every schema can import the
helpers below without an import cycle.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Iterator
from dataclasses import Field, dataclass, fields, is_dataclass
from functools import cache
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from marl.errors import UsageError

INT64_MAX = 2**63 - 1
"""The largest integer torch and numpy take (an int64); every integer setting must fit."""
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
"""Keys Hydra's `instantiate` reads itself: allowed in any node made from a schema."""

_BOUNDS, _CHOICES, _PATTERN, _REQUIRED = "bounds", "choices", "pattern", "required"


# ---------------------------------------------------------------- declaring a field


@dataclass(frozen=True)
class Bounds:
    """The numbers a setting accepts: ``low``/``high`` (None: unbounded on that side),
    each included unless ``*_open``; ``note`` says what an edge value means."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def violated_by(self, value: float) -> str | None:
        """What ``value`` fails to be (``at least 1``, ``in [0, 1]``), or None if it fits."""
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if not (too_low or too_high):
            return None
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low}, {self.high}{right}"
        if too_low:
            return f"{'greater than' if self.low_open else 'at least'} {self.low}"
        return f"{'less than' if self.high_open else 'at most'} {self.high}"


def bounds(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> dict[str, Any]:
    """Field metadata: a number in [low, high] (open ends with ``low_open``/``high_open``)."""
    return {_BOUNDS: Bounds(low, high, low_open, high_open, note)}


def choices(*options: Any) -> dict[str, Any]:
    """Field metadata: one of ``options`` (null too where the field is optional)."""
    return {_CHOICES: options}


def pattern(regex: str, described: str) -> dict[str, Any]:
    """Field metadata: a string matching ``regex`` in full, ``described`` for people."""
    return {_PATTERN: (re.compile(regex), described)}


def device_name() -> dict[str, Any]:
    """Field metadata: a torch device name marl runs on (`auto`: cuda when available)."""
    return pattern(r"cpu|cuda(:\d+)?|auto", "cpu, cuda, cuda:<i> or auto")


def required(what: str, example: str) -> dict[str, Any]:
    """Field metadata for a ``MISSING`` field: what to set it to, and an example value."""
    return {_REQUIRED: (what, example)}


# ---------------------------------------------------------------- checking a config


def validate_config(cfg: DictConfig) -> None:
    """Raise a one-sentence `UsageError` for the first setting of ``cfg`` that cannot
    work: an unknown or unset key, a value outside its declared range or choices, or
    settings that type-check but cannot work together."""
    for path, node in _nodes(cfg, ""):
        schema = schema_of(node)
        if schema is not None:
            _check_node(path, node, schema)
    _check_run_settings(cfg)


def schema_of(node: DictConfig) -> type | None:
    """The schema ``node`` was composed from: the one registered for its ``_target_``
    (None for a class marl does not register), else its structured type if marl's."""
    by_target, known = _registry()
    if "_target_" in node:
        return by_target.get(node._target_)
    node_type = OmegaConf.get_type(node)
    return node_type if node_type in known else None


def check_value(path: str, value: Any, spec: Field[Any], nullable: bool = False) -> None:
    """``value`` of the setting ``path`` against what field ``spec`` declares."""
    if value is None:
        return  # OmegaConf already refuses null for a field that is not Optional
    meta = spec.metadata
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{path} must be a finite number, got {value}.")
    if _BOUNDS in meta and (broken := meta[_BOUNDS].violated_by(value)) is not None:
        note = f" ({meta[_BOUNDS].note})" if meta[_BOUNDS].note else ""
        raise UsageError(f"{path} must be {broken}{note}, got {value!r}.")
    if isinstance(value, int) and not isinstance(value, bool) and value > INT64_MAX:
        raise UsageError(f"{path} must fit in 64 bits (at most {INT64_MAX}), got {value}.")
    if _CHOICES in meta and value not in meta[_CHOICES]:
        options = ", ".join(str(option) for option in meta[_CHOICES])
        either = "null or one of" if nullable else "one of"
        raise UsageError(f"{path} must be {either} {options}, got {value!r}.")
    if _PATTERN in meta:
        regex, described = meta[_PATTERN]
        if not (isinstance(value, str) and regex.fullmatch(value)):
            raise UsageError(f"{path} must be {described}, got {value!r}.")


def declared_check(spec: Field[Any]) -> bool:
    """Whether field ``spec`` declares what it accepts (bounds, choices or a pattern)."""
    return any(key in spec.metadata for key in (_BOUNDS, _CHOICES, _PATTERN))


def _nodes(node: DictConfig, path: str) -> Iterator[tuple[str, DictConfig]]:
    """``node`` and every dict node below it, with their dotted paths ('' at the top)."""
    yield path, node
    for key in node:
        if OmegaConf.is_missing(node, key):
            continue
        child = node[key]
        if isinstance(child, DictConfig):
            yield from _nodes(child, _join(path, str(key)))


def _check_node(path: str, node: DictConfig, schema: type) -> None:
    """Keys of ``node`` against the fields of its ``schema``, then each value."""
    specs = {spec.name: spec for spec in fields(schema)}
    keys = [str(key) for key in node]  # MISSING values included (`in node` is False for them)
    for key in keys:
        if key not in specs and key not in HYDRA_KEYS:
            raise UsageError(_unknown_key_message(_join(path, key), key, path, schema, specs))
    nullable = nullable_fields(schema)
    for name, spec in specs.items():
        if name not in keys:
            continue
        if OmegaConf.is_missing(node, name):
            raise UsageError(_missing_message(_join(path, name), path, schema, spec))
        check_value(_join(path, name), node[name], spec, name in nullable)


def _unknown_key_message(
    full: str, key: str, path: str, schema: type, specs: dict[str, Field[Any]]
) -> str:
    settings = [name for name in specs if name != "_target_"]
    where = f"a setting of {_describe(schema, path)}" if path else "a top-level setting"
    # A typo, else a shortened name (map -> map_name).
    close = difflib.get_close_matches(key, settings, n=1) or [
        name for name in settings if name.startswith(key)
    ]
    hint = f"did you mean {close[0]}?" if close else f"its settings are {', '.join(settings)}."
    return f"{full} is not {where}; {hint}"


def _missing_message(full: str, path: str, schema: type, spec: Field[Any]) -> str:
    if _REQUIRED not in spec.metadata:
        return f"{full} must be set."
    what, example = spec.metadata[_REQUIRED]
    group, option = _registry_names().get(schema, ("", ""))
    owner = f"{path}={option}" if path == group else _describe(schema, path)
    return f"{full} must be set: {owner} needs {full}=<{what}>, e.g. {full}={example}."


def _describe(schema: type, path: str) -> str:
    """`the q_learning learner`, `the battle env`; a schema without options: its key."""
    group, option = _registry_names().get(schema, ("", ""))
    if group and any(spec.name == "_target_" for spec in fields(schema)):
        return f"the {option} {group.replace('_', ' ')}"
    return path


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@cache
def _registry() -> tuple[dict[str, type], frozenset[type]]:
    """``_target_`` -> schema for every registered schema, and every schema marl declares."""
    # Imported here: the schemas import this module's helpers, and marl.config imports them.
    from marl.checkpoint import CheckpointConfig
    from marl.config import SCHEMAS, TrainConfig

    schemas = [schema for options in SCHEMAS.values() for schema in options.values()]
    by_target = {}
    for schema in schemas:
        target = next((spec.default for spec in fields(schema) if spec.name == "_target_"), None)
        if isinstance(target, str):
            by_target[target] = schema
    return by_target, frozenset([*schemas, TrainConfig, CheckpointConfig])


@cache
def _registry_names() -> dict[type, tuple[str, str]]:
    """schema -> (group, option) under which `marl.config.SCHEMAS` registers it."""
    from marl.config import SCHEMAS

    return {schema: (g, o) for g, options in SCHEMAS.items() for o, schema in options.items()}


@cache
def nullable_fields(schema: type) -> frozenset[str]:
    """The fields of ``schema`` whose type admits None."""
    assert is_dataclass(schema)
    hints = typing.get_type_hints(schema)
    return frozenset(
        spec.name for spec in fields(schema) if type(None) in typing.get_args(hints[spec.name])
    )


# ---------------------------------------------------------------- settings that fail together


def _check_transition_sampling(cfg: DictConfig) -> None:
    """``sample=transitions`` trains on single steps: what needs whole episodes cannot."""
    learner: Any = get_class(cfg.learner._target_)
    if learner.on_policy:
        raise UsageError(
            f"sample=transitions needs an off-policy learner; {cfg.learner._target_} trains "
            "on each rollout whole (use sample=episodes)."
        )
    mac = cfg.algo.modules.get("mac")
    agent: Any = None if mac is None else get_class(mac.agent._target_)  # an Agent class
    if agent is not None and agent.recurrent:
        raise UsageError(
            "sample=transitions needs feed-forward agents (algo/agent=mlp): a recurrent "
            "agent's hidden state comes from the steps before."
        )
    if mac is not None and mac.get("obs_last_action"):
        raise UsageError(
            "sample=transitions needs algo.modules.mac.obs_last_action=false: a sampled "
            "step does not carry the action before it."
        )
    if cfg.learner.get("td_lambda", 0):
        raise UsageError(
            f"sample=transitions needs one-step targets (learner.td_lambda=0, got "
            f"{cfg.learner.td_lambda}): TD(lambda) returns need the rest of the episode."
        )


def _check_run_settings(cfg: DictConfig) -> None:
    """Top-level settings that are each in range but cannot work together."""
    evaluating = bool(cfg.evaluate or cfg.save_replay)
    if evaluating and not cfg.checkpoint_path:
        flag = "evaluate" if cfg.evaluate else "save_replay"
        raise UsageError(f"{flag}=true needs checkpoint_path=<run or checkpoints folder>.")
    if cfg.finetune and (evaluating or not cfg.checkpoint_path):
        raise UsageError("finetune=true needs checkpoint_path and trains (no evaluate=true).")
    if cfg.load_step > 0 and not cfg.checkpoint_path:
        raise UsageError(
            f"load_step={cfg.load_step} needs checkpoint_path=<run or checkpoints folder>: "
            "it picks the checkpoint to load from there."
        )
    if cfg.sample == "transitions":
        _check_transition_sampling(cfg)
    elif cfg.batch_size > cfg.buffer_size:
        raise UsageError(
            f"batch_size={cfg.batch_size} exceeds buffer_size={cfg.buffer_size}; "
            "the learner could never sample."
        )
    learner: Any = get_class(cfg.learner._target_)  # a Learner class (marl.learners.common)
    runner: Any = get_class(cfg.runner._target_)
    if learner.on_policy and not getattr(runner, "on_policy_ok", True):
        raise UsageError(
            f"learner {cfg.learner._target_} is on-policy, and {runner.__name__} hands over "
            "episodes begun before the last update (partly played by an older policy); use "
            "runner=episode."
        )
    if learner.on_policy and cfg.updates_per_env_step is not None:
        raise UsageError(
            f"learner {cfg.learner._target_} is on-policy: it trains once on each rollout, so "
            "updates_per_env_step must stay null."
        )
    sizes = (cfg.batch_size, cfg.buffer_size, cfg.updates_per_rollout)
    if learner.on_policy and sizes != (cfg.batch_size_run, cfg.batch_size_run, 1):
        raise UsageError(
            f"learner {cfg.learner._target_} is on-policy: it trains once on each rollout, so "
            f"batch_size and buffer_size must equal batch_size_run={cfg.batch_size_run} and "
            f"updates_per_rollout must be 1, got batch_size={cfg.batch_size}, "
            f"buffer_size={cfg.buffer_size}, updates_per_rollout={cfg.updates_per_rollout}."
        )
    if evaluating and cfg.test_nepisode < 1:
        raise UsageError(
            f"test_nepisode must be at least 1 to evaluate (0 turns testing off in training), "
            f"got {cfg.test_nepisode}."
        )
