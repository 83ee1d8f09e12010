"""Structured-config schemas and their registration with Hydra's ConfigStore.

Each component keeps its schema (a dataclass with ``_target_``) beside its
class; this module declares the top-level run settings and stores every schema
under ``schema/<group>/<name>``, where the YAML files in ``conf/`` pull them in
through their defaults lists. A typo'd key or a wrong type then fails at
composition, before anything runs, with Hydra's own message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from marl.checkpoint import CheckpointConfig
from marl.controllers.mac import ControllerConfig
from marl.envs.base import env_task
from marl.envs.battle.env import BattleEnvConfig
from marl.envs.foraging import ForagingEnvConfig
from marl.envs.gymnasium_env import GymnasiumEnvConfig
from marl.envs.matrix import MatrixEnvConfig
from marl.envs.pettingzoo_env import PettingZooEnvConfig
from marl.envs.sc2 import SC2EnvConfig
from marl.envs.vmas_env import VmasEnvConfig
from marl.exploration.epsilon_greedy import EpsilonGreedyConfig
from marl.exploration.softmax import SoftmaxConfig
from marl.learners.actor_critic import ActorCriticConfig
from marl.learners.coma import ComaConfig
from marl.learners.q_learning import QLearnerConfig
from marl.learners.qtran import QTranLearnerConfig
from marl.learners.weighted_q import WeightedQLearnerConfig
from marl.logging.console import ConsoleLoggerConfig
from marl.logging.csv import CsvLoggerConfig
from marl.logging.jsonl import JsonlLoggerConfig
from marl.logging.tensorboard import TensorBoardLoggerConfig
from marl.logging.wandb import WandbLoggerConfig
from marl.modules.agents.mlp import MLPAgentConfig
from marl.modules.agents.rnn import RNNAgentConfig
from marl.modules.critics.central_v import CentralVConfig
from marl.modules.critics.coma import ComaCriticConfig
from marl.modules.mixers.central import CentralMixerConfig
from marl.modules.mixers.qmix import QMixerConfig
from marl.modules.mixers.qplex import QPLEXMixerConfig
from marl.modules.mixers.qtran import QTranMixerConfig
from marl.modules.mixers.vdn import VDNMixerConfig
from marl.runners.autoreset import AutoresetRunnerConfig
from marl.runners.episode import OBS_DTYPES, EpisodeRunnerConfig
from marl.validation import INT64_MAX, bounds, choices, device_name


@dataclass
class AlgoConfig:
    """Schema for `algo/*`: a named composition of networks and exploration."""

    name: str = MISSING
    """Algorithm name, used in run folder names and logs."""
    action_selector: Any = MISSING
    """Exploration / action selection (`_target_` node)."""
    modules: dict[str, Any] = field(default_factory=dict)
    """The networks the learner takes, by name (`mac`, `mixer`, ...; `_target_` nodes, each
    built with the env's info): the learner's constructor says which it needs."""


@dataclass
class TrainConfig:
    """Top-level run settings (`conf/config.yaml`)."""

    seed: int = field(default=1, metadata=bounds(0, INT64_MAX))
    """Seeds every random number generator of the run."""
    t_max: int = field(default=150000, metadata=bounds(1))
    """Environment steps to train for."""
    test_interval: int = field(default=10000, metadata=bounds(1))
    """Env steps between test phases (and progress reports)."""
    test_nepisode: int = field(default=32, metadata=bounds(0, note="0 turns testing off"))
    """Greedy episodes per test phase (and for `evaluate`); 0 turns testing off in training."""
    log_interval: int = field(default=10000, metadata=bounds(1))
    """Env steps between logs of training-episode stats."""
    learner_log_interval: int = field(default=10000, metadata=bounds(1))
    """Env steps between logs of learner stats."""
    save_model: bool = False
    """Save checkpoints under <run dir>/checkpoints/<t_env>/."""
    save_model_interval: int = field(default=50000, metadata=bounds(1))
    """Env steps between checkpoints."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """What checkpoints keep (`save_buffer`) and how many (`keep_last`)."""
    checkpoint_path: str = ""
    """Run folder or checkpoints folder to load from ('' = none)."""
    load_step: int = field(default=0, metadata=bounds(0, note="0 loads the largest"))
    """Checkpoint step to load: 0 = the largest, else the nearest (ties to the smaller)."""
    resume: str = field(default="auto", metadata=choices("auto", "never"))
    """auto: a run folder holding checkpoints continues from its latest | never: new folder."""
    finetune: bool = False
    """With checkpoint_path: start a new run from the saved network weights only."""
    evaluate: bool = False
    """Only evaluate the loaded checkpoint, then exit."""
    save_replay: bool = False
    """Save a replay of the evaluation episodes where the env supports it."""
    device: str = field(default="cpu", metadata=device_name())
    """cpu | cuda | cuda:<i> | auto (cuda when available)."""
    torch_threads: int = field(default=1, metadata=bounds(1))
    """torch intra-op threads for acting; 1 is fastest for one step's tiny tensors on CPU."""
    learner_threads: int | None = field(default=1, metadata=bounds(1))
    """torch intra-op threads during learner updates; null: this job's CPU share, at most 4.
    One by default: two were 1.1-1.4x faster on an idle 2-core VM, up to 12x slower with
    another job on the machine. Never more than the job's CPUs divided by parallel jobs."""
    batch_size_run: int = field(default=8, metadata=bounds(1))
    """Env copies stepped together (episodes per runner batch)."""
    batch_size: int = field(default=32, metadata=bounds(1))
    """Episodes per learner update (transitions with `sample=transitions`)."""
    sample: str = field(default="episodes", metadata=choices("episodes", "transitions"))
    """What an update draws from the buffer: episodes (whole, PyMARL) | transitions
    (single steps with their next step, uniformly over the stored steps, as BenchMARL;
    feed-forward agents without last-action inputs, one-step targets)."""
    updates_per_rollout: int = field(default=1, metadata=bounds(1))
    """Learner updates after each runner batch of `batch_size_run` episodes. PyMARL
    does 1; setting it to `batch_size_run` keeps EPyMARL's one update per episode."""
    updates_per_env_step: float | None = field(default=None, metadata=bounds(0, low_open=True))
    """When set, replaces `updates_per_rollout`: updates by env steps collected (a replay
    ratio; BenchMARL's 1,000 updates per 6,000 frames: 0.16667), so that t_env steps
    bring int(t_env * ratio) updates in all, however long the episodes (less those due
    before the buffer could sample a batch)."""
    buffer_size: int = field(default=5000, metadata=bounds(1))
    """Episodes held by the replay buffer."""
    buffer_obs_dtype: str = field(default="auto", metadata=choices(*OBS_DTYPES))
    """Storage of observations and states: float32 | float16 | int8 (8-bit codes of
    features in [-1, 1]) | auto (int8 for envs with such features: battle, sc2)."""
    buffer_device: str | None = field(default=None, metadata=device_name())
    """Where the replay buffer lives; null: `device` (cpu keeps a big buffer off the GPU)."""
    algo: Any = MISSING
    learner: Any = MISSING
    env: Any = MISSING
    runner: Any = MISSING
    logger: Any = MISSING


SCHEMAS: dict[str, dict[str, type]] = {
    "algo": {"base": AlgoConfig},
    "agent": {"rnn": RNNAgentConfig, "mlp": MLPAgentConfig},
    "controller": {"mac": ControllerConfig},
    "action_selector": {"epsilon_greedy": EpsilonGreedyConfig, "softmax": SoftmaxConfig},
    "mixer": {
        "vdn": VDNMixerConfig,
        "qmix": QMixerConfig,
        "qtran": QTranMixerConfig,
        "qplex": QPLEXMixerConfig,
        "central": CentralMixerConfig,
    },
    "learner": {
        "q_learning": QLearnerConfig,
        "actor_critic": ActorCriticConfig,
        "coma": ComaConfig,
        "qtran": QTranLearnerConfig,
        "weighted_q": WeightedQLearnerConfig,
    },
    "critic": {"central_v": CentralVConfig, "coma": ComaCriticConfig},
    "env": {
        "battle": BattleEnvConfig,
        "matrix": MatrixEnvConfig,
        "foraging": ForagingEnvConfig,
        "gymnasium": GymnasiumEnvConfig,
        "pettingzoo": PettingZooEnvConfig,
        "sc2": SC2EnvConfig,
        "vmas": VmasEnvConfig,
    },
    "runner": {"episode": EpisodeRunnerConfig, "autoreset": AutoresetRunnerConfig},
    "logger": {
        "console": ConsoleLoggerConfig,
        "jsonl": JsonlLoggerConfig,
        "wandb": WandbLoggerConfig,
        "csv": CsvLoggerConfig,
        "tensorboard": TensorBoardLoggerConfig,
    },
}
"""group -> option -> schema, stored as ``schema/<group>/<option>``."""


def env_tag(choice: str, env: DictConfig) -> str:
    """`matrix` + `game=two_step` -> `matrix_two_step`; used in run folder names."""
    task = env_task(env) if isinstance(env, DictConfig) else None
    return f"{choice}_{task}" if task else choice


def register_resolvers() -> None:
    """The interpolations run-folder names use (idempotent)."""
    if not OmegaConf.has_resolver("marl.env_tag"):
        OmegaConf.register_new_resolver("marl.env_tag", env_tag)


def register_configs() -> None:
    """Store the schemas and resolvers Hydra needs; call before composing."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    register_resolvers()


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The config `marl-train <overrides>` would run, for scripts, notebooks and tests."""
    register_configs()
    with initialize_config_module(config_module="marl.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])
