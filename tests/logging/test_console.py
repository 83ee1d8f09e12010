"""The console logger: plain lines off a terminal, a tqdm bar on one, labels in sweeps."""

from __future__ import annotations

import io
import logging
import logging.config
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from marl.config import register_configs
from marl.logging import console
from marl.logging.base import RunInfo
from marl.logging.console import ConsoleLogger, ProgressBar, format_duration, format_value

T_MAX = 1000


class TtyStream(io.StringIO):
    """A string stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def screen(text: str, width: int = 1000) -> list[str]:
    """The rows a terminal ``width`` columns wide shows after ``text``: carriage returns,
    newlines, ESC[K (erase to the end of the row) and wrapping of long rows."""
    rows: list[list[str]] = [[]]
    col = 0
    for token in re.findall(r"\x1b\[K|.", text, flags=re.DOTALL):
        if token == "\x1b[K":
            del rows[-1][col:]
        elif token == "\r":
            col = 0
        elif token == "\n" or col == width:
            rows.append([])
            col = 0
        if token in ("\x1b[K", "\r", "\n"):
            continue
        row = rows[-1]
        row.extend(" " * (col + 1 - len(row)))
        row[col] = token
        col += 1
    return ["".join(row).rstrip() for row in rows]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], TtyStream]]:
    """Call it in the test body (pytest's capture resets ``sys.stdout`` after the setup): a
    fake 60-column terminal as stdout, with a logging handler on it at INFO, as Hydra's."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)

    def make() -> TtyStream:
        tty = TtyStream()
        monkeypatch.setattr(sys, "stdout", tty)
        monkeypatch.setenv("COLUMNS", "60")
        monkeypatch.setenv("LINES", "24")
        handler = logging.StreamHandler(tty)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        return tty

    yield make
    for bar in list(ProgressBar._instances):  # left open by a failed test
        bar.close()
    root.handlers = handlers
    root.setLevel(level)


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


def test_terminal_shows_a_bar_that_redraws_in_place(
    tmp_path: Path, terminal: Callable[[], TtyStream]
) -> None:
    tty = terminal()
    logger = started(ConsoleLogger(refresh_s=0), tmp_path)
    assert logger.interactive
    assert "steps/s" not in tty.getvalue()  # not before the first progress (evaluation has none)
    logger.progress(100)
    logger.progress(200)
    rows = screen(tty.getvalue())
    assert "t_env 200/1,000 (20%)" in rows[-1]
    assert sum("steps/s" in row for row in rows) == 1
    assert tty.getvalue().count("\n") == 1  # the "run folder" line; the bar keeps its row
    logger.close()


def test_log_record_prints_above_the_live_bar(
    tmp_path: Path, terminal: Callable[[], TtyStream]
) -> None:
    """A logging line (Hydra's console handler) and a metric line each get a row of their
    own; the bar redraws below them (it used to end up glued to the bar's row)."""
    tty = terminal()
    logger = started(ConsoleLogger(refresh_s=0), tmp_path)
    logger.progress(100)
    logging.getLogger("marl").info("saved checkpoint X")
    logger.progress(200)
    logger.log({"train/return_mean": 1.0}, t_env=200)
    logger.progress(300)
    rows = [row for row in screen(tty.getvalue()) if row]
    assert "saved checkpoint X" in rows
    assert "[t_env 200] train: return_mean 1" in rows
    assert rows.index("saved checkpoint X") < rows.index("[t_env 200] train: return_mean 1")
    assert "t_env 300/1,000" in rows[-1]
    logger.close()


def test_bar_fits_the_terminal_and_leaves_no_old_lines(
    tmp_path: Path, terminal: Callable[[], TtyStream]
) -> None:
    """On a 60-column terminal, a status longer than that is cut, not wrapped: a wrapped line
    leaves a row behind at every redraw, and so did each metric line."""
    tty = terminal()
    logger = started(ConsoleLogger(refresh_s=0), tmp_path)
    logger.log({"test/return_mean": 7.125, "test/battle_won_mean": 0.5}, t_env=100)
    assert len(logger.status(100)) > 60
    for t_env in range(100, 1001, 100):
        logger.progress(t_env)
        if t_env % 300 == 0:
            logger.log({"train/return_mean": 1.0}, t_env=t_env)
    rows = screen(tty.getvalue(), width=60)
    bar_rows = [row for row in rows if "steps/s" in row]
    assert len(bar_rows) == 1
    assert bar_rows[0] == rows[-1]
    assert "t_env 1,000/1,000 (100%)" in rows[-1]
    logger.close()
    rows = screen(tty.getvalue(), width=60)
    assert [i for i, row in enumerate(rows) if "steps/s" in row] == [len(rows) - 2]  # then ""


def test_terminal_refresh_interval_limits_redraws(
    tmp_path: Path, clock: Clock, terminal: Callable[[], TtyStream]
) -> None:
    tty = terminal()
    logger = started(ConsoleLogger(refresh_s=1.0), tmp_path)
    for _ in range(6):
        clock.now += 0.3
        logger.progress(10)
    # Drawn as it opens at 0.3 s, redrawn at 1.5 s only (0.6 ... 1.2 are too soon, 1.8 is
    # 0.3 after the redraw).
    assert tty.getvalue().count("steps/s") == 2
    logger.close()


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


def eta_seconds(status: str) -> float | None:
    """``... | ETA 15:22 | ...`` -> 922.0; ``ETA ?`` -> None."""
    match = re.search(r"ETA (\?|[\d:]+)", status)
    assert match is not None, status
    if match[1] == "?":
        return None
    return float(sum(int(p) * 60**i for i, p in enumerate(reversed(match[1].split(":")))))


def test_eta_unknown_while_the_buffer_fills_then_from_steady_progress(
    tmp_path: Path, clock: Clock
) -> None:
    """2 s at 2,000 steps/s (buffer filling, no updates), then 100 steps/s: the first ETA
    used to be 20x too low. Now it reads ? for 1.5 windows, then follows the steady rate."""
    logger = ConsoleLogger(eta_window_s=20.0, stream=io.StringIO())
    logger.start(RunInfo(run_dir=tmp_path, t_max=100_000, config={}))
    t_env = 0
    for _ in range(4):  # 2 s of buffer filling
        clock.now += 0.5
        t_env += 1000
        logger.progress(t_env)
    assert eta_seconds(logger.status(t_env)) is None
    while clock.now < 100.0 + 25.0:
        clock.now += 0.5
        t_env += 50
        logger.progress(t_env)
    assert eta_seconds(logger.status(t_env)) is None  # 5 s of steady progress: too little
    while clock.now < 100.0 + 40.0:
        clock.now += 0.5
        t_env += 50
        logger.progress(t_env)
    status = logger.status(t_env)
    assert "| 100 steps/s |" in status
    assert eta_seconds(status) == pytest.approx((100_000 - t_env) / 100, abs=1)


def test_eta_follows_the_last_window(tmp_path: Path, clock: Clock) -> None:
    """After a slowdown, the ETA is from the last window's rate, not the average."""
    logger = ConsoleLogger(eta_window_s=10.0, stream=io.StringIO())
    logger.start(RunInfo(run_dir=tmp_path, t_max=100_000, config={}))
    t_env = 0
    for steps_per_s in (400, 100):
        for _ in range(60):  # 30 s each
            clock.now += 0.5
            t_env += steps_per_s // 2
            logger.progress(t_env)
    assert eta_seconds(logger.status(t_env)) == pytest.approx((100_000 - t_env) / 100, abs=1)


def test_close_ends_the_bar_line_and_is_repeatable(
    tmp_path: Path, terminal: Callable[[], TtyStream]
) -> None:
    tty = terminal()
    logger = started(ConsoleLogger(refresh_s=0), tmp_path)
    logger.progress(10)
    logger.close()
    out = tty.getvalue()
    assert out.endswith("\n")
    logger.close()
    assert tty.getvalue() == out
    logging.getLogger("marl").info("after close")  # logging has its own handler back
    assert tty.getvalue() == out + "after close\n"


def hydra_job(monkeypatch: pytest.MonkeyPatch, mode: RunMode, num: int | None) -> DictConfig:
    """Make this process look like a Hydra job (seed 3): ``HydraConfig`` as the job sees it;
    returns the job's config with its ``hydra`` node."""
    register_configs()
    with initialize_config_module(config_module="marl.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["seed=3"], return_hydra_config=True)
    cfg.hydra.mode = mode
    if num is not None:
        cfg.hydra.job.num = num
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)
    HydraConfig.instance().set_config(cfg)
    return cfg


def job_logging_formatter(cfg: DictConfig) -> logging.Formatter:
    """The console formatter of conf/hydra/job_logging/marl.yaml, built as Hydra builds it."""
    node = OmegaConf.to_container(cfg.hydra.job_logging.formatters.console, resolve=True)
    assert isinstance(node, dict)
    config = {str(key): value for key, value in node.items()}
    return logging.config.DictConfigurator({"version": 1}).configure_formatter(config)


@pytest.mark.parametrize(
    ("mode", "num", "label"),
    [(RunMode.MULTIRUN, 2, "[#2 seed=3] "), (RunMode.RUN, None, "")],
    ids=["multirun", "single"],
)
def test_sweep_jobs_label_every_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: RunMode,
    num: int | None,
    label: str,
) -> None:
    """Parallel jobs share a terminal: in a multirun each line says whose it is, and plain
    lines replace the bar (live bars would overwrite one another). Single runs: unlabelled."""
    cfg = hydra_job(monkeypatch, mode, num)
    stream = TtyStream()
    logger = ConsoleLogger(refresh_s=0, print_interval_s=0, stream=stream)
    logger.start(RunInfo(run_dir=tmp_path, t_max=T_MAX, config={"seed": 3}))
    assert logger.interactive == (label == "")
    logger.progress(100)
    logger.log({"train/return_mean": 1.0}, t_env=100)
    logger.close()
    out = stream.getvalue()
    rows = [row for row in screen(out) if row]
    assert label + "[t_env 100] train: return_mean 1" in rows
    assert all(row.startswith(label) for row in rows)
    assert ("[#" in out) == bool(label)
    assert ("\r" in out) == (not label)  # a bar in a single run only

    record = logging.makeLogRecord({"msg": "saved checkpoint X\nsecond line", "name": "marl"})
    lines = job_logging_formatter(cfg).format(record).splitlines()
    assert lines[0].startswith(label + "[") and lines[0].endswith("saved checkpoint X")
    assert lines[1] == label + "second line"
