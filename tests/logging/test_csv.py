"""metrics.csv: a row per log event, a column per metric, no duplicate rows on resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from marl.logging.base import RunInfo
from marl.logging.csv import CsvLogger


def run_info(run_dir: Path, t_env: int = 0) -> RunInfo:
    return RunInfo(run_dir=run_dir, t_max=1000, config={"seed": 1}, t_env=t_env)


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_a_row_per_event_and_a_column_per_metric(tmp_path: Path) -> None:
    logger = CsvLogger()
    logger.start(run_info(tmp_path))
    logger.log({"train/return_mean": 1.5, "time/sps": 300.0}, t_env=100)
    logger.log({"test/return_mean": 8.0}, t_env=200)  # a new metric widens the header
    logger.log({"train/return_mean": 2.5}, t_env=300)
    header, rows = read(tmp_path / "metrics.csv")  # readable before close: flushed
    logger.close()
    assert header == ["t_env", "time/sps", "train/return_mean", "test/return_mean"]
    assert rows == [
        {"t_env": "100", "time/sps": "300.0", "train/return_mean": "1.5", "test/return_mean": ""},
        {"t_env": "200", "time/sps": "", "train/return_mean": "", "test/return_mean": "8.0"},
        {"t_env": "300", "time/sps": "", "train/return_mean": "2.5", "test/return_mean": ""},
    ]


def test_excluded_prefixes_are_left_out(tmp_path: Path) -> None:
    logger = CsvLogger(exclude_prefixes=["time/"])
    logger.start(run_info(tmp_path))
    logger.log({"time/sps": 300.0}, t_env=100)  # nothing left: no row
    logger.log({"train/x": 1.0, "time/sps": 300.0}, t_env=200)
    logger.close()
    assert read(tmp_path / "metrics.csv") == (
        ["t_env", "train/x"],
        [{"t_env": "200", "train/x": "1.0"}],
    )


def test_a_resumed_run_keeps_its_checkpoints_rows_and_appends(tmp_path: Path) -> None:
    first = CsvLogger()
    first.start(run_info(tmp_path))
    first.log({"train/x": 1.0}, t_env=100)
    saved = first.state_dict()  # a checkpoint at t_env 100
    first.log({"train/x": 2.0, "test/y": 5.0}, t_env=200)  # logged again after the resume
    first.close()  # killed

    resumed = CsvLogger()
    resumed.load_state_dict(saved)
    resumed.start(run_info(tmp_path, t_env=100))
    resumed.log({"train/x": 2.0}, t_env=200)
    resumed.close()
    header, rows = read(tmp_path / "metrics.csv")
    assert header == ["t_env", "train/x"]
    assert rows == [{"t_env": "100", "train/x": "1.0"}, {"t_env": "200", "train/x": "2.0"}]


def test_never_writes_over_another_runs_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("t_env,train/x\n5,1.0\n")
    with pytest.raises(FileExistsError, match="no checkpoint to resume"):
        CsvLogger().start(run_info(tmp_path))
    assert (tmp_path / "metrics.csv").read_text() == "t_env,train/x\n5,1.0\n"


def test_a_file_cut_after_the_run_stopped_is_refused(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("t_env,train/x\n5,1.0\n")
    logger = CsvLogger()
    logger.load_state_dict({"rows": 3, "columns": ["t_env", "train/x"]})
    with pytest.raises(FileExistsError, match="fewer rows"):
        logger.start(run_info(tmp_path))
