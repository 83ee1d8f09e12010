"""TensorBoard event files: the run's scalars against t_env, one curve across a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marl.logging.base import RunInfo
from marl.logging.tensorboard import TensorBoardLogger


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve TensorBoard shows for ``folder`` but the wall-clock ``time/``
    ones: tag -> [(step, value)]. Read with TensorBoard's own reader."""
    reader = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="TensorBoard not installed (pip install 'marl[tensorboard]')",
    )
    acc = reader.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    tags = [tag for tag in acc.Tags()["scalars"] if not tag.startswith("time/")]
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}


def run_info(run_dir: Path, t_env: int = 0) -> RunInfo:
    return RunInfo(run_dir=run_dir, t_max=1000, config={"seed": 1}, t_env=t_env)


def test_every_metric_is_a_scalar_at_t_env(tmp_path: Path) -> None:
    logger = TensorBoardLogger(exclude_prefixes=["train/x"])
    logger.start(run_info(tmp_path))
    logger.log({"train/return_mean": 1.5, "train/x": 300.0}, t_env=100)
    logger.log({"train/return_mean": 2.5, "test/return_mean": 8.0}, t_env=200)
    logger.close()
    assert scalars(tmp_path / "tensorboard") == {
        "train/return_mean": [(100, 1.5), (200, 2.5)],
        "test/return_mean": [(200, 8.0)],
    }


def test_a_resumed_run_shows_one_continuous_curve(tmp_path: Path) -> None:
    first = TensorBoardLogger()
    first.start(run_info(tmp_path))
    for t in (100, 200):
        first.log({"train/x": float(t)}, t_env=t)
    saved = first.state_dict()  # a checkpoint at t_env 200
    for t in (300, 400):
        first.log({"train/x": -1.0}, t_env=t)  # lost work: logged again after the resume
    first.close()

    resumed = TensorBoardLogger()
    resumed.load_state_dict(saved)
    resumed.start(run_info(tmp_path, t_env=200))
    for t in (300, 400, 500):
        resumed.log({"train/x": float(t)}, t_env=t)
    resumed.close()
    assert scalars(tmp_path / "tensorboard") == {
        "train/x": [(100, 100.0), (200, 200.0), (300, 300.0), (400, 400.0), (500, 500.0)]
    }


def test_a_training_run_shows_the_scalars_of_metrics_jsonl(tmp_path: Path, make_config) -> None:
    from marl.train import run

    run(make_config("logger=[jsonl,tensorboard]", "t_max=200", "test_interval=100"), tmp_path)
    want: dict[str, list[tuple[int, float]]] = {}
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key != "t_env":
                want.setdefault(key, []).append((row["t_env"], pytest.approx(value, rel=1e-6)))
    assert want and scalars(tmp_path / "tensorboard") == want


def test_a_run_started_over_in_place_hides_the_first_attempt(tmp_path: Path) -> None:
    first = TensorBoardLogger()
    first.start(run_info(tmp_path))
    first.log({"train/x": -1.0}, t_env=0)
    first.close()  # stopped before its first checkpoint

    again = TensorBoardLogger()
    again.load_state_dict(TensorBoardLogger().state_dict())  # Experiment.restart_in_place
    again.start(run_info(tmp_path))
    again.log({"train/x": 1.0}, t_env=0)
    again.close()
    assert scalars(tmp_path / "tensorboard") == {"train/x": [(0, 1.0)]}
