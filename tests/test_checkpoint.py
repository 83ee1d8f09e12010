"""Checkpoints: atomic save, step selection, verification against the recorded sha256,
fallback to a good step, and loading without running pickled code."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
import torch

import marl
from marl import checkpoint
from marl.checkpoint import (
    BUFFER_FILE,
    COMPLETE_MARKER,
    FORMAT_VERSION,
    META_FILE,
    STATE_FILE,
    CheckpointError,
    list_steps,
    load_buffer,
    load_checkpoint,
    move_aside,
    newest_good_step,
    prune_checkpoints,
    save_checkpoint,
    select_checkpoint,
    verify_step,
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


def weights() -> dict[str, Any]:
    """A state whose one tensor ``tamper`` can find in the saved file."""
    return {"w": torch.full((4,), 7.0)}


def make_step(root: Path, name: str, complete: bool = True) -> Path:
    """A real checkpoint folder named ``name`` (any name, unlike ``save_checkpoint``)."""
    built = save_checkpoint(root / ".build", 1, weights(), {})
    step = root / name
    built.rename(step)
    (root / ".build").rmdir()
    if not complete:
        (step / COMPLETE_MARKER).unlink()
    return step


def tamper(path: Path) -> None:
    """Change the saved weights 7.0 to 8.0 in place, as reported: the file keeps its size
    and stays a valid pickle, so only its content tells."""
    data = path.read_bytes()
    saved, changed = struct.pack("<4f", *[7.0] * 4), struct.pack("<4f", *[8.0] * 4)
    assert data.count(saved) == 1
    path.write_bytes(data.replace(saved, changed))
    assert torch.load(path, weights_only=True)["w"].tolist() == [8.0] * 4


def drop_hashes(step: Path) -> None:
    """Make ``step`` look saved by marl before meta.json recorded sizes and sha256."""
    meta = json.loads((step / META_FILE).read_text())
    del meta["files"]
    (step / META_FILE).write_text(json.dumps(meta))


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
    evil = {"x": torch.ones(1), "evil": Payload(marker)}
    # Saved with its own sha256 (as if meta.json were rewritten too): the weights-only load
    # refuses it.
    step = save_checkpoint(tmp_path / "checkpoints", 7, evil, {})
    with pytest.raises(CheckpointError, match=re.escape(f"{step / STATE_FILE} cannot be loaded")):
        load_checkpoint(step)
    # Put in after saving: refused as damaged before anything is unpickled.
    step = save_checkpoint(tmp_path / "checkpoints", 8, {"x": torch.ones(1)}, {})
    torch.save(evil, step / STATE_FILE)
    with pytest.raises(CheckpointError, match=re.escape(f"{step / STATE_FILE} is damaged")):
        load_checkpoint(step)
    assert not marker.exists()


# ---------------------------------------------------------------------- verify


def test_save_records_size_and_sha256_of_each_file(tmp_path: Path) -> None:
    step = save_checkpoint(tmp_path, 5, weights(), {}, buffer={"obs": torch.zeros(3)})
    files = json.loads((step / META_FILE).read_text())["files"]
    assert sorted(files) == [BUFFER_FILE, STATE_FILE]
    for name in (STATE_FILE, BUFFER_FILE):
        data = (step / name).read_bytes()
        assert files[name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


LOADERS = {STATE_FILE: load_checkpoint, BUFFER_FILE: load_buffer}


@pytest.mark.parametrize("name", [STATE_FILE, BUFFER_FILE])
def test_load_refuses_changed_weights_in_a_valid_file(tmp_path: Path, name: str) -> None:
    step = save_checkpoint(tmp_path, 5, weights(), {}, buffer=weights())
    tamper(step / name)
    message = re.escape(f"{step / name} is damaged: its content does not match the sha256")
    with pytest.raises(CheckpointError, match=message):
        verify_step(step)
    with pytest.raises(CheckpointError, match=message):
        LOADERS[name](step)


def test_select_then_load_hashes_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, 5, weights(), {}, buffer=weights())
    hashed: list[str] = []
    real = checkpoint.file_sha256

    def counted(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(checkpoint, "file_sha256", counted)
    step = select_checkpoint(tmp_path)
    load_checkpoint(step, verify=False)
    load_buffer(step, verify=False)
    assert sorted(hashed) == [BUFFER_FILE, STATE_FILE]


@pytest.mark.parametrize(("hashes", "keep"), [(True, 0.5), (False, 0.5), (False, 0.0)])
def test_truncated_file_is_called_damaged_or_truncated(
    tmp_path: Path, hashes: bool, keep: float
) -> None:
    step = save_checkpoint(tmp_path, 5, sample_state(), {})
    if not hashes:  # then torch.load is what notices
        drop_hashes(step)
    data = (step / STATE_FILE).read_bytes()
    (step / STATE_FILE).write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="damaged or truncated") as err:
        load_checkpoint(step)
    assert str(step / STATE_FILE) in str(err.value)
    assert "safely" not in str(err.value)


@pytest.mark.parametrize("name", [STATE_FILE, META_FILE])
def test_missing_file_is_called_missing(tmp_path: Path, name: str) -> None:
    step = save_checkpoint(tmp_path, 5, weights(), {})
    (step / name).unlink()
    for check in (verify_step, load_checkpoint):
        with pytest.raises(CheckpointError, match=re.escape(f"{step / name} is missing.")):
            check(step)


@pytest.mark.parametrize("content", [b'{"format_version": 1, "t_en', b"[1, 2]", b"\xff\xfe{}"])
def test_garbled_meta_is_called_damaged(tmp_path: Path, content: bytes) -> None:
    step = save_checkpoint(tmp_path, 5, weights(), {})
    (step / META_FILE).write_bytes(content)
    for check in (verify_step, load_checkpoint):
        with pytest.raises(CheckpointError, match=re.escape(f"{step / META_FILE} is damaged")):
            check(step)


def test_checkpoint_saved_without_hashes_still_loads(tmp_path: Path) -> None:
    state = sample_state()
    step = save_checkpoint(tmp_path, 42, state, {}, buffer={"obs": torch.ones(2)})
    drop_hashes(step)
    verify_step(step)
    assert select_checkpoint(tmp_path) == step
    loaded, meta = load_checkpoint(step)
    assert_same(state, loaded)
    assert meta["format_version"] == 1 and "files" not in meta
    assert_same(load_buffer(step), {"obs": torch.ones(2)})


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


def test_select_accepts_a_step_folder(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for name in ("100", "200"):
        make_step(root, name)
    assert select_checkpoint(root / "100") == root / "100"
    assert select_checkpoint(root / "100", load_step=100) == root / "100"
    with pytest.raises(CheckpointError, match=re.escape("load_step=200 asks for another")):
        select_checkpoint(root / "100", load_step=200)
    make_step(root, "300", complete=False)
    with pytest.raises(CheckpointError, match=re.escape(f"{root / '300'} is incomplete")):
        select_checkpoint(root / "300")
    # Judged by content, not name: Hydra's sweep jobs are run folders named 0, 1, ...
    make_step(tmp_path / "0" / "checkpoints", "100")
    assert select_checkpoint(tmp_path / "0") == tmp_path / "0" / "checkpoints" / "100"


def test_select_damaged_checkpoint_names_the_good_steps(tmp_path: Path) -> None:
    for name in ("100", "200", "300"):
        make_step(tmp_path, name)
    tamper(tmp_path / "300" / STATE_FILE)
    with pytest.raises(CheckpointError) as err:
        select_checkpoint(tmp_path)
    assert f"{tmp_path / '300' / STATE_FILE} is damaged" in str(err.value)
    assert f"checkpoint_path={tmp_path} load_step=<step> (good steps: 100, 200)" in str(err.value)
    assert select_checkpoint(tmp_path, load_step=200) == tmp_path / "200"

    tamper(tmp_path / "100" / STATE_FILE)
    tamper(tmp_path / "200" / STATE_FILE)
    with pytest.raises(CheckpointError, match=f"no other checkpoint in {re.escape(str(tmp_path))}"):
        select_checkpoint(tmp_path / "300")


# ---------------------------------------------------------------------- resume fallback


def test_newest_good_step_skips_a_damaged_latest(tmp_path: Path) -> None:
    for name in ("100", "200", "300"):
        make_step(tmp_path, name)
    make_step(tmp_path, "400", complete=False)
    tamper(tmp_path / "300" / STATE_FILE)
    tamper(tmp_path / "100" / STATE_FILE)  # older than the good one: not checked
    good, bad = newest_good_step(tmp_path)
    assert good == tmp_path / "200"
    assert [step for step, _ in bad] == [tmp_path / "400", tmp_path / "300"]
    assert f"{tmp_path / '400'} is incomplete" in bad[0][1]
    assert f"{tmp_path / '300' / STATE_FILE} is damaged" in bad[1][1]


def test_newest_good_step_when_none_verifies(tmp_path: Path) -> None:
    assert newest_good_step(tmp_path / "checkpoints") == (None, [])
    make_step(tmp_path, "100")
    (tmp_path / "100" / STATE_FILE).unlink()
    good, bad = newest_good_step(tmp_path)
    assert good is None
    assert bad == [
        (tmp_path / "100", f"checkpoint file {tmp_path / '100' / STATE_FILE} is missing.")
    ]


def test_move_aside_keeps_the_files_and_frees_the_step(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    step = save_checkpoint(root, 300, weights(), {}, buffer=weights())
    files = {p.name: p.read_bytes() for p in step.iterdir()}
    moved = move_aside(step)
    assert moved == root / "damaged-300"
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == files
    assert list_steps(root) == ([], [])
    save_checkpoint(root, 300, weights(), {})  # the run can save that step again
    assert move_aside(root / "300") == root / "damaged-300-2"
    save_checkpoint(root, 400, weights(), {})
    prune_checkpoints(root, 400, "latest", keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["400", "damaged-300", "damaged-300-2"]
    assert select_checkpoint(root) == root / "400"
