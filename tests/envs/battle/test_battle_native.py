"""The collision pass's C kernel: built once per machine into the cache, and the torch
ops when it cannot be built (its results are checked in test_battle_collisions.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import use_kernel

from marl.envs.battle import native
from marl.envs.battle.env import BattleEnv

CPU = torch.device("cpu")


@pytest.fixture
def fresh_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty kernel cache in ``tmp_path``; the process's usual kernel afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    native._library.cache_clear()
    yield tmp_path / "marl"
    native._library.cache_clear()


def positions(env: BattleEnv, steps: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        avail = env.avail_actions()  # (B, N, A)
        env.step((torch.rand(avail.shape, generator=gen) * avail).argmax(-1))
        out.append(env.units.pos.clone())  # (B, U, 2)
    return out


def test_the_kernel_is_built_once_into_the_cache(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_kernel("native", monkeypatch)
    built = list(fresh_build.glob("collide-*.so"))
    assert len(built) == 1 and not list(fresh_build.glob("*.tmp"))
    stamp = built[0].stat().st_mtime_ns
    native._library.cache_clear()  # a new process: loads what is there
    assert native.available(CPU)
    assert built[0].stat().st_mtime_ns == stamp
    assert not native.available(torch.device("meta"))  # not on an accelerator


def test_without_a_compiler_the_torch_ops_play(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CC", str(fresh_build / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert not native.available(CPU)
    assert "could not build the C collision pass" in caplog.text
    without = positions(BattleEnv("2s3z", batch_size=2, seed=1), 10)
    use_kernel("torch", monkeypatch)
    torch_ops = positions(BattleEnv("2s3z", batch_size=2, seed=1), 10)
    for x, y in zip(without, torch_ops, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_kernel_and_torch_ops_play_the_same_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same pass in C and in torch ops, rounding apart (sqrt of squares against hypot,
    # one sum order), over the first steps of a crowded map, before the rounding
    # changes a fight.
    use_kernel("native", monkeypatch)
    kernel = positions(BattleEnv("2s3z", batch_size=4, seed=2), 6)
    use_kernel("torch", monkeypatch)
    torch_ops = positions(BattleEnv("2s3z", batch_size=4, seed=2), 6)
    for x, y in zip(kernel, torch_ops, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-4)


def test_marl_native_0_switches_the_kernel_off() -> None:
    code = "from marl.envs.battle import native; print(native.ENABLED)"
    env = {**os.environ, "MARL_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
