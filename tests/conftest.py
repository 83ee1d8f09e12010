"""Shared fixtures and helpers: compose marl's config the way `marl-train` does, skip
`gpu` tests without CUDA, count reads back to the host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import get_class
from omegaconf import DictConfig

from marl.config import compose_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def group_options(group: str) -> list[str]:
    """Every option of a config group, from the files in conf/<group>/."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


HOST_READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy")


def count_host_reads(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[str]:
    """From now on, record every tensor method that copies a value to the host (``fail``:
    raise at the first instead): what waits for the device off the CPU."""
    reads: list[str] = []
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _real: Any = real, _name: str = name) -> Any:
            if fail:
                raise AssertionError(f"read a tensor back to the host with {_name}")
            reads.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


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
        fast += ["test_nepisode=4", "log_interval=100", "learner_log_interval=100"]
        cfg = compose_config([*fast, *overrides])
        if get_class(cfg.learner._target_).on_policy:
            return cfg  # its algo yaml ties batch_size and buffer_size to batch_size_run
        return compose_config([*fast, "batch_size=8", "buffer_size=64", *overrides])

    return make
