"""Helpers for the battle simulator's tests: deterministic envs and scripted scenarios."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest
import torch

from marl.envs.battle import native
from marl.envs.battle.env import BattleEnv

DISARMED = 1e9  # cooldown loops: a unit with this never fires

MakeEnv = Callable[..., BattleEnv]
Scenario = Callable[..., None]
KERNELS = ["native", "torch"]
"""The eager CPU collision pass: the C loop, or tensor ops (as on an accelerator)."""


def use_kernel(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager CPU collision passes in ``kernel``: "native" (the C loop; skipped where no C
    compiler is installed) or "torch" (tensor ops, as on an accelerator)."""
    if kernel == "torch":
        monkeypatch.setattr(native, "ENABLED", False)
    elif not native.available(torch.device("cpu")):
        if shutil.which(native.compiler()[0]) is None:
            pytest.skip("no C compiler for the collision kernel")
        pytest.fail("a C compiler is installed but the collision kernel did not build")


@pytest.fixture
def make_env() -> MakeEnv:
    """A battle env without randomness (no spawn noise, no cooldown jitter) unless asked."""

    def make(map_name: str = "3m", batch_size: int = 1, **kwargs: Any) -> BattleEnv:
        kwargs.setdefault("spawn_noise", 0.0)
        kwargs.setdefault("cooldown_jitter", False)
        return BattleEnv(map_name, batch_size=batch_size, seed=0, **kwargs)

    return make


@pytest.fixture
def scenario() -> Scenario:
    """Place units by index (allies first, then enemies); every unit not placed is dead.

    ``disarmed`` units never fire; ``health``/``shield`` override absolute points.
    """

    def setup(
        env: BattleEnv,
        placed: dict[int, tuple[float, float]],
        disarmed: tuple[int, ...] = (),
        health: dict[int, float] | None = None,
        shield: dict[int, float] | None = None,
    ) -> None:
        tab = env.tab
        pos = env.units.pos[0].clone()  # (U, 2)
        hp, sh = tab.health_max[0].clone(), tab.shield_max[0].clone()  # (U,), (U,)
        cooldown = torch.zeros(tab.n_units)  # (U,)
        for u in range(tab.n_units):
            if u in placed:
                pos[u] = torch.tensor(placed[u])
            else:
                hp[u] = 0.0
        for u in disarmed:
            cooldown[u] = DISARMED
        for u, value in (health or {}).items():
            hp[u] = value
        for u, value in (shield or {}).items():
            sh[u] = value
        env.set_unit_state(pos=pos, health=hp, shield=sh, cooldown=cooldown)

    return setup
