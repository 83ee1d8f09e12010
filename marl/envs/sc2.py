"""StarCraft II through SMAC (``env=sc2``): PyMARL's ``sc2`` env as a `BatchedEnv`.

``env=sc2 env.map_name=3m`` plays ``smac.env.StarCraft2Env`` (the StarCraft
Multi-Agent Challenge) with PyMARL's ``sc2`` env_args, one SC2 game per env copy:
in this process for ``batch_size_run=1`` (or ``workers: false``), one worker
process per copy otherwise (`marl.envs.workers`). ``env=battle`` is the built-in
approximation with the same API; only this env gives SMAC results.

Translation (`SMACSingleEnv`, tested over `BattleSMACEnv`, which speaks SMAC's API):

- ``reset() -> (obs, state)``; the observations, state and masks are read with
  ``get_obs()`` (N lists of O floats -> (N, O) float32), ``get_state()`` ((S,))
  and ``get_avail_actions()`` (N lists of A 0/1 ints -> (N, A) bool).
- ``step(list of N ints) -> (reward, terminated, info)``: ``info["episode_limit"]``,
  which SMAC sets only on a timeout with ``continuing_episode``, becomes the
  truncation flag (bootstrapped); without ``continuing_episode`` a timeout is a
  termination, as in PyMARL. ``battle_won``, ``dead_allies``, ``dead_enemies`` and
  any other numeric info pass through to the step info.
- Seeding: SMAC seeds the game once, when it launches SC2 at the first reset, and
  its ``reset()`` takes no seed. Copy i is launched with the first episode seed of
  its generator (seeded ``seed + i``, see `marl.envs.workers`), so the copies
  differ and a seed names the same games; later episodes follow the game's own
  random stream, so a resumed run is not the exact continuation of a stopped one.

Replays (``save_replay=true``): `SC2Env.save_replay` has every copy's SMAC env save
its replay (``<prefix>_<timestamp>.SC2Replay``, all episodes since its game
launched) into the run's folder unless ``replay_dir`` is set. Worker processes
also answer a ``call`` command for this (and for the version), which must run in
the process that holds the game.

The default map is PyMARL's (``3m``; SMAC's own default is ``8m``).

Versions: the SMAC paper used SC2.4.6.2 (build 69232); PyMARL's ``install_sc2.sh``
fetches SC2.4.10 (build 75689), and results are not always comparable between
the two. The env logs the version it runs (`SC2Env.sc2_version`,
``smac_env_info()["sc2_version"]``): report it with every result.

Install: ``make install-smac`` (``scripts/install_smac.sh``) installs ``smac``
from git and ``pysc2`` without their pins (SMAC pins ``protobuf<3.21``, which
breaks wandb); this module sets ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``
before importing them unless the user set it. Without ``smac``, with PyPI's
unrelated ``smac`` (SMAC3, the same import name), without StarCraft II or its
SMAC maps, or with an unknown map, building the env raises a one-sentence
`UsageError` that says what is missing and how to install it.

Shapes: B env copies, N agents, A actions, O obs size, S state size.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from marl.envs.base import EnvInfo
from marl.envs.smac_args import SMACArgs
from marl.envs.workers import (
    BatchedSingleEnv,
    SerialBatchedEnv,
    WorkerBatchedEnv,
)
from marl.errors import UsageError
from marl.validation import choices

log = logging.getLogger(__name__)

SMAC_MODULE = "smac.env.starcraft2.starcraft2"
"""Where SMAC's StarCraft2Env lives; SMAC3 (PyPI's ``smac``) has no ``smac.env``."""
PROTOBUF_ENV = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
INSTALL = "make install-smac"
SC2_DEFAULT_PATH = "~/StarCraftII"  # pysc2's Linux default when SC2PATH is unset
SC2_DOWNLOAD = "https://blzdistsc2-a.akamaihd.net/Linux/"  # SC2.4.10.zip, SC2.4.6.2.69232.zip
SMAC_MAPS_URL = "https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip"
KNOWN_BUILDS = {69232: "4.6.2", 75689: "4.10.0"}
"""SC2 builds of the SMAC paper (4.6.2) and of PyMARL's install script (4.10)."""


@dataclass
class SC2EnvConfig(SMACArgs):
    """Schema for `env=sc2`: PyMARL's `sc2` env_args, passed to SMAC's StarCraft2Env."""

    _target_: str = "marl.envs.sc2.SC2Env"
    difficulty: str = field(default="7", metadata=choices(*"123456789A"))
    """Built-in AI level of the enemy, "1" (very easy) to "A" (cheat insane); SMAC uses "7"."""
    game_version: str | None = None
    """SC2 version to run, e.g. "4.6.2" (null: the newest under $SC2PATH/Versions)."""
    heuristic_ai: bool = False
    """SMAC's scripted agents play instead of the learned ones (a baseline)."""
    heuristic_rest: bool = False
    replay_dir: str = ""
    """Where `save_replay` writes, relative to $SC2PATH/Replays ("" with save_replay=true:
    the run's replays/ folder)."""
    replay_prefix: str = ""
    """Replay file name prefix ("": the map name)."""
    debug: bool = False
    """SMAC logs observations, actions and rewards."""
    workers: bool = True
    """Run B > 1 copies (one SC2 game each) in worker processes."""


SMAC_SETTINGS = tuple(f.name for f in fields(SC2EnvConfig) if f.name not in ("_target_", "workers"))
"""The settings passed on to StarCraft2Env (every PyMARL env_arg but `seed`)."""
SMAC_DEFAULTS = {f.name: f.default for f in fields(SC2EnvConfig) if f.name in SMAC_SETTINGS}


class SMACAPIEnv(Protocol):
    """The part of SMAC's single-env API (``StarCraft2Env``, `BattleSMACEnv`) used here."""

    def reset(self) -> Any: ...

    def step(self, actions: list[int]) -> tuple[Any, Any, Any]: ...

    def get_obs(self) -> Sequence[Any]: ...

    def get_state(self) -> Any: ...

    def get_avail_actions(self) -> Sequence[Sequence[int]]: ...

    def get_env_info(self) -> dict[str, Any]: ...

    def save_replay(self) -> Any: ...

    def close(self) -> None: ...


SMACFactory = Callable[..., SMACAPIEnv]
"""Builds one SMAC-API env from a keyword ``seed``; picklable (a module-level
function or class, or a ``functools.partial`` of one)."""


# -- finding smac and StarCraft II -------------------------------------------------------------


def protobuf_python() -> str:
    """Set ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` unless the user set it; its value.

    SC2's protocol files (s2clientprotocol) were generated for protobuf < 3.21,
    which SMAC pins and wandb cannot use; newer protobufs load them only with
    their pure-Python implementation, chosen when protobuf is first imported.
    """
    return os.environ.setdefault(PROTOBUF_ENV, "python")


def import_smac() -> type:
    """SMAC's ``StarCraft2Env`` class, or a one-sentence `UsageError` saying what is missing."""
    protobuf_python()
    try:
        smac = importlib.import_module("smac")
    except ImportError as err:
        raise UsageError(
            "env=sc2 needs the StarCraft Multi-Agent Challenge package `smac`, which is not "
            f"installed: {INSTALL} (it installs smac from git and pysc2 without their "
            "protobuf<3.21 pin), then install StarCraft II as it prints."
        ) from err
    try:
        module = importlib.import_module(SMAC_MODULE)
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        if missing.split(".")[0] == "smac":
            version = getattr(smac, "__version__", "unknown version")
            raise UsageError(
                f"the `smac` installed ({version}, in {_location(smac)}) is SMAC3 "
                "(hyperparameter optimisation), not the StarCraft Multi-Agent Challenge: "
                f"{INSTALL} (it replaces it; both import as smac)."
            ) from err
        raise UsageError(
            f"env=sc2: smac is installed but its dependency {missing or 'import'} is missing "
            f"({err}): {INSTALL}."
        ) from err
    except TypeError as err:  # protobuf's C implementation refusing SC2's old _pb2 files
        raise UsageError(
            f"env=sc2 cannot import smac with {PROTOBUF_ENV}={os.environ.get(PROTOBUF_ENV)} "
            f"({err}): set {PROTOBUF_ENV}=python before starting (and before protobuf is "
            "imported)."
        ) from err
    absl_flags_parsed()
    return cast(type, module.StarCraft2Env)


def absl_flags_parsed() -> None:
    """Let pysc2 read its ``--sc2_*`` absl flags at their defaults.

    pysc2 reads them when SMAC launches the game, and absl refuses before the
    command line was parsed (``UnparsedFlagAccessError``, outside ``absl.app``);
    marl's command line is Hydra's, so the flags are marked parsed as they are.
    """
    try:
        from absl import flags
    except ImportError:  # smac imports absl; nothing to do without it
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _location(module: Any) -> str:
    """The folder a module was imported from (for messages)."""
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
    return str(Path(where).parent) if where else "an unknown place"


def sc2_path() -> Path:
    """Where pysc2 looks for StarCraft II: ``$SC2PATH``, default ``~/StarCraftII``."""
    return Path(os.path.expanduser(os.environ.get("SC2PATH", SC2_DEFAULT_PATH)))


def _describe_sc2_path() -> str:
    path = sc2_path()
    if "SC2PATH" in os.environ:
        return f"SC2PATH={path}"
    return f"SC2PATH is not set, so SMAC looks in {SC2_DEFAULT_PATH} ({path})"


def installed_builds(path: Path | None = None) -> list[int]:
    """The SC2 builds under ``<SC2PATH>/Versions`` (folders ``Base<build>``), ascending."""
    versions = (path or sc2_path()) / "Versions"
    if not versions.is_dir():
        return []
    builds = [re.fullmatch(r"Base(\d+)", p.name) for p in versions.iterdir() if p.is_dir()]
    return sorted(int(m.group(1)) for m in builds if m)


def build_version(build: int) -> str:
    """An SC2 build number as its version ("75689" -> "4.10.0"), via pysc2 when present."""
    if build in KNOWN_BUILDS:
        return KNOWN_BUILDS[build]
    try:
        from pysc2.run_configs import lib

        for version in lib.VERSIONS.values():
            if version.build_version == build:
                return str(version.game_version)
    except Exception:  # pysc2 missing or changed: the build number still says it
        pass
    return f"build {build}"


def sc2_version(env: Any = None) -> str | None:
    """The SC2 version a SMAC env runs, or would run; None when no SC2 is found.

    From the running game when it launched (``env._run_config.version``, the
    ``game_version`` it was asked for otherwise), else from the newest
    ``Base<build>`` folder under ``$SC2PATH/Versions`` (what ``game_version=None``
    launches).
    """
    run_config = getattr(env, "_run_config", None)
    version = getattr(run_config, "version", None)
    if version is not None:
        name = getattr(version, "game_version", None)
        build = getattr(version, "build_version", None)
        if name and name != "latest":
            return str(name)
        if build:
            return build_version(int(build))
    wanted = getattr(env, "game_version", None)
    if wanted:
        return str(wanted)
    builds = installed_builds()
    return build_version(builds[-1]) if builds else None


def _game_error(err: Exception, map_name: str) -> UsageError | None:
    """SMAC's errors for a missing game, map or version as one sentence (None: not one)."""
    text = str(err)
    if type(err).__name__ == "SC2LaunchError":  # pysc2.lib.sc_process: the game would not start
        return UsageError(
            f"env=sc2 could not start StarCraft II ({_describe_sc2_path()}): {text.rstrip('.')}."
        )
    if isinstance(err, ValueError) and "Unknown game version" in text:
        return UsageError(
            f"env.game_version is not an SC2 version pysc2 can run ({text}); use null for the "
            f"newest one installed ({_describe_sc2_path()})."
        )
    if isinstance(err, FileNotFoundError | ValueError) and (
        "Maps" in text or "Maps" in str(getattr(err, "filename", ""))
    ):
        return UsageError(
            f"env=sc2 found no SMAC map {map_name} for StarCraft II ({text.rstrip('.')}): unzip "
            f"{SMAC_MAPS_URL} into {sc2_path() / 'Maps'} (it holds SMAC_Maps/)."
        )
    if isinstance(err, FileNotFoundError):
        missing = err.filename or text
        return UsageError(
            f"env=sc2 needs StarCraft II, which is not where SMAC looks ({_describe_sc2_path()}: "
            f"{missing} does not exist): unzip SC2.4.10.zip (PyMARL's version; "
            f"SC2.4.6.2.69232.zip is the SMAC paper's) from {SC2_DOWNLOAD} with password "
            "iagreetotheeula into that folder or set SC2PATH to the game, then add the SMAC "
            "maps (scripts/install_smac.sh prints every step)."
        )
    return None


def smac_kwargs(cls: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings ``cls`` (a StarCraft2Env) accepts; an older SMAC lacking one that is not
    at its default is a `UsageError`."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return dict(settings)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(settings)
    out = {}
    for key, value in settings.items():
        if key in params:
            out[key] = value
        elif value != SMAC_DEFAULTS.get(key, value):
            raise UsageError(
                f"env.{key}={value!r} needs a newer smac (this StarCraft2Env has no {key}): "
                f"{INSTALL}."
            )
    return out


def starcraft2_env(seed: int, **settings: Any) -> SMACAPIEnv:
    """``smac.env.StarCraft2Env(**settings, seed=seed)``; an unknown map is a `UsageError`."""
    cls = import_smac()
    kwargs = smac_kwargs(cls, settings)
    map_name = settings.get("map_name")
    try:
        return cast(SMACAPIEnv, cls(**kwargs, seed=seed))
    except KeyError as err:
        if err.args and err.args[0] == map_name:
            raise UsageError(
                f"env.map_name={map_name!r} is not a SMAC map: `python -m smac.bin.map_list` "
                "lists them (SMACv2's maps need the smacv2 package)."
            ) from err
        raise


# -- one copy ---------------------------------------------------------------------------------


class SMACSingleEnv:
    """One SMAC-API env (SMAC's StarCraft2Env, `BattleSMACEnv`) behind `SingleEnv`.

    ``make(seed=...)`` builds the SMAC-API env. It is built once with seed 0 to
    describe itself (SMAC does not start SC2 for that), and rebuilt with the
    first episode seed just before its first reset, which launches the game.
    """

    def __init__(self, make: SMACFactory, map_name: str = "") -> None:
        self._make = make
        self._env: SMACAPIEnv = make(seed=0)
        self._launched = False
        self.map_name = map_name or str(getattr(self._env, "map_name", ""))
        self._prefix = str(getattr(self._env, "replay_prefix", "") or "")
        self._replay_dir = str(getattr(self._env, "replay_dir", "") or "")  # the user's
        raw = self._env.get_env_info()
        self._info = EnvInfo(
            n_agents=int(raw["n_agents"]),
            n_actions=int(raw["n_actions"]),
            obs_shape=int(raw["obs_shape"]),
            state_shape=int(raw["state_shape"]),
            episode_limit=int(raw["episode_limit"]),
            unit_range=True,  # SMAC normalises every feature
        )

    @property
    def env_info(self) -> EnvInfo:
        return self._info

    @property
    def smac_env(self) -> SMACAPIEnv:
        """The SMAC-API env this copy drives."""
        return self._env

    def reset(self, seed: int) -> None:
        """Start an episode; the first one launches the game seeded with ``seed``."""
        if not self._launched:
            self._env.close()
            self._env = self._make(seed=seed)
        try:
            self._env.reset()
        except Exception as err:
            usage = _game_error(err, self.map_name)
            if usage is None:
                raise
            raise usage from err
        self._launched = True

    def obs(self) -> np.ndarray:
        """Per-agent observations, (N, O) float32 (dead agents see zeros, as SMAC)."""
        rows = [np.asarray(o, dtype=np.float32).reshape(-1) for o in self._env.get_obs()]
        return np.stack(rows)  # (N, O)

    def state(self) -> np.ndarray:
        """Global state, (S,) float32."""
        return np.asarray(self._env.get_state(), dtype=np.float32).reshape(-1)  # (S,)

    def avail_actions(self) -> np.ndarray:
        """Available-action masks, (N, A) bool."""
        return np.asarray(self._env.get_avail_actions(), dtype=bool)  # (N, A)

    def step(self, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
        """Apply actions (N,): (reward, terminated, truncated, info); see the module doc."""
        reward, terminated, info = self._env.step([int(a) for a in actions])
        out = dict(info or {})
        truncated = bool(out.pop("episode_limit", False))
        return float(reward), bool(terminated) and not truncated, truncated, out

    def sc2_version(self) -> str | None:
        """The SC2 version this copy runs (see `sc2_version`)."""
        return sc2_version(self._env)

    def smac_env_info(self) -> dict[str, Any]:
        """SMAC's ``get_env_info()`` dict plus ``sc2_version``."""
        info = dict(self._env.get_env_info())
        info["sc2_version"] = self.sc2_version()
        return info

    def save_replay(self, directory: str, index: int | None = None) -> list[Path]:
        """Have SMAC save its replay; the files it wrote (as far as they can be found).

        With no ``replay_dir`` of the user's, SMAC writes into ``directory``; copy
        ``index`` of a batch names its file ``<prefix>_env<index>_<timestamp>`` so
        that copies saving in the same second do not overwrite each other.
        """
        env: Any = self._env
        env.replay_dir = self._replay_dir or str(Path(directory).resolve())
        base = self._prefix or self.map_name
        env.replay_prefix = f"{base}_env{index}" if index is not None else self._prefix
        ours = f"{env.replay_prefix or self.map_name}_"  # other copies save into this folder too
        folder = self._replay_folder()
        before = _replays(folder)
        started = time.time()
        try:
            written = env.save_replay()
        finally:
            env.replay_prefix = self._prefix
        if isinstance(written, list | tuple):
            return [Path(p) for p in written]
        if isinstance(written, str | os.PathLike):
            return [Path(written)]
        after = _replays(folder)
        fresh = (
            p
            for p, mtime in after.items()
            if p.name.startswith(ours) and mtime >= started - 1 and before.get(p) != mtime
        )
        return sorted(fresh)  # this copy's files, new or rewritten since the call started

    def _replay_folder(self) -> Path:
        """Where SMAC writes replays: replay_dir, relative to SC2's Replays folder."""
        env: Any = self._env
        replay_dir = Path(os.path.expanduser(str(getattr(env, "replay_dir", "") or "")))
        if replay_dir.is_absolute():
            return replay_dir
        run_config = getattr(env, "_run_config", None)
        replays = getattr(run_config, "replay_dir", None) or sc2_path() / "Replays"
        return Path(replays) / replay_dir

    def close(self) -> None:
        self._env.close()


def _replays(folder: Path) -> dict[Path, float]:
    """The SC2 replays in ``folder`` and their modification times."""
    if not folder.is_dir():
        return {}
    return {p: p.stat().st_mtime for p in folder.glob("*.SC2Replay")}


class SC2Env(BatchedSingleEnv):
    """B copies of SMAC's StarCraft2Env (see the module doc); a `ReplayEnv`.

    ``make`` builds one SMAC-API env from a ``seed`` keyword; by default SMAC's
    StarCraft2Env with these settings. Tests pass the battle simulator's
    `BattleSMACEnv`, which speaks the same API, to run this translation end to end.
    """

    def __init__(
        self,
        map_name: str = SC2EnvConfig.map_name,
        difficulty: str = SC2EnvConfig.difficulty,
        step_mul: int = SC2EnvConfig.step_mul,
        move_amount: float = SC2EnvConfig.move_amount,
        continuing_episode: bool = SC2EnvConfig.continuing_episode,
        game_version: str | None = SC2EnvConfig.game_version,
        reward_sparse: bool = SC2EnvConfig.reward_sparse,
        reward_only_positive: bool = SC2EnvConfig.reward_only_positive,
        reward_death_value: float = SC2EnvConfig.reward_death_value,
        reward_win: float = SC2EnvConfig.reward_win,
        reward_defeat: float = SC2EnvConfig.reward_defeat,
        reward_negative_scale: float = SC2EnvConfig.reward_negative_scale,
        reward_scale: bool = SC2EnvConfig.reward_scale,
        reward_scale_rate: float = SC2EnvConfig.reward_scale_rate,
        obs_all_health: bool = SC2EnvConfig.obs_all_health,
        obs_own_health: bool = SC2EnvConfig.obs_own_health,
        obs_last_action: bool = SC2EnvConfig.obs_last_action,
        obs_pathing_grid: bool = SC2EnvConfig.obs_pathing_grid,
        obs_terrain_height: bool = SC2EnvConfig.obs_terrain_height,
        obs_instead_of_state: bool = SC2EnvConfig.obs_instead_of_state,
        obs_timestep_number: bool = SC2EnvConfig.obs_timestep_number,
        state_last_action: bool = SC2EnvConfig.state_last_action,
        state_timestep_number: bool = SC2EnvConfig.state_timestep_number,
        heuristic_ai: bool = SC2EnvConfig.heuristic_ai,
        heuristic_rest: bool = SC2EnvConfig.heuristic_rest,
        replay_dir: str = SC2EnvConfig.replay_dir,
        replay_prefix: str = SC2EnvConfig.replay_prefix,
        debug: bool = SC2EnvConfig.debug,
        workers: bool = SC2EnvConfig.workers,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
        make: SMACFactory | None = None,
    ) -> None:
        settings = {k: v for k, v in locals().items() if k in SMAC_SETTINGS}
        if make is None:
            import_smac()  # fail here, in one sentence, before any worker starts
            make = functools.partial(starcraft2_env, **settings)
        self.map_name = map_name
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.recording = False
        factory = functools.partial(SMACSingleEnv, make=make, map_name=map_name)
        backend = WorkerBatchedEnv if workers and batch_size > 1 else SerialBatchedEnv
        self.env: SerialBatchedEnv | WorkerBatchedEnv
        self.env = backend(factory, batch_size=batch_size, seed=seed, device=device)
        log.info(
            "env=sc2 %s runs StarCraft II %s (SMAC results differ between 4.6.2 and 4.10)",
            map_name,
            self.sc2_version() or "(version unknown)",
        )

    def call(self, name: str, *args: Any) -> list[Any]:
        """``<name>(*args)`` on every copy's `SMACSingleEnv`, in its process; the results."""
        return self.env.call(name, [args] * self.batch_size)

    def sc2_version(self) -> str | None:
        """The SC2 version the copies run (None without SC2, e.g. over `BattleSMACEnv`)."""
        return next((v for v in self.call("sc2_version") if v), None)

    def smac_env_info(self) -> dict[str, Any]:
        """SMAC's ``get_env_info()`` of copy 0 (with agent/enemy feature names) and
        ``sc2_version``, to log with the results."""
        info = self.call("smac_env_info")[0]
        info["sc2_version"] = info.get("sc2_version") or self.sc2_version()
        return cast(dict[str, Any], info)

    # -- ReplayEnv --------------------------------------------------------------------------

    def set_recording(self, on: bool) -> None:
        """Note that a replay is wanted; SC2 records every episode anyway."""
        self.recording = on

    def save_replay(self, directory: Path) -> list[Path]:
        """Save every copy's SC2 replay; the files found.

        SMAC writes ``<replay_prefix or map_name>_<UTC timestamp>.SC2Replay`` into
        ``replay_dir`` under SC2's Replays folder (``$SC2PATH/Replays``; an
        absolute ``replay_dir`` is used as it is), or into ``directory`` when
        ``replay_dir`` is empty; with B > 1 copy i adds ``_env<i>`` to the prefix.
        A replay holds every episode since the copy's game launched. The Linux
        client cannot play replays: watch them on Windows or macOS.
        """
        indices = [None] if self.batch_size == 1 else list(range(self.batch_size))
        replies = self.env.call("save_replay", [(str(directory), i) for i in indices])
        return [Path(p) for paths in replies for p in paths]
