"""The `env=sc2` adapter: SMAC's API translated, run over the battle simulator (never fake SC2).

`BattleSMACEnv` answers SMAC's single-env calls, so `SC2Env(make=...)` runs the real
translation code end to end. The missing-piece errors are checked with stand-ins for the
*packages* (no smac, SMAC3 under the same name, a StarCraft2Env that cannot find the game
or the map, as SMAC does without them): they test our detection, not StarCraft II.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from marl.config import SCHEMAS, compose_config
from marl.envs.base import BatchedEnv, ReplayEnv, SMACInfoEnv
from marl.envs.battle.smac import BattleSMACEnv
from marl.envs.sc2 import (
    PROTOBUF_ENV,
    SC2Env,
    SC2EnvConfig,
    SMACSingleEnv,
    build_version,
    import_smac,
    sc2_path,
    sc2_version,
)
from marl.envs.workers import SEED_HIGH, SerialBatchedEnv
from marl.errors import UsageError

MAP = "3m"
N, A, OBS, S, LIMIT = 3, 9, 30, 48, 60  # 3m at SMAC's defaults
# Start noise makes copies (seeds) differ, as SC2's games do; the battle env has none by default.
BATTLE = functools.partial(BattleSMACEnv, map_name=MAP, spawn_noise=1.0)
SMAC_MODULES = ("smac", "smac.env", "smac.env.starcraft2", "smac.env.starcraft2.starcraft2")

# PyMARL's src/config/envs/sc2.yaml env_args (all but `seed`, which marl passes per copy).
PYMARL_SC2 = {
    "continuing_episode": False,
    "difficulty": "7",
    "game_version": None,
    "map_name": "3m",
    "move_amount": 2,
    "obs_all_health": True,
    "obs_instead_of_state": False,
    "obs_last_action": False,
    "obs_own_health": True,
    "obs_pathing_grid": False,
    "obs_terrain_height": False,
    "obs_timestep_number": False,
    "reward_death_value": 10,
    "reward_defeat": 0,
    "reward_negative_scale": 0.5,
    "reward_only_positive": True,
    "reward_scale": True,
    "reward_scale_rate": 20,
    "reward_sparse": False,
    "reward_win": 200,
    "replay_dir": "",
    "replay_prefix": "",
    "state_last_action": True,
    "state_timestep_number": False,
    "step_mul": 8,
    "debug": False,
}
EXTRA_KEYS = {"heuristic_ai": False, "heuristic_rest": False}  # SMAC's, not in PyMARL's yaml


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SC2PATH -> an empty folder; the protobuf variable unset and restored afterwards."""
    path = tmp_path / "StarCraftII"
    monkeypatch.setenv("SC2PATH", str(path))
    monkeypatch.setenv(PROTOBUF_ENV, "restored-after-the-test")
    monkeypatch.delenv(PROTOBUF_ENV)
    return path


def first_episode_seed(seed: int) -> int:
    """The seed copy ``i`` launches its game with, for ``seed`` = base seed + i."""
    gen = torch.Generator().manual_seed(seed)
    return int(torch.randint(0, SEED_HIGH, (1,), generator=gen))


def random_actions(avail: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Uniform over available actions: avail (B, N, A) bool -> (B, N) long."""
    flat = avail.float().flatten(0, 1)  # (B * N, A)
    return torch.multinomial(flat, 1, generator=gen).view(avail.shape[:2])


# -- config -----------------------------------------------------------------------------------


def test_config_has_pymarls_sc2_env_args() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(SC2EnvConfig) if f.name != "_target_"}
    assert defaults == {**PYMARL_SC2, **EXTRA_KEYS, "workers": True}
    assert SC2EnvConfig._target_ == "marl.envs.sc2.SC2Env"


@pytest.fixture
def sc2_schema() -> None:
    """Store the schema as marl.config does for the options it lists in SCHEMAS."""
    if "sc2" not in SCHEMAS["env"]:
        compose_config([])  # registers the listed schemas first
        ConfigStore.instance().store(group="schema/env", name="sc2", node=SC2EnvConfig)


@pytest.mark.usefixtures("sc2_schema")
def test_preset_composes_to_the_schema_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_config(["env=sc2"])
    expected = {f.name: f.default for f in dataclasses.fields(SC2EnvConfig)}
    assert dict(cfg.env) == expected
    monkeypatch.setitem(sys.modules, "smac", None)
    with pytest.raises(InstantiationException) as wrapped:  # what marl-train sees
        instantiate(cfg.env, batch_size=1, seed=0, device="cpu")
    assert isinstance(wrapped.value.__cause__, UsageError)
    assert "make install-smac" in str(wrapped.value.__cause__)


# -- translation over the battle simulator ----------------------------------------------------


def build(batch_size: int, seed: int = 3, make: Callable[..., Any] = BATTLE, **kw: Any) -> SC2Env:
    return SC2Env(batch_size=batch_size, seed=seed, make=make, **kw)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("batch_size", "workers"), [(1, True), (2, True), (2, False)])
def test_translation_matches_smacs_api_step_by_step(batch_size: int, workers: bool) -> None:
    """Each copy plays exactly what the SMAC-API env it drives plays, seeded seed + i."""
    seed = 3
    env = build(batch_size, seed, workers=workers)
    try:
        expected = "WorkerBatchedEnv" if workers and batch_size > 1 else "SerialBatchedEnv"
        assert type(env.env).__name__ == expected
        assert isinstance(env, BatchedEnv) and isinstance(env, ReplayEnv)
        assert isinstance(env, SMACInfoEnv)  # the run saves smac_env_info() with sc2_version
        info = env.get_env_info()
        assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (N, A, OBS, S)
        assert info.episode_limit == LIMIT
        refs = [BATTLE(seed=first_episode_seed(seed + i)) for i in range(batch_size)]
        for ref in refs:
            ref.reset()
        gen = torch.Generator().manual_seed(0)
        done = [False] * batch_size
        for _ in range(LIMIT):
            obs, state, avail = env.obs(), env.state(), env.avail_actions()
            assert obs.shape == (batch_size, N, OBS) and obs.dtype == torch.float32
            assert state.shape == (batch_size, S) and state.dtype == torch.float32
            assert avail.shape == (batch_size, N, A) and avail.dtype == torch.bool
            for b, ref in enumerate(refs):
                if not done[b]:
                    assert torch.equal(obs[b], torch.stack(ref.get_obs()))
                    assert torch.equal(state[b], ref.get_state())
                    assert avail[b].int().tolist() == ref.get_avail_actions()
            actions = random_actions(avail, gen)
            reward, terminated, step_info = env.step(actions)
            assert reward.dtype == torch.float32 and terminated.dtype == torch.bool
            assert {"battle_won", "dead_allies", "dead_enemies", "episode_limit"} <= set(step_info)
            for b, ref in enumerate(refs):
                if done[b]:
                    assert float(reward[b]) == 0.0 and bool(terminated[b])  # lock step
                    continue
                r, term, ref_info = ref.step(actions[b].tolist())
                assert float(reward[b]) == pytest.approx(r, abs=1e-6)
                assert bool(terminated[b]) == term
                assert bool(step_info["battle_won"][b]) == ref_info["battle_won"]
                assert float(step_info["dead_allies"][b]) == ref_info["dead_allies"]
                assert float(step_info["dead_enemies"][b]) == ref_info["dead_enemies"]
                assert not bool(step_info["episode_limit"][b])  # no continuing_episode
                done[b] = term
            if all(done):
                break
        assert all(done)
        env.reset()  # later episodes go on from the same games
        assert env.obs().shape == (batch_size, N, OBS)
    finally:
        env.close()


def test_copies_differ_and_a_seed_repeats_them() -> None:
    a, b, c = build(2, seed=5, workers=False), build(2, seed=5, workers=False), build(1, seed=6)
    try:
        assert torch.equal(a.obs(), b.obs()) and torch.equal(a.state(), b.state())
        assert not torch.equal(a.state()[0], a.state()[1])
        assert torch.equal(a.state()[1], c.state()[0])  # copy 1 of seed 5 is seeded 6
        assert isinstance(a.env, SerialBatchedEnv)
        launched = [cast(SMACSingleEnv, copy.env).smac_env for copy in a.env._copies]
        assert [cast(BattleSMACEnv, env).seed() for env in launched] == [
            first_episode_seed(5),
            first_episode_seed(6),
        ]
    finally:
        for env in (a, b, c):
            env.close()


@pytest.mark.parametrize("continuing_episode", [True, False])
def test_timeout_is_a_truncation_only_with_continuing_episode(continuing_episode: bool) -> None:
    """step_mul=1 keeps the armies apart for the 60 steps of 3m: the episode times out."""
    make = functools.partial(BATTLE, step_mul=1, continuing_episode=continuing_episode)
    single = SMACSingleEnv(make, map_name=MAP)
    single.reset(seed=0)
    outcomes = [single.step(np.ones(N, dtype=np.int64)) for _ in range(LIMIT)]
    assert all(not term and not trunc for _, term, trunc, _ in outcomes[:-1])
    _, terminated, truncated, info = outcomes[-1]
    assert (terminated, truncated) == (not continuing_episode, continuing_episode)
    assert "episode_limit" not in info and info["battle_won"] is False
    env = build(1, make=make)
    try:
        for _ in range(LIMIT):
            result = env.step(torch.ones(1, N, dtype=torch.long))
        assert bool(result.terminated[0])
        assert bool(result.info["episode_limit"][0]) == continuing_episode
    finally:
        env.close()


# -- version and replays ----------------------------------------------------------------------


def test_sc2_version_from_the_game_or_the_versions_folder(clean_environment: Path) -> None:
    assert sc2_version() is None  # no SC2 at SC2PATH
    for build_id in (69232, 75689):
        (clean_environment / "Versions" / f"Base{build_id}").mkdir(parents=True)
    assert sc2_version() == "4.10.0"  # the newest: what game_version=None launches
    asked = types.SimpleNamespace(game_version="4.6.2", _run_config=None)
    assert sc2_version(asked) == "4.6.2"
    version = types.SimpleNamespace(game_version="4.6.2", build_version=69232)
    launched = types.SimpleNamespace(_run_config=types.SimpleNamespace(version=version))
    assert sc2_version(launched) == "4.6.2"
    latest = types.SimpleNamespace(game_version="latest", build_version=75689)
    running = types.SimpleNamespace(_run_config=types.SimpleNamespace(version=latest))
    assert sc2_version(running) == "4.10.0"
    assert build_version(12345) == "build 12345"


def test_env_logs_and_reports_the_version(
    clean_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (clean_environment / "Versions" / "Base69232").mkdir(parents=True)
    with caplog.at_level(logging.INFO, logger="marl.envs.sc2"):
        env = build(1)
    try:
        assert "StarCraft II 4.6.2" in caplog.text
        info = env.smac_env_info()
        assert info["sc2_version"] == "4.6.2" == env.sc2_version()
        assert (info["n_agents"], info["n_actions"], info["state_shape"]) == (N, A, S)
    finally:
        env.close()


class SMACReplays(BattleSMACEnv):
    """The battle env saving replays as SMAC does (through pysc2's run_config.save_replay):
    ``<replay_prefix or map_name>_<UTC time to the second>.SC2Replay`` in ``replay_dir``
    under ``$SC2PATH/Replays`` (an absolute one as it is), and returning nothing."""

    def __init__(self, replay_prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay_prefix = replay_prefix

    def save_replay(self) -> None:  # type: ignore[override]
        prefix = self.replay_prefix or self.map_name
        folder = sc2_path() / "Replays" / self.replay_dir  # an absolute replay_dir wins
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
        (folder / f"{prefix}_{now.isoformat('-').replace(':', '-')}.SC2Replay").write_bytes(b"")


@pytest.mark.timeout(60)
def test_save_replay_writes_one_replay_per_copy_into_the_run(tmp_path: Path) -> None:
    env = build(2, make=functools.partial(SMACReplays, map_name=MAP))
    try:
        env.set_recording(True)
        paths = env.save_replay(tmp_path / "replays")
        again = env.save_replay(tmp_path / "again")  # each save goes where it is asked
    finally:
        env.close()
    assert len(paths) == 2 and all(p.parent == tmp_path / "replays" for p in paths)
    assert [p.name.split("_2")[0] for p in paths] == ["3m_env0", "3m_env1"]
    assert all(p.suffix == ".SC2Replay" and p.exists() for p in paths)
    assert len(again) == 2 and all(p.parent == tmp_path / "again" for p in again)


def test_save_replay_keeps_the_users_replay_dir_and_prefix(clean_environment: Path) -> None:
    make = functools.partial(SMACReplays, map_name=MAP, replay_dir="mine", replay_prefix="qmix")
    env = build(1, make=make)
    try:
        paths = env.save_replay(Path("ignored"))
    finally:
        env.close()
    assert len(paths) == 1 and paths[0].parent == clean_environment / "Replays" / "mine"
    assert paths[0].name.startswith("qmix_2") and paths[0].exists()


def test_save_replay_returns_what_the_env_says_it_wrote(tmp_path: Path) -> None:
    """BattleSMACEnv returns its files (GIFs), so they are passed on as they are."""
    env = build(1, make=functools.partial(BATTLE, replay_dir=str(tmp_path / "gifs")))
    try:
        gen = torch.Generator().manual_seed(0)
        while not bool(env.step(random_actions(env.avail_actions(), gen)).terminated):
            pass
        paths = env.save_replay(tmp_path / "unused")
    finally:
        env.close()
    assert paths and all(p.parent == tmp_path / "gifs" and p.exists() for p in paths)


# -- what is missing, in one sentence ---------------------------------------------------------


def fake_package(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package: its missing submodules are not found
    module.__file__ = f"/site-packages/{name.replace('.', '/')}/__init__.py"
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def is_smac(name: str) -> bool:
    return name == "smac" or name.startswith("smac.")


@pytest.fixture
def smac_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install stand-in `smac` modules in sys.modules; every `smac` module goes afterwards."""
    for name in [name for name in sys.modules if is_smac(name)]:
        monkeypatch.delitem(sys.modules, name)

    def install(starcraft2_env: type | None = None, **smac_attrs: Any) -> None:
        monkeypatch.setitem(sys.modules, "smac", fake_package("smac", **smac_attrs))
        if starcraft2_env is not None:
            for name in SMAC_MODULES[1:]:
                monkeypatch.setitem(sys.modules, name, fake_package(name))
            sys.modules[SMAC_MODULES[-1]].StarCraft2Env = starcraft2_env  # type: ignore[attr-defined]

    yield install
    for name in [name for name in sys.modules if is_smac(name)]:
        del sys.modules[name]  # e.g. imported from a package written to disk


class SMACWithoutGame:
    """SMAC's StarCraft2Env as it behaves without StarCraft II: it builds and describes
    itself (an unknown map is a KeyError), and its first reset fails in pysc2's
    ``run_configs.get()`` listing ``$SC2PATH/Versions``."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, map_name: str = "8m", seed: int | None = None, **kwargs: Any) -> None:
        if map_name not in {"3m", "8m"}:
            raise KeyError(map_name)  # smac.env.starcraft2.maps.get_map_params
        self.map_name, self.replay_dir, self.replay_prefix = map_name, "", ""
        self.built.append({"map_name": map_name, "seed": seed, **kwargs})

    def get_env_info(self) -> dict[str, Any]:
        return {
            "state_shape": S,
            "obs_shape": OBS,
            "n_actions": A,
            "n_agents": N,
            "episode_limit": 60,
        }

    def reset(self) -> None:
        base = os.path.expanduser(os.environ.get("SC2PATH", "~/StarCraftII"))
        os.listdir(os.path.join(base, "Versions"))  # FileNotFoundError, as pysc2

    def close(self) -> None:
        pass


class SMACWithoutMaps(SMACWithoutGame):
    def reset(self) -> None:  # pysc2 4.0's run_config.map_data
        raise ValueError(f"Map SMAC_Maps/{self.map_name}.SC2Map not found in /sc2/Maps.")


def sentence(err: pytest.ExceptionInfo[UsageError]) -> str:
    text = str(err.value)
    assert "\n" not in text and text.endswith(".")
    return text


@pytest.mark.usefixtures("smac_modules")
def test_without_smac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smac", None)  # import smac -> ModuleNotFoundError
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    text = sentence(err)
    assert "StarCraft Multi-Agent Challenge package `smac`" in text
    assert "not installed: make install-smac" in text


def test_with_smac3_under_the_same_name(smac_modules: Callable[..., None]) -> None:
    smac_modules(__version__="2.4.1")  # SMAC3: `smac` with no smac.env
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    text = sentence(err)
    assert "the `smac` installed (2.4.1, in /site-packages/smac) is SMAC3" in text
    assert "(hyperparameter optimisation), not the StarCraft Multi-Agent Challenge" in text
    assert "make install-smac" in text


def write_package(root: Path, starcraft2_py: str) -> None:
    """A `smac` package on disk whose StarCraft2Env module runs ``starcraft2_py``."""
    folder = root / "smac" / "env" / "starcraft2"
    folder.mkdir(parents=True)
    for init in (root / "smac", root / "smac" / "env", folder):
        (init / "__init__.py").write_text("")
    (folder / "starcraft2.py").write_text(starcraft2_py)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import pysc2_not_installed\n", "its dependency pysc2_not_installed is missing"),
        (
            "raise TypeError('Descriptors cannot be created directly.')\n",
            f"set {PROTOBUF_ENV}=python before starting",
        ),
    ],
)
@pytest.mark.usefixtures("smac_modules")
def test_with_smac_whose_import_fails(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    code: str,
    expected: str,
) -> None:
    write_package(tmp_path / "site", code)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    assert expected in sentence(err)


@pytest.mark.parametrize("sc2path_set", [True, False])
def test_without_starcraft2(
    smac_modules: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    clean_environment: Path,
    sc2path_set: bool,
) -> None:
    smac_modules(SMACWithoutGame)
    if not sc2path_set:
        monkeypatch.delenv("SC2PATH")
        monkeypatch.setenv("HOME", str(clean_environment.parent))
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    text = sentence(err)
    assert text.startswith("env=sc2 needs StarCraft II, which is not where SMAC looks")
    assert f"{clean_environment / 'Versions'} does not exist" in text
    where = f"SC2PATH={clean_environment}" if sc2path_set else "SC2PATH is not set"
    assert where in text
    assert "SC2.4.10.zip" in text and "https://blzdistsc2-a.akamaihd.net/Linux/" in text


def test_without_the_smac_maps(smac_modules: Callable[..., None]) -> None:
    smac_modules(SMACWithoutMaps)
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    text = sentence(err)
    assert "found no SMAC map 3m" in text and "SMAC_Maps.zip" in text


class SC2LaunchError(Exception):
    """pysc2.lib.sc_process.SC2LaunchError, matched by name."""


class SMACGameWontStart(SMACWithoutGame):
    def reset(self) -> None:
        raise SC2LaunchError("No SC2 binary found at: /sc2/Versions/Base75689/SC2_x64")


def test_when_starcraft2_will_not_start(smac_modules: Callable[..., None]) -> None:
    smac_modules(SMACGameWontStart)
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0)
    assert sentence(err).startswith("env=sc2 could not start StarCraft II (SC2PATH=")
    assert "No SC2 binary found at" in str(err.value)


def test_pysc2_flags_are_marked_parsed(
    smac_modules: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pysc2 reads absl flags at launch, which absl refuses before they are parsed."""

    class Flags:
        parsed = False

        def is_parsed(self) -> bool:
            return self.parsed

        def mark_as_parsed(self) -> None:
            self.parsed = True

    flags = types.ModuleType("absl.flags")
    flags.FLAGS = Flags()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "absl", fake_package("absl", flags=flags))
    monkeypatch.setitem(sys.modules, "absl.flags", flags)
    smac_modules(SMACWithoutGame)
    assert import_smac() is SMACWithoutGame
    assert flags.FLAGS.parsed  # type: ignore[attr-defined]


def test_unknown_map(smac_modules: Callable[..., None]) -> None:
    smac_modules(SMACWithoutGame)
    with pytest.raises(UsageError) as err:
        SC2Env(map_name="4m", batch_size=1, seed=0)
    assert sentence(err) == (
        "env.map_name='4m' is not a SMAC map: `python -m smac.bin.map_list` lists them "
        "(SMACv2's maps need the smacv2 package)."
    )


class BattleWithoutGame(BattleSMACEnv):
    """The battle env failing its reset as SMAC does without SC2 (for the worker path)."""

    def reset(self) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/StarCraftII/Versions")


@pytest.mark.timeout(60)
def test_errors_from_workers_stay_one_sentence() -> None:
    with pytest.raises(UsageError) as err:
        build(2, make=functools.partial(BattleWithoutGame, map_name=MAP))
    assert "/nowhere/StarCraftII/Versions does not exist" in sentence(err)


def test_smac_gets_pymarls_settings_and_a_seed_per_copy(
    smac_modules: Callable[..., None],
) -> None:
    SMACWithoutGame.built.clear()
    smac_modules(SMACWithoutGame)
    with pytest.raises(UsageError):
        SC2Env(batch_size=1, seed=4, difficulty="A")
    probe, launched = SMACWithoutGame.built
    settings = {**PYMARL_SC2, **EXTRA_KEYS, "difficulty": "A"}
    assert {k: v for k, v in probe.items() if k != "seed"} == settings
    assert (probe["seed"], launched["seed"]) == (0, first_episode_seed(4))


def test_an_older_smac_gets_only_the_settings_it_knows(
    smac_modules: Callable[..., None],
) -> None:
    class OldSMAC(SMACWithoutGame):
        def __init__(self, map_name: str = "8m", seed: int | None = None, debug: bool = False):
            super().__init__(map_name=map_name, seed=seed, debug=debug)

    SMACWithoutGame.built.clear()
    smac_modules(OldSMAC)
    with pytest.raises(UsageError, match="needs StarCraft II"):
        SC2Env(batch_size=1, seed=0)  # every other setting at its default: dropped
    assert set(SMACWithoutGame.built[0]) == {"map_name", "seed", "debug"}
    with pytest.raises(UsageError) as err:
        SC2Env(batch_size=1, seed=0, heuristic_ai=True)
    assert "env.heuristic_ai=True needs a newer smac" in sentence(err)


@pytest.mark.usefixtures("smac_modules")
@pytest.mark.parametrize("users", [None, "upb"])
def test_protobuf_python_is_set_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch, users: str | None
) -> None:
    if users is not None:
        monkeypatch.setenv(PROTOBUF_ENV, users)
    monkeypatch.setitem(sys.modules, "smac", None)
    with pytest.raises(UsageError):
        SC2Env(batch_size=1, seed=0)
    assert os.environ[PROTOBUF_ENV] == (users or "python")
