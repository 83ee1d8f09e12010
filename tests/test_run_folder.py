"""One live run per folder; failed attempts leave no empty run folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from marl.errors import UsageError
from marl.run_folder import RunFolder, RunFolderBusy
from marl.train import run


def files(folder: Path) -> dict[Path, int]:
    """Every file of a run folder but its lock, with its modification time."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_a_second_run_in_a_live_runs_folder_stops_with_one_sentence(
    make_config, tmp_path: Path
) -> None:
    run(make_config("save_model=true"), tmp_path / "run")
    before = files(tmp_path / "run")
    busy = f"in use by another marl-train \\(pid {os.getpid()}"
    with RunFolder(tmp_path / "run").lock(), pytest.raises(RunFolderBusy, match=busy):
        run(make_config("save_model=true", "t_max=400"), tmp_path / "run")  # a second run
    assert files(tmp_path / "run") == before  # nothing of the live run was touched


def test_resume_never_beside_a_live_run_takes_a_new_folder(make_config, tmp_path: Path) -> None:
    with RunFolder(tmp_path / "run").lock():
        run(make_config("resume=never"), tmp_path / "run")
    assert (tmp_path / "run_1" / "metrics.jsonl").is_file()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_lock_goes_with_its_process(make_config, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run").lock()
    assert not RunFolder(tmp_path / "run").try_lock()
    folder.release()
    run(make_config(), tmp_path / "run")  # free again
    assert (tmp_path / "run" / "metrics.jsonl").is_file()


def test_a_failed_run_leaves_no_empty_folder(make_config, tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "train.log").write_text("Hydra's log of this attempt\n")
    with pytest.raises(UsageError, match="finetune=true needs checkpoint_path"):
        run(make_config("finetune=true"), tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_a_folder_that_holds_a_run(make_config, tmp_path: Path) -> None:
    run(make_config("save_model=true"), tmp_path / "run")
    with pytest.raises(UsageError, match="finetune=true needs checkpoint_path"):
        run(make_config("finetune=true"), tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").is_file()
