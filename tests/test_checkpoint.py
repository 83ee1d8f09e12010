"""Checkpoints: atomic save, step selection, and loading without running pickled code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import marl
from marl.checkpoint import (
    COMPLETE_MARKER,
    FORMAT_VERSION,
    META_FILE,
    STATE_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    select_checkpoint,
)


def sample_state() -> dict[str, Any]:
    gen = torch.Generator()
    gen.manual_seed(3)
    return {
        "mac": {"agents.0.fc1.weight": torch.randn(4, 3), "agents.0.fc1.bias": torch.zeros(4)},
        "optimiser": {"lr": 5e-4, "steps": [1, 2, 3], "name": "adam", "nested": {"a": None}},
        "runner": {"t_env": 1234, "generator": gen.get_state()},
        "flags": (True, False),
    }


def make_step(root: Path, name: str, complete: bool = True) -> Path:
    step = root / name
    step.mkdir(parents=True)
    if complete:
        (step / COMPLETE_MARKER).write_text("")
    return step


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert set(a) == set(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


# ---------------------------------------------------------------------- save


def test_save_writes_complete_step_folder(tmp_path: Path) -> None:
    root = tmp_path / "run" / "checkpoints"
    step = save_checkpoint(root, 500, sample_state(), {"algo": "qmix"})
    assert step == root / "500"
    assert sorted(p.name for p in step.iterdir()) == sorted(
        [STATE_FILE, META_FILE, COMPLETE_MARKER]
    )
    assert [p.name for p in root.iterdir()] == ["500"]  # no temporary folder left
    meta = json.loads((step / META_FILE).read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["marl_version"] == marl.__version__
    assert meta["t_env"] == 500
    assert meta["algo"] == "qmix"


def test_save_refuses_to_overwrite_existing_step(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 100, {"x": torch.ones(2)}, {})
    with pytest.raises(CheckpointError, match="100"):
        save_checkpoint(root, 100, {"x": torch.zeros(2)}, {})
    state, _ = load_checkpoint(root / "100")
    assert torch.equal(state["x"], torch.ones(2))


def test_refused_save_leaves_no_temporary_folder(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 100, {"x": torch.ones(2)}, {})
    with pytest.raises(CheckpointError):
        save_checkpoint(root, 100, {"x": torch.zeros(2)}, {})
    assert [p.name for p in root.iterdir()] == ["100"]


# ---------------------------------------------------------------------- load


def test_load_round_trips_tensors_and_plain_containers(tmp_path: Path) -> None:
    state = sample_state()
    step = save_checkpoint(tmp_path, 42, state, {"config": {"seed": 1, "lr": 0.1}})
    loaded, meta = load_checkpoint(step)
    assert_same(state, loaded)
    assert meta["config"] == {"seed": 1, "lr": 0.1}
    assert meta["t_env"] == 42


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, "1", None])
def test_load_refuses_unknown_format_version(tmp_path: Path, version: Any) -> None:
    step = save_checkpoint(tmp_path, 1, {"x": torch.ones(1)}, {})
    meta = json.loads((step / META_FILE).read_text())
    meta["format_version"] = version
    (step / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=re.escape(str(step))):
        load_checkpoint(step)


class Payload:
    """Unpickling this runs code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_load_refuses_pickled_code(tmp_path: Path) -> None:
    # The payload is live: an unsafe load would run it.
    probe = tmp_path / "probe"
    torch.save({"x": Payload(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert probe.exists()

    marker = tmp_path / "pwned"
    step = save_checkpoint(tmp_path / "checkpoints", 7, {"x": torch.ones(1)}, {})
    torch.save({"x": torch.ones(1), "evil": Payload(marker)}, step / STATE_FILE)
    with pytest.raises(CheckpointError, match=re.escape(STATE_FILE)):
        load_checkpoint(step)
    assert not marker.exists()


# ---------------------------------------------------------------------- select


def test_select_accepts_run_folder_or_checkpoints_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_step(run / "checkpoints", "100")
    make_step(run / "checkpoints", "200")
    assert select_checkpoint(run) == run / "checkpoints" / "200"
    assert select_checkpoint(run / "checkpoints") == run / "checkpoints" / "200"
    assert select_checkpoint(str(run), load_step=100) == run / "checkpoints" / "100"


def test_select_counts_only_numeric_folders(tmp_path: Path) -> None:
    for name in ["100", "200", "best", "300x", ".tmp-400-1"]:
        make_step(tmp_path, name)
    (tmp_path / "500").write_text("a file, not a step folder")
    assert select_checkpoint(tmp_path) == tmp_path / "200"
    assert select_checkpoint(tmp_path, load_step=300) == tmp_path / "200"


def test_select_ignores_non_ascii_digit_names(tmp_path: Path) -> None:
    make_step(tmp_path, "100")
    make_step(tmp_path, "\u00b2")  # superscript two
    assert select_checkpoint(tmp_path) == tmp_path / "100"


@pytest.mark.parametrize(
    ("load_step", "expected"),
    [(0, "300"), (200, "100"), (199, "100"), (201, "300"), (1, "100"), (10**9, "300")],
)
def test_select_nearest_step_ties_to_smaller(tmp_path: Path, load_step: int, expected: str) -> None:
    make_step(tmp_path, "100")
    make_step(tmp_path, "300")
    assert select_checkpoint(tmp_path, load_step=load_step) == tmp_path / expected


def test_select_compares_steps_numerically(tmp_path: Path) -> None:
    for name in ["9", "10", "1000"]:
        make_step(tmp_path, name)
    assert select_checkpoint(tmp_path) == tmp_path / "1000"
    assert select_checkpoint(tmp_path, load_step=11) == tmp_path / "10"


def test_select_never_chooses_incomplete_steps(tmp_path: Path) -> None:
    make_step(tmp_path, "100")
    make_step(tmp_path, "300", complete=False)
    (tmp_path / "400").mkdir()
    (tmp_path / "400" / STATE_FILE).write_bytes(b"partial")
    assert select_checkpoint(tmp_path) == tmp_path / "100"
    assert select_checkpoint(tmp_path, load_step=300) == tmp_path / "100"
    assert select_checkpoint(tmp_path, load_step=400) == tmp_path / "100"


def test_select_error_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointError, match="does not exist") as err:
        select_checkpoint(missing)
    assert str(missing) in str(err.value)


def test_select_error_not_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "file.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a folder") as err:
        select_checkpoint(path)
    assert str(path) in str(err.value)


def test_select_error_no_step_folders(tmp_path: Path) -> None:
    make_step(tmp_path, "best")
    with pytest.raises(CheckpointError, match="no checkpoint step folders") as err:
        select_checkpoint(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_select_error_only_incomplete(tmp_path: Path) -> None:
    make_step(tmp_path / "checkpoints", "100", complete=False)
    make_step(tmp_path / "checkpoints", "200", complete=False)
    with pytest.raises(CheckpointError, match="incomplete") as err:
        select_checkpoint(tmp_path)
    assert str(tmp_path / "checkpoints") in str(err.value)
