"""metrics.jsonl: one JSON object per log event, never over another run's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marl.logging.base import RunInfo
from marl.logging.jsonl import JsonlLogger, JsonlLoggerConfig

METRICS = {"train/return_mean": 1.5, "learner/loss": 0.25, "time/sps": 321.0}


def run_info(run_dir: Path) -> RunInfo:
    return RunInfo(run_dir=run_dir, t_max=1000, config={"seed": 1})


def read_lines(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def config_logger() -> JsonlLogger:
    """The logger as `logger=jsonl` builds it (config schema defaults)."""
    cfg = JsonlLoggerConfig()
    return JsonlLogger(filename=cfg.filename, exclude_prefixes=cfg.exclude_prefixes)


def test_one_object_per_log_call(tmp_path: Path) -> None:
    logger = config_logger()
    logger.start(run_info(tmp_path))
    logger.log(METRICS, t_env=100)
    logger.log({"test/return_mean": 8.0, "time/elapsed": 3.0}, t_env=200)
    logger.close()
    assert logger.path == tmp_path / "metrics.jsonl"
    rows = read_lines(tmp_path / "metrics.jsonl")
    assert rows == [
        {"t_env": 100, "train/return_mean": 1.5, "learner/loss": 0.25},
        {"t_env": 200, "test/return_mean": 8.0},
    ]


def test_lines_are_flushed_before_close(tmp_path: Path) -> None:
    logger = config_logger()
    logger.start(run_info(tmp_path))
    logger.log({"train/x": 1.0}, t_env=5)
    assert read_lines(tmp_path / "metrics.jsonl") == [{"t_env": 5, "train/x": 1.0}]
    logger.close()


def test_time_keys_excluded_by_default(tmp_path: Path) -> None:
    logger = JsonlLogger()
    logger.start(run_info(tmp_path))
    logger.log(METRICS, t_env=100)
    logger.close()
    (row,) = read_lines(tmp_path / "metrics.jsonl")
    assert "time/sps" not in row


def test_no_exclusions_keeps_every_key(tmp_path: Path) -> None:
    logger = JsonlLogger(filename="all.jsonl", exclude_prefixes=[])
    logger.start(run_info(tmp_path))
    logger.log(METRICS, t_env=100)
    logger.close()
    assert read_lines(tmp_path / "all.jsonl") == [{"t_env": 100, **METRICS}]


def test_refuses_run_folder_with_existing_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    old = '{"t_env": 1, "train/return_mean": 3.0}\n'
    path.write_text(old)
    logger = config_logger()
    with pytest.raises(FileExistsError, match=r"metrics\.jsonl"):
        logger.start(run_info(tmp_path))
    logger.close()
    assert path.read_text() == old


def test_empty_existing_file_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").touch()
    logger = config_logger()
    logger.start(run_info(tmp_path))
    logger.log({"train/x": 2.0}, t_env=1)
    logger.close()
    assert read_lines(tmp_path / "metrics.jsonl") == [{"t_env": 1, "train/x": 2.0}]


def test_log_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        JsonlLogger().log({"train/x": 1.0}, t_env=0)


def test_close_is_idempotent(tmp_path: Path) -> None:
    JsonlLogger().close()  # never started
    logger = config_logger()
    logger.start(run_info(tmp_path))
    logger.log({"train/x": 1.0}, t_env=1)
    logger.close()
    logger.close()
    assert read_lines(tmp_path / "metrics.jsonl") == [{"t_env": 1, "train/x": 1.0}]
