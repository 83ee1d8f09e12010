"""Stop signals: Ctrl-C, SIGTERM and SLURM's signals end a run after a whole iteration,
with a checkpoint, one line and the shell's exit code; the run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from marl import interrupt
from marl.checkpoint import STATE_FILE, list_steps
from marl.experiment import Experiment
from marl.interrupt import Interrupted, StopSignals
from marl.train import run

RUN = ["batch_size_run=2", "t_max=400", "save_model=true", "save_model_interval=300"]
RUN += ["test_interval=100", "log_interval=50", "learner_log_interval=50"]


def state(run_dir: Path, step: int) -> dict:
    return torch.load(run_dir / "checkpoints" / str(step) / STATE_FILE, weights_only=True)


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_exactly(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    run(make_config(*RUN), reference)

    real_update, calls = Experiment.update, [0]

    def update(self: Experiment, stats: bool) -> dict[str, float]:
        calls[0] += 1
        if calls[0] == 40:  # mid-run, between periodic checkpoints
            os.kill(os.getpid(), signal.SIGTERM)
        return real_update(self, stats)

    monkeypatch.setattr(Experiment, "update", update)
    with pytest.raises(Interrupted, match="stopped by SIGTERM at t_env") as stop:
        run(make_config(*RUN), stopped)
    assert stop.value.exit_code == 128 + signal.SIGTERM
    assert stop.value.checkpoint is not None and stop.value.checkpoint.is_dir()
    step = int(stop.value.checkpoint.name)
    periodic = list_steps(reference / "checkpoints")[0]  # after the first batch, 300, 400
    assert list_steps(stopped / "checkpoints")[0] == [periodic[0], step] and step < periodic[1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    monkeypatch.setattr(Experiment, "update", real_update)
    run(make_config(*RUN), stopped)  # resumes from the stop's checkpoint
    assert (stopped / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
    # The stop's extra checkpoint did not move the periodic ones.
    assert list_steps(stopped / "checkpoints")[0] == sorted([*periodic, step])
    final = list_steps(reference / "checkpoints")[0][-1]
    got, want = state(stopped, final)["learner"], state(reference, final)["learner"]
    for key, value in want["mac"].items():
        assert torch.equal(got["mac"][key], value), key


def test_ctrl_c_on_the_command_line_exits_130_with_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["env=matrix", "batch_size_run=1", "t_max=1000000", "save_model=true"]
    args += ["save_model_interval=1000000", f"hydra.run.dir={run_dir}"]
    # A terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a suite started
    # in the background (`cmd &` in a script) would hand its runs an ignored SIGINT.
    proc = subprocess.Popen(
        [sys.executable, "-m", "marl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list_steps(run_dir / "checkpoints")[0]:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    (line,) = [line for line in out.splitlines() if "stopped by SIGINT" in line]
    assert "rerunning the same command (or a requeue) resumes from it" in line
    steps = list_steps(run_dir / "checkpoints")[0]
    assert f"checkpoints/{steps[-1]}" in line
    # The stop saves its own checkpoint, unless it came in the iteration that wrote the
    # first one (a slow machine): then it names that one instead of saving it twice.
    assert len(steps) == 2 or f"at t_env {steps[0]:,} " in line, (steps, line)


def test_a_handler_installed_before_is_kept_for_after_the_checkpoint() -> None:
    """submitit's save-and-requeue on SIGUSR2 runs once the checkpoint is written."""
    calls: list[int] = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stop.received == signal.SIGUSR2 and calls == []
            forward = stop.previous_handler(signal.SIGUSR2)
            assert forward is not None
            assert stop.previous_handler(signal.SIGTERM) is None  # the default action
        forward(signal.SIGUSR2, None)
        assert calls == [signal.SIGUSR2]
        os.kill(os.getpid(), signal.SIGUSR2)  # restored after the context
        assert calls == [signal.SIGUSR2] * 2
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_a_second_ctrl_c_stops_at_once_unless_it_is_the_same_keypress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(interrupt.time, "monotonic", lambda: clock[0])
    with StopSignals() as stop:
        stop._handle(signal.SIGINT, None)
        stop._handle(signal.SIGINT, None)  # forwarded twice (timeout, srun): ignored
        assert stop.received == signal.SIGINT
        clock[0] += 2 * interrupt.FORCE_AFTER_S
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)


def test_a_stop_without_save_model_says_nothing_was_saved() -> None:
    message = str(Interrupted(signal.SIGTERM, 1200, 5000, None))
    assert (
        message
        == "stopped by SIGTERM at t_env 1,200 of 5,000: nothing was saved (save_model=false)."
    )
    json.dumps(message)
