"""The W&B logger in offline and disabled modes: run folders, run ids, failures."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import DictConfig

from marl.config import compose_config
from marl.logging.base import RunInfo
from marl.logging.wandb import (
    RUN_ID_FILE,
    WandbLogger,
    WandbLoggerConfig,
    config_group,
    default_tags,
    run_id_path,
    sweep_group,
)

wandb = pytest.importorskip("wandb")

CONFIG: dict[str, Any] = {
    "seed": 1,
    "algo": {"name": "qmix"},
    "env": {"_target_": "marl.envs.matrix.MatrixEnv", "game": "two_step", "k": -100.0},
}
METRICS = {"train/return_mean": 1.5, "learner/loss": 0.25}


@pytest.fixture(scope="module", autouse=True)
def stop_wandb_service() -> Iterator[None]:
    """W&B runs a service process per Python process: stop it after these tests."""
    yield
    wandb.teardown()


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, silent, and a WANDB_DIR elsewhere to show that files go to the run folder."""
    stray = tmp_path / "wandb_dir_env"
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(stray))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return stray


def run_info(run_dir: Path, job_type: str = "train") -> RunInfo:
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunInfo(run_dir=run_dir, t_max=1000, config=CONFIG, job_type=job_type)


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def logged_bytes(run_folder: Path, *keys: bytes, timeout: float = 30.0) -> bytes:
    """The offline run's record file (protobuf; string keys appear verbatim).

    W&B's service can finish writing the file just after ``run.finish()`` returns (seen once
    in about 50 runs on a 2-core machine), so wait up to ``timeout`` for ``keys``.
    """
    deadline = time.monotonic() + timeout
    while True:
        (record,) = run_folder.glob("run-*.wandb")
        data = record.read_bytes()
        if all(key in data for key in keys) or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def test_offline_run_lives_in_the_run_folder(tmp_path: Path, wandb_env: Path) -> None:
    run_dir = tmp_path / "run"
    logger = WandbLogger(mode="offline")
    logger.start(run_info(run_dir))
    run = logger.run
    assert run is not None
    assert (run.group, run.job_type, run.name) == ("qmix-matrix_two_step", "train", "run")
    assert tuple(run.tags) == ("qmix", "matrix", "two_step")
    assert run.config["algo"] == {"name": "qmix"}
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    real_log = run.log

    def spy(data: dict[str, Any], **kw: Any) -> None:
        calls.append((data, kw))
        real_log(data, **kw)

    run.log = spy
    logger.log(METRICS, t_env=100)
    logger.log({"test/return_mean": 8.0}, t_env=50)  # a lower step is fine: not W&B's step
    logger.close()
    assert calls[0] == ({**METRICS, "t_env": 100}, {})
    (folder,) = offline_runs(run_dir)
    assert folder.name.endswith(logger.run_id or "?")
    assert (run_dir / RUN_ID_FILE).read_text().strip() == logger.run_id
    data = logged_bytes(folder, b"train/return_mean", b"test/return_mean")
    assert b"train/return_mean" in data and b"test/return_mean" in data
    assert not wandb_env.exists()


def test_resume_in_the_same_folder_continues_the_run_id(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = WandbLogger(mode="offline")
    first.start(run_info(run_dir))
    first.log(METRICS, t_env=200)
    state = first.state_dict()
    first.close()
    resumed = WandbLogger(mode="offline")
    resumed.load_state_dict({"run_id": "ignored1"})  # the run folder's file wins
    resumed.start(run_info(run_dir))
    resumed.log(METRICS, t_env=100)
    resumed.close()
    assert resumed.run_id == first.run_id == state["run_id"]
    assert len(offline_runs(run_dir)) == 2  # one W&B folder per start, same run id
    rid = str(first.run_id)
    assert [f.name.endswith((rid, f"{rid}-1")) for f in offline_runs(run_dir)] == [True, True]


def test_checkpoint_state_restores_the_run_id(tmp_path: Path) -> None:
    logger = WandbLogger(mode="offline")
    logger.load_state_dict({"run_id": "abcd1234"})
    logger.start(run_info(tmp_path / "run"))
    logger.close()
    assert logger.run_id == "abcd1234"
    assert logger.state_dict() == {"run_id": "abcd1234"}


def test_eval_jobs_keep_their_own_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train, evaluate = WandbLogger(mode="offline"), WandbLogger(mode="offline")
    train.start(run_info(run_dir))
    train.close()
    evaluate.start(run_info(run_dir, job_type="eval"))
    assert evaluate.run is not None and evaluate.run.job_type == "eval"
    evaluate.close()
    assert train.run_id != evaluate.run_id
    assert run_id_path(run_dir, "eval").read_text().strip() == evaluate.run_id


def test_sequential_jobs_get_separate_finished_runs(tmp_path: Path) -> None:
    ids, runs = [], []
    for seed in (1, 2):
        logger = WandbLogger(mode="offline")
        logger.start(run_info(tmp_path / f"seed{seed}"))
        runs.append(logger.run)
        logger.log(METRICS, t_env=10)
        logger.close()
        logger.close()  # twice is fine
        logger.log(METRICS, t_env=20)  # after close: ignored
        ids.append(logger.run_id)
    assert ids[0] != ids[1]
    assert all(run._is_finished for run in runs)
    assert [len(offline_runs(tmp_path / f"seed{s}")) for s in (1, 2)] == [1, 1]


def test_open_runs_do_not_share(tmp_path: Path) -> None:
    a, b = WandbLogger(mode="offline"), WandbLogger(mode="offline")
    a.start(run_info(tmp_path / "a"))
    b.start(run_info(tmp_path / "b"))
    assert a.run is not b.run and a.run_id != b.run_id
    b.close()
    a.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "marl" and r.levelno == logging.WARNING]


def test_init_failure_warns_once_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(**_: Any) -> None:
        raise wandb.errors.CommError("no network")

    monkeypatch.setattr(wandb, "init", fail)
    logger = WandbLogger(mode="online")
    with caplog.at_level(logging.WARNING, logger="marl"):
        logger.start(run_info(tmp_path / "run"))
        for t in range(3):
            logger.log(METRICS, t_env=t)
        logger.progress(3)
        logger.close()
        logger.close()
    (record,) = warnings_of(caplog)
    assert "no network" in record.getMessage()
    assert logger.disabled and logger.run is None


def test_log_failure_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = WandbLogger(mode="offline")
    logger.start(run_info(tmp_path / "run"))
    assert logger.run is not None

    def fail(*_: Any, **__: Any) -> None:
        raise RuntimeError("log broke")

    run = logger.run
    run.log = fail
    with caplog.at_level(logging.WARNING, logger="marl"):
        logger.log(METRICS, t_env=1)
        logger.log(METRICS, t_env=2)
        logger.close()
    assert len(warnings_of(caplog)) == 1
    assert run._is_finished


def test_missing_wandb_warns_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    logger = WandbLogger(mode="offline")
    with caplog.at_level(logging.WARNING, logger="marl"):
        logger.start(run_info(tmp_path / "run"))
        logger.log(METRICS, t_env=1)
        logger.close()
    (record,) = warnings_of(caplog)
    assert "pip install wandb" in record.getMessage()


def test_disabled_mode_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    logger = WandbLogger(mode="disabled")
    with caplog.at_level(logging.WARNING, logger="marl"):
        logger.start(run_info(run_dir))
        logger.log(METRICS, t_env=1)
        logger.close()
    assert list(run_dir.iterdir()) == []
    assert warnings_of(caplog) == []


def test_group_defaults(tmp_path: Path) -> None:
    sweep = tmp_path / "outputs" / "multirun" / "2024-05-01" / "12-00-00"
    assert sweep_group(sweep / "0_qmix_matrix_two_step_seed1") == "2024-05-01/12-00-00"
    assert sweep_group(tmp_path / "outputs" / "multirun" / "job") == "multirun"
    assert sweep_group(tmp_path / "outputs" / "qmix" / "matrix" / "seed1" / "t") is None
    assert config_group(CONFIG) == "qmix-matrix_two_step"
    assert config_group({"seed": 3}) is None
    assert default_tags(CONFIG) == ["qmix", "matrix", "two_step"]

    logger = WandbLogger(mode="offline")
    logger.start(run_info(sweep / "1_qmix_seed2"))
    assert logger.run is not None and logger.run.group == "2024-05-01/12-00-00"
    assert logger.run.name == "1_qmix_seed2"
    logger.close()
    explicit = WandbLogger(mode="offline", group="mine", tags=["a"], name="n")
    explicit.start(run_info(sweep / "2_qmix_seed3"))
    run = explicit.run
    assert run is not None
    assert (run.group, tuple(run.tags), run.name) == ("mine", ("a",), "n")
    explicit.close()


def compose_with_wandb(*overrides: str) -> DictConfig:
    """`logger=[console,jsonl,wandb]`, registering the schema if marl.config does not yet."""
    ConfigStore.instance().store(group="schema/logger", name="wandb", node=WandbLoggerConfig)
    return compose_config(["logger=[console,jsonl,wandb]", *overrides])


def test_config_defaults_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE")
    node = compose_with_wandb().logger.wandb
    logger = instantiate(node)
    assert isinstance(logger, WandbLogger)
    assert (logger.project, logger.entity, logger.mode) == ("marl", None, "online")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "smac")
    logger = instantiate(compose_with_wandb("logger.wandb.tags=[x]").logger.wandb)
    assert (logger.project, logger.mode, logger.tags) == ("smac", "offline", ["x"])


def test_training_jobs_in_one_process(
    tmp_path: Path, make_config: Callable[..., DictConfig]
) -> None:
    """Two jobs of one process (as in a multirun): one W&B run each, the config logged."""
    from marl.train import run

    ids = []
    for seed in (1, 2):
        ConfigStore.instance().store(group="schema/logger", name="wandb", node=WandbLoggerConfig)
        cfg = make_config("logger=[jsonl,wandb]", f"seed={seed}")
        run_dir = tmp_path / f"{seed}_qmix_seed{seed}"
        run(cfg, run_dir)
        (folder,) = offline_runs(run_dir)
        data = logged_bytes(folder, b"test/return_mean", b"two_step")
        assert b"test/return_mean" in data and b"two_step" in data
        ids.append((run_dir / RUN_ID_FILE).read_text().strip())
    assert ids[0] != ids[1]


def test_online_init_says_it_connects_and_waits_at_most_init_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Online without network, ``wandb.init`` waits for its init timeout: a line says so
    first, and the wait is 30 s (W&B's own default, 90 s, was a silent ~100 s pause)."""
    monkeypatch.delenv("WANDB_MODE")
    said_before_init: list[list[str]] = []
    settings: list[Any] = []

    def timed_out(**kwargs: Any) -> None:
        said_before_init.append([r.getMessage() for r in caplog.records])
        settings.append(kwargs["settings"])
        raise wandb.errors.CommError("Run initialization has timed out after 30.0 sec.")

    monkeypatch.setattr(wandb, "init", timed_out)
    logger = instantiate(compose_with_wandb().logger.wandb)
    with caplog.at_level(logging.INFO, logger="marl"):
        logger.start(run_info(tmp_path / "run"))
    assert [s.init_timeout for s in settings] == [30]
    ((connecting,),) = said_before_init
    assert "connecting" in connecting and "WANDB_MODE=offline" in connecting
    assert "init_timeout=30 s" in connecting
    (warning,) = warnings_of(caplog)  # then the warn-once path: training goes on
    assert "timed out" in warning.getMessage() and logger.disabled

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="marl"):  # wandb.init is still the fake
        WandbLogger(mode="offline").start(run_info(tmp_path / "offline"))
    assert not any("connecting" in r.getMessage() for r in caplog.records)
