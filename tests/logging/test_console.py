"""The console logger: plain lines off a terminal, a redrawn line on one."""

from __future__ import annotations

import io
import types
from pathlib import Path

import pytest

from marl.logging import console
from marl.logging.base import RunInfo
from marl.logging.console import ConsoleLogger, format_duration, format_value

T_MAX = 1000


class TtyStream(io.StringIO):
    """A string stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A settable stand-in for ``time.monotonic``."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(console, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def started(logger: ConsoleLogger, tmp_path: Path) -> ConsoleLogger:
    logger.start(RunInfo(run_dir=tmp_path, t_max=T_MAX, config={}))
    return logger


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0:00"),
        (5, "0:05"),
        (59.9, "0:59"),
        (60, "1:00"),
        (65, "1:05"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
        (360000, "100:00:00"),
        (-7, "0:00"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_plain_stream_prints_lines_without_carriage_returns(tmp_path: Path) -> None:
    stream = io.StringIO()
    logger = started(ConsoleLogger(print_interval_s=0, stream=stream), tmp_path)
    assert not logger.interactive
    logger.progress(100)
    logger.progress(200)
    logger.close()
    out = stream.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 2
    assert "t_env 100/1,000" in lines[0]
    assert "t_env 200/1,000" in lines[1]


def test_plain_stream_large_interval_prints_nothing(tmp_path: Path) -> None:
    stream = io.StringIO()
    logger = started(ConsoleLogger(print_interval_s=1e9, stream=stream), tmp_path)
    for t in range(0, 1000, 100):
        logger.progress(t)
    logger.close()
    assert stream.getvalue() == ""


def test_plain_stream_prints_at_most_every_interval(tmp_path: Path, clock: Clock) -> None:
    stream = io.StringIO()
    logger = started(ConsoleLogger(print_interval_s=10.0, stream=stream), tmp_path)
    printed = []
    for step, dt in enumerate([5.0, 5.0, 3.0, 3.0, 3.0, 1.0, 20.0], start=1):
        clock.now += dt
        before = stream.getvalue()
        logger.progress(step * 10)
        printed.append(stream.getvalue() != before)
    # Elapsed since the last line: 5, 10 (print), 3, 6, 9, 10 (print), 20 (print).
    assert printed == [False, True, False, False, False, True, True]
    assert "\r" not in stream.getvalue()


def test_terminal_redraws_one_line_with_carriage_returns(tmp_path: Path) -> None:
    stream = TtyStream()
    logger = started(ConsoleLogger(refresh_s=0, stream=stream), tmp_path)
    assert logger.interactive
    logger.progress(100)
    logger.progress(200)
    out = stream.getvalue()
    assert out.count("\r") == 2
    assert "\n" not in out
    first, second = out.split("\r")[1:]
    assert first.startswith("\033[K") and "t_env 100/1,000 (10%)" in first
    assert second.startswith("\033[K") and "t_env 200/1,000 (20%)" in second
    # A log event first ends the open progress line.
    logger.log({"train/return_mean": 1.0}, t_env=200)
    assert stream.getvalue()[len(out) :].startswith("\n[t_env 200]")
    logger.close()


def test_terminal_refresh_interval_limits_redraws(tmp_path: Path, clock: Clock) -> None:
    stream = TtyStream()
    logger = started(ConsoleLogger(refresh_s=1.0, stream=stream), tmp_path)
    for _ in range(5):
        clock.now += 0.3
        logger.progress(10)
    # Redraws at 1.2 s only (0.3, 0.6, 0.9 are too soon; 1.5 is 0.3 after the redraw).
    assert stream.getvalue().count("\r") == 1


def test_log_prints_every_metric(tmp_path: Path) -> None:
    stream = io.StringIO()
    logger = started(ConsoleLogger(stream=stream), tmp_path)
    metrics = {"train/return_mean": 1.5, "learner/loss": 0.25, "time/sps": 1234.0}
    logger.log(metrics, t_env=1500)
    out = stream.getvalue()
    assert out.startswith("[t_env 1,500]")
    assert out.endswith("\n")
    assert "learner: loss 0.25 | time: sps 1,234 | train: return_mean 1.5" in out


def test_format_value() -> None:
    assert format_value(10000.0) == "10,000"
    assert format_value(0.123456) == "0.1235"
    assert format_value(-3.0) == "-3"


def test_status_shows_last_test_return(tmp_path: Path) -> None:
    logger = started(ConsoleLogger(stream=io.StringIO()), tmp_path)
    assert "test return" not in logger.status(0)
    logger.log({"test/return_mean": 7.125, "test/battle_won_mean": 0.5}, t_env=100)
    logger.log({"train/return_mean": 2.0}, t_env=200)  # no test metrics: keep the last
    assert logger.last_test["test/return_mean"] == 7.125
    status = logger.status(200)
    assert "test return 7.125" in status
    assert "win 50%" in status
    logger.log({"test/return_mean": 9.0}, t_env=300)
    assert "test return 9.000" in logger.status(300)


def test_eta_unknown_before_progress(tmp_path: Path) -> None:
    logger = started(ConsoleLogger(stream=io.StringIO()), tmp_path)
    status = logger.status(0)
    assert "ETA ?" in status
    assert "t_env 0/1,000 (0%)" in status


def test_eta_from_steps_per_second(tmp_path: Path, clock: Clock) -> None:
    logger = started(ConsoleLogger(stream=io.StringIO()), tmp_path)
    clock.now += 10.0
    status = logger.status(250)  # 25 steps/s, 750 steps left -> 30 s
    assert "25 steps/s" in status
    assert "elapsed 0:10" in status
    assert "ETA 0:30" in status


def test_close_ends_open_line_and_is_repeatable(tmp_path: Path) -> None:
    stream = TtyStream()
    logger = started(ConsoleLogger(refresh_s=0, stream=stream), tmp_path)
    logger.progress(10)
    logger.close()
    logger.close()
    assert stream.getvalue().endswith("\n")
    assert stream.getvalue().count("\n") == 1
