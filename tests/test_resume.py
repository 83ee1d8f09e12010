"""Exact resume: a run killed with SIGKILL at arbitrary moments, including during a
checkpoint write, and restarted until done, ends exactly like a run never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from marl.checkpoint import BUFFER_FILE, STATE_FILE, CheckpointError, list_steps, select_checkpoint
from marl.errors import UsageError
from marl.experiment import Experiment
from marl.train import run
from tests.logging.test_tensorboard import scalars

RUN = [
    "env=matrix",
    "env.game=two_step",
    "batch_size_run=2",
    "t_max=3000",
    "save_model=true",
    "save_model_interval=300",
    "test_interval=250",
    "test_nepisode=4",
    "log_interval=200",
    "learner_log_interval=150",
    "logger=[jsonl,csv,tensorboard]",
    "logger.csv.exclude_prefixes=[time/]",  # wall-clock values differ between runs
]
ALGOS = {
    "qmix": ["algo=qmix", "batch_size=8", "buffer_size=64"],
    "mappo": ["algo=mappo"],  # on-policy: its yaml sizes the buffer to one rollout
}

# Runs marl-train in a child that SIGKILLs itself at the Nth call of a checkpoint
# primitive: torch.save (state.pt or buffer.pt written, the step folder incomplete)
# or the directory fsync (odd calls: before the rename; even calls: after it, before
# older buffers are pruned).
KILLER = """
import os, signal, sys
import marl.checkpoint as ckpt
what, nth = sys.argv[1], int(sys.argv[2])
calls = 0
def dying(real):
    def call(*args, **kwargs):
        global calls
        out = real(*args, **kwargs)
        calls += 1
        if calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return call
if what == "save":
    ckpt.torch.save = dying(ckpt.torch.save)
else:
    ckpt._fsync_dir = dying(ckpt._fsync_dir)
from marl.train import main
sys.argv = ["marl-train", *sys.argv[3:]]
main()
"""


def launch(run_dir: Path, kill: tuple[str, float] | None, algo: str = "qmix") -> int:
    """Run (or resume) the job in ``run_dir``; return its exit code (-9 when killed)."""
    args = [*RUN, *ALGOS[algo], f"hydra.run.dir={run_dir}"]
    if kill is None or kill[0] == "timer":
        cmd = [sys.executable, "-m", "marl", *args]
    else:
        cmd = [sys.executable, "-c", KILLER, kill[0], str(int(kill[1])), *args]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        timeout = kill[1] if kill is not None and kill[0] == "timer" else 120
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL
        _, err = proc.communicate()
    if proc.returncode not in (0, -9):
        raise AssertionError(f"run failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return proc.returncode


def final_state(run_dir: Path) -> dict:
    complete, _ = list_steps(run_dir / "checkpoints")
    path = run_dir / "checkpoints" / str(complete[-1]) / STATE_FILE
    return torch.load(path, weights_only=True)


def assert_equal(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_sigkilled_run_resumes_to_the_same_result(tmp_path: Path, algo: str) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert launch(reference, None, algo) == 0

    kills = [("save", 1), ("timer", 2.8), ("fsync", 2), ("timer", 3.0), ("save", 4)]
    kills += [("timer", 2.9), ("fsync", 3), ("timer", 3.2), ("save", 3)]
    saw_incomplete_write = False
    for kill in kills:
        code = launch(killed, kill, algo)
        if code == 0:
            break
        saw_incomplete_write |= any((killed / "checkpoints").glob(".tmp-*"))
    else:
        assert launch(killed, None, algo) == 0
    assert saw_incomplete_write, "no kill landed inside a checkpoint write"

    ref_metrics = (reference / "metrics.jsonl").read_text()
    assert (killed / "metrics.jsonl").read_text() == ref_metrics
    assert (killed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    curves = [scalars(run / "tensorboard") for run in (reference, killed)]
    assert curves[0] == curves[1]  # TensorBoard shows one curve per metric, as never killed
    assert list_steps(killed / "checkpoints") == list_steps(reference / "checkpoints")
    ref_state, killed_state = final_state(reference), final_state(killed)
    for part in ("learner", "runner", "env", "episode", "counters", "sample_generator"):
        assert_equal(killed_state[part], ref_state[part], part)
    assert not list((killed / "checkpoints").glob(".tmp-*"))


# ---------------------------------------------------------------- in-process resume modes

FAST = ["save_model=true", "save_model_interval=50", "test_interval=50", "log_interval=50"]


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_auto_continues_in_place_and_cuts_metrics(make_config, tmp_path: Path) -> None:
    """A finished run restarted with a larger t_max continues from its last checkpoint."""
    run(make_config(*FAST, "t_max=100"), tmp_path)
    rows = read_rows(tmp_path)
    # Plant lines a killed process would have written after its last checkpoint.
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"t_env": 10**6, "test/return_mean": -1.0}) + "\n")
    # Ends with a log in the loop but a checkpoint only after it (150 - 140 < 40).
    run(make_config(*FAST, "t_max=150", "save_model_interval=40"), tmp_path)
    resumed = read_rows(tmp_path)
    assert resumed[: len(rows)] == rows
    assert all(r["t_env"] < 10**6 for r in resumed)
    assert resumed[-1]["t_env"] == 150
    assert list_steps(tmp_path / "checkpoints")[0][-1] == 150  # the final checkpoint
    steps = [r["t_env"] for r in resumed if "test/return_mean" in r]
    assert steps == sorted(set(steps)), "a test step appears twice"


def test_resume_never_starts_fresh_in_a_new_folder(make_config, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(make_config(*FAST), run_dir)
    before = (run_dir / "metrics.jsonl").read_text()
    run(make_config(*FAST, "resume=never"), run_dir)
    assert (run_dir / "metrics.jsonl").read_text() == before
    sibling = tmp_path / "run_1"
    assert (sibling / "metrics.jsonl").read_text() == before  # same seed, fresh start
    assert list_steps(sibling / "checkpoints")[0][0] == 2


def test_stopped_before_first_checkpoint_starts_over(make_config, tmp_path: Path) -> None:
    run(make_config(*FAST), tmp_path / "reference")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / ".tmp-2-123").mkdir(parents=True)  # a killed first write
    (run_dir / "config.yaml").write_text("seed: 1\n")
    (run_dir / "metrics.jsonl").write_text('{"t_env": 2, "partial": 1}\n')
    run(make_config(*FAST), run_dir)
    expected = (tmp_path / "reference" / "metrics.jsonl").read_text()
    assert (run_dir / "metrics.jsonl").read_text() == expected


def test_continue_from_another_runs_checkpoint(make_config, tmp_path: Path) -> None:
    run(make_config(*FAST, "t_max=100"), tmp_path / "a")
    cfg = make_config(*FAST, "t_max=200", f"checkpoint_path={tmp_path / 'a'}")
    run(cfg, tmp_path / "b")
    rows = read_rows(tmp_path / "b")
    assert rows[0]["t_env"] > 100  # the new folder's log starts where the checkpoint was
    assert (tmp_path / "a" / "metrics.jsonl").read_text()  # the source run is untouched


def test_finetune_starts_a_new_run_from_weights(make_config, tmp_path: Path) -> None:
    run(make_config(*FAST, "t_max=100"), tmp_path / "a")
    cfg = make_config(*FAST, "t_max=4", f"checkpoint_path={tmp_path / 'a'}", "finetune=true")
    experiment = Experiment(cfg, tmp_path / "b")
    step_dir = select_checkpoint(tmp_path / "a")
    experiment.load(step_dir, "weights")
    saved = torch.load(step_dir / STATE_FILE, weights_only=True)["learner"]
    assert experiment.t_env == 0 and experiment.learner.train_steps == 0
    assert_equal(experiment.modules["mac"].state_dict(), saved["mac"], "mac")
    assert_equal(experiment.learner.targets["mac"].state_dict(), saved["mac"], "target_mac")
    assert experiment.learner.optimiser.state_dict()["state"] == {}
    with pytest.raises(UsageError, match="finetune"):
        run(make_config("finetune=true"), tmp_path / "c")


@pytest.mark.parametrize(
    ("save_buffer", "keep_last", "kept", "with_buffer"),
    [
        ("latest", 0, [2, 52, 102, 152, 200], [200]),
        ("all", 2, [152, 200], [152, 200]),
        ("never", 3, [102, 152, 200], []),
    ],
)
def test_checkpoint_retention(
    make_config, tmp_path: Path, save_buffer: str, keep_last: int, kept: list, with_buffer: list
) -> None:
    cfg = make_config(
        *FAST, f"checkpoint.save_buffer={save_buffer}", f"checkpoint.keep_last={keep_last}"
    )
    run(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert list_steps(root) == (kept, [])
    assert [s for s in kept if (root / str(s) / BUFFER_FILE).is_file()] == with_buffer


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo=vdn", "saved by algo=qmix"),
        ("env.game=penalty", "n_actions (saved 2, now 3)"),
        (
            "algo.modules.mac.agent.hidden_dim=16",
            "mac.agents.0.fc1.weight (saved (64, 8), now (16, 8))",
        ),
    ],
)
def test_incompatible_checkpoint_names_what_differs(
    make_config, tmp_path: Path, override: str, message: str
) -> None:
    run(make_config(*FAST, "t_max=50"), tmp_path / "a")
    cfg = make_config(f"checkpoint_path={tmp_path / 'a'}", "evaluate=true", override)
    with pytest.raises(CheckpointError) as info:
        run(cfg, tmp_path / "b")
    assert message in str(info.value)
    assert not (tmp_path / "b" / "eval.json").exists()


def test_evaluate_matches_the_greedy_test_logged_at_that_step(make_config, tmp_path: Path) -> None:
    run(make_config(*FAST, "t_max=300", "test_nepisode=8"), tmp_path / "train")
    logged = {r["t_env"]: r for r in read_rows(tmp_path / "train") if "test/return_mean" in r}
    cfg = make_config(
        f"checkpoint_path={tmp_path / 'train'}", "load_step=150", "evaluate=true", "test_nepisode=8"
    )
    run(cfg, tmp_path / "eval")
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["t_env"] in logged
    assert result["return_mean"] == pytest.approx(logged[result["t_env"]]["test/return_mean"])
