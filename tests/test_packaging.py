"""Install modes: `marl-train` finds its configs editable and as a wheel, from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "marl").rglob("__init__.py")
    }
    assert listed == found | {"marl.conf"}
    assert (ROOT / "conf" / "__init__.py").is_file()


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


def test_editable_install_finds_configs_from_any_folder(tmp_path: Path) -> None:
    exe = shutil.which("marl-train")
    if exe is None:
        pytest.skip("marl-train is not on PATH (package not installed)")
    out = run([exe, "--info", "searchpath"], cwd=tmp_path)
    assert "pkg://marl.conf" in out.stdout


def test_wheel_in_a_fresh_venv_trains_from_any_folder(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a new venv, run the console script and -m."""
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=ROOT)
    (wheel,) = dist.glob("marl-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # the collision kernel's source ships too
        assert "marl/envs/battle/collide.c" in archive.namelist()
    env_dir = tmp_path / "venv"
    # Dependencies (torch, hydra) come from this interpreter's site-packages; marl itself
    # only from the wheel, which the venv's own site-packages puts first.
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)
    where = run([str(python), "-c", "import marl; print(marl.__file__)"], cwd=tmp_path)
    assert str(env_dir) in where.stdout

    work = tmp_path / "elsewhere"
    work.mkdir()
    job = run([str(bindir / "marl-train"), "--cfg", "job"], cwd=work)
    assert "_target_: marl.learners.q_learning.QLearner" in job.stdout
    short = ["t_max=50", "test_interval=50", "batch_size=2", "test_nepisode=8"]
    run([str(bindir / "marl-train"), *short], cwd=work)  # the default: QMIX on battle 3m
    run([str(python), "-m", "marl", *short], cwd=work)
    runs = list((work / "outputs" / "qmix" / "battle_3m" / "seed1").iterdir())
    assert len(runs) >= 1
    assert all((r / "metrics.jsonl").stat().st_size > 0 for r in runs)
