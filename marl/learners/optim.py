"""torch's Adam and RMSprop, minus the Dynamo import that their first call costs.

``torch.optim.Optimizer`` wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` in ``torch._disable_dynamo``, and every ``step`` in a wrapper that
imports ``torch._dynamo``: whatever the run, building or stepping an optimiser imports
Dynamo, about a second of every process (an LBF run's start-up went 3.1-3.6 s -> 2.1-2.2
s without it). Dynamo only matters to an optimiser traced by ``torch.compile``; marl
compiles losses and env steps, never the optimiser. These subclasses call the same
methods without those wrappers (``inspect.unwrap`` follows the ``functools.wraps``
chain): the same code runs, so the numbers, the state dicts and the optimiser hooks are
torch's. Where a torch version has no such wrapper, the method is torch's own, Dynamo
import and all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer


class _WithoutDynamo(Optimizer):
    add_param_group = inspect.unwrap(Optimizer.add_param_group)
    zero_grad = inspect.unwrap(Optimizer.zero_grad)
    state_dict = inspect.unwrap(Optimizer.state_dict)
    load_state_dict = inspect.unwrap(Optimizer.load_state_dict)

    _torch_step: Callable[..., Any]
    """The torch optimiser's own ``step``, unwrapped."""

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        # what torch's wrapper does, less its Dynamo graph break: no autograd in the step
        with torch.set_grad_enabled(bool(self.defaults["differentiable"])):
            return type(self)._torch_step(self, closure)


class Adam(_WithoutDynamo, torch.optim.Adam):
    _torch_step = inspect.unwrap(torch.optim.Adam.step)


class RMSprop(_WithoutDynamo, torch.optim.RMSprop):
    _torch_step = inspect.unwrap(torch.optim.RMSprop.step)
