"""Shared fixtures: compose marl's config the way `marl-train` does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from marl.config import compose_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def group_options(group: str) -> list[str]:
    """Every option of a config group, from the files in conf/<group>/."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where CUDA is available (`make test-gpu` runs them all)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids oversubscription on 2 cores (up to 50x slower)."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture
def make_config() -> Callable[..., DictConfig]:
    """Compose with overrides; small, fast run settings unless overridden."""

    def make(*overrides: str) -> DictConfig:
        fast = ["env=matrix", "batch_size_run=1", "t_max=200", "test_interval=100"]
        fast += ["test_nepisode=4", "log_interval=100"]
        fast += ["learner_log_interval=100", "batch_size=8", "buffer_size=64"]
        return compose_config([*fast, *overrides])

    return make
