"""`marl-train --help` (conf/hydra/help/marl.yaml): the user's groups and settings only.

Hydra's own group listing also shows the internal ``schema/*`` groups, so the help
lists groups and settings by hand; these tests keep that list in step with conf/ and
with `TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marl.config import TrainConfig

CONF = Path(__file__).resolve().parents[1] / "conf"
HYDRA_USER_GROUPS = ("hydra/launcher",)  # conf/hydra's others (help, logging) are internal
MISSION_COMMANDS = (
    "marl-train",
    "marl-train algo=qmix env=sc2 env.map_name=3s5z seed=1,2,3 -m",
    "marl-train -m algo=qmix,vdn seed=1,2,3 hydra/launcher=slurm",
    "marl-train checkpoint_path=outputs/<run>/checkpoints load_step=200000 evaluate=true",
)


@pytest.fixture(scope="module")
def help_text() -> str:
    """What `marl-train --help` prints (one subprocess for the module)."""
    out = subprocess.run(
        [sys.executable, "-m", "marl", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def section(text: str, title: str) -> str:
    """The lines of the ``== <title> ... ==`` section."""
    match = re.search(rf"^== {re.escape(title)}\b.*?==\n(.*?)(?=^== |\Z)", text, re.M | re.S)
    assert match, f"no '{title}' section in the help"
    return match.group(1)


def first_columns(text: str) -> dict[str, str]:
    """Each entry line's names (``a, b  meaning``: a and b) -> the rest of its line."""
    entries = {}
    for line in text.splitlines():
        match = re.match(r"^  (\S.*?)\s{2,}(.*)$", line)
        if match:
            for name in match.group(1).split(", "):
                entries[name] = match.group(2)
    return entries


def conf_groups() -> dict[str, set[str]]:
    """Every config group in conf/ and its options (the YAML files directly in it)."""
    groups: dict[str, set[str]] = {}
    for path in CONF.rglob("*.yaml"):
        group = path.parent.relative_to(CONF).as_posix()
        internal = group.startswith("hydra/") and group not in HYDRA_USER_GROUPS
        if group != "." and not internal:
            groups.setdefault(group, set()).add(path.stem)
    return groups


def test_help_lists_the_users_groups_not_the_internal_schemas(help_text: str) -> None:
    """`--help` listed `schema/*` groups and no key's meaning."""
    assert "schema/" not in help_text
    listed = first_columns(section(help_text, "Config groups"))
    options = {group: set(rest.split(":")[0].split(", ")) for group, rest in listed.items()}
    assert options == conf_groups()


def test_help_gives_every_setting_a_meaning(help_text: str) -> None:
    listed = first_columns(section(help_text, "Settings"))
    assert set(listed) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(meaning.strip() for meaning in listed.values())


def test_help_shows_the_mission_commands(help_text: str) -> None:
    examples = [line.strip() for line in section(help_text, "Examples").splitlines()]
    assert all(command in examples for command in MISSION_COMMANDS)


def test_start_up_does_not_import_the_compiler() -> None:
    """Dynamo and Inductor cost every process over a second to import; only a run that
    compiles (env.compile, learner.compile) should pay it. A decorator such as
    ``torch.compiler.disable`` at module level imports them."""
    code = "import sys, marl.train; print([m for m in sys.modules if m == 'torch._dynamo'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
