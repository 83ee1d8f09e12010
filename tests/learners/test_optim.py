"""Tests for marl.learners.optim: torch's Adam and RMSprop without the Dynamo import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from marl.learners import optim

# (ours, torch's, keyword arguments as make_optimiser passes them)
OPTIMISERS = {
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.01, "eps": 1e-5, "fused": True}),
    "rmsprop": (
        optim.RMSprop,
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-5, "foreach": True},
    ),
}


def train(optimiser_cls: type, kwargs: dict, steps: int, state: dict | None = None) -> tuple:
    """A small network trained ``steps`` steps (from optimiser ``state`` when given):
    its parameters and the optimiser's state dict."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimiser = optimiser_cls(net.parameters(), **kwargs)
    if state is not None:
        optimiser.load_state_dict(state)
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        net(torch.randn(5, 4, generator=data)).pow(2).sum().backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
    return [p.detach().clone() for p in net.parameters()], optimiser.state_dict()


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_steps_exactly_as_torchs_optimiser(name: str) -> None:
    ours, theirs, kwargs = OPTIMISERS[name]
    params, state = train(ours, kwargs, steps=4)
    torch_params, torch_state = train(theirs, kwargs, steps=4)
    assert all(torch.equal(a, b) for a, b in zip(params, torch_params, strict=True))
    assert state["param_groups"] == torch_state["param_groups"]
    for key, value in torch_state["state"][0].items():
        assert torch.equal(state["state"][0][key], value), key


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_state_dicts_cross_between_ours_and_torchs(name: str) -> None:
    """A checkpoint written with torch's optimiser resumes in ours, and back."""
    ours, theirs, kwargs = OPTIMISERS[name]
    _, torch_state = train(theirs, kwargs, steps=3)
    _, our_state = train(ours, kwargs, steps=3)
    from_torch, _ = train(ours, kwargs, steps=2, state=torch_state)
    from_ours, _ = train(theirs, kwargs, steps=2, state=our_state)
    assert all(torch.equal(a, b) for a, b in zip(from_torch, from_ours, strict=True))


def test_step_hooks_still_run() -> None:
    net = nn.Linear(2, 1)
    optimiser = optim.Adam(net.parameters(), lr=0.1)
    calls: list[str] = []
    optimiser.register_step_pre_hook(lambda *_: calls.append("pre"))
    optimiser.register_step_post_hook(lambda *_: calls.append("post"))
    net(torch.ones(1, 2)).sum().backward()
    optimiser.step()
    assert calls == ["pre", "post"]


def test_training_does_not_import_dynamo() -> None:
    """Building, stepping, saving and loading the optimisers of make_optimiser leaves
    Dynamo unimported (torch's own import it: about a second of every run's start-up)."""
    code = """
import sys, torch
from torch import nn
from marl.learners.common import gradient_step, make_optimiser
net = nn.Linear(3, 2)
for name in ("adam", "rmsprop"):
    params = list(net.parameters())
    optimiser = make_optimiser(params, name, lr=0.1, alpha=0.99, eps=1e-5)
    gradient_step(optimiser, net(torch.ones(4, 3)).pow(2).sum(), params, max_norm=10.0)
    optimiser.load_state_dict(optimiser.state_dict())
print('torch._dynamo' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout
