"""B copies of a single-copy env as one `BatchedEnv`: in-process, or one worker process each.

Third-party envs (Gymnasium, PettingZoo, SC2) step one episode at a time. A
``SingleEnv`` is that one copy behind a small numpy interface; this module makes
B of them a ``BatchedEnv``:

- ``SerialBatchedEnv`` steps the B copies one after the other in this process
  (B = 1, or envs too cheap to be worth a process each).
- ``WorkerBatchedEnv`` runs copy i in worker process i and steps all B at once,
  one pipe round trip per step (the reply carries the next obs, state and masks).

Lock step: a copy whose episode ended stops by itself; stepping it again returns
reward 0, ``terminated`` True and its last observation, info and masks, so the
runner can keep stepping all B copies until the last one ends.

Seeding and exact resume: copy i owns a ``torch.Generator`` seeded ``seed + i``
and every reset of copy i starts its episode with ``reset(seed=<next draw>)``.
The same seed therefore replays the same episodes, copies differ, and restoring
the generators (``load_state_dict``) restores the seeds of all later episodes.
The envs' own internal RNG state cannot be saved in general, so resume is exact
per episode (checkpoints fall between episodes, where the runner resets).

Failures never hang: a worker that raises sends back the env's error text (a
``RuntimeError`` here, or the ``UsageError`` itself for user errors), a worker
that dies is noticed through its process sentinel, and a worker silent for
``timeout`` seconds is an error too; the other workers are then shut down.

Start method: ``forkserver``. Forking this process is unsafe once torch (or
CUDA) has started threads; ``spawn`` is safe but starts a fresh interpreter per
worker that re-imports torch (about a second and a few hundred MB each).
``forkserver`` forks workers from a clean single-threaded server that imported
this module (numpy, torch) once: as safe as ``spawn``, and a worker starts in
milliseconds and shares those pages copy-on-write.

Shapes: B env copies, N agents, A actions, O obs size, S state size.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import signal
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import ModuleType
from typing import Any, NoReturn, Protocol

import numpy as np
import torch

from marl.envs.base import EnvInfo, StepResult
from marl.errors import UsageError

SEED_HIGH = 2**31 - 1  # episode seeds are drawn from [0, SEED_HIGH)
DEFAULT_TIMEOUT = 300.0  # seconds a worker may take to answer one command
CLOSE_TIMEOUT = 5.0  # seconds a worker gets to close its env before it is terminated

EXTRAS = {
    "gymnasium": "lbf",
    "lbforaging": "lbf",
    "rware": "rware",
    "pettingzoo": "mpe",
    "mpe2": "mpe",
    "vmas": "vmas",
}
"""Top-level package -> the ``marl`` extra that installs it."""


def require(module: str, needed_by: str) -> ModuleType:
    """Import ``module``, or raise a one-sentence `UsageError` naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        extra = EXTRAS.get(package)
        command = f"pip install 'marl[{extra}]'" if extra else f"pip install {package}"
        missing = getattr(err, "name", None)
        if missing is not None and missing.split(".")[0] == package:
            raise UsageError(f"{needed_by} needs the {package} package: {command}") from err
        raise UsageError(
            f"{needed_by} needs the {package} package, whose import failed ({err}): {command}"
        ) from err


class SingleEnv(Protocol):
    """One copy of a multi-agent env, one episode at a time, in numpy."""

    @property
    def env_info(self) -> EnvInfo: ...

    def reset(self, seed: int) -> None:
        """Start a new episode from ``seed``."""
        ...

    def obs(self) -> np.ndarray:
        """Per-agent observations, (N, O) float32."""
        ...

    def state(self) -> np.ndarray:
        """Global state, (S,) float32."""
        ...

    def avail_actions(self) -> np.ndarray:
        """Available-action masks, (N, A) bool."""
        ...

    def step(self, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
        """Apply actions (N,) int64: (team reward, terminated, truncated, info of scalars).

        ``terminated``: the episode ended naturally; ``truncated``: it was cut by
        the time limit (to be bootstrapped). Either ends the episode.
        """
        ...

    def close(self) -> None: ...


EnvFactory = Callable[[], SingleEnv]
"""Builds one copy; must be picklable (a module-level class or a ``functools.partial``)."""


@dataclass
class _View:
    """What one copy shows after a reset or step."""

    obs: np.ndarray  # (N, O) float32
    state: np.ndarray  # (S,) float32
    avail: np.ndarray  # (N, A) bool


@dataclass
class _Outcome:
    """One copy's step result; ``terminated`` is True for any episode end."""

    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, float | bool] = field(default_factory=dict)


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """A new (B, ...) array of B same-shaped arrays: `np.stack` without its checks and
    dispatch, which cost more than the copy itself for one or a few small arrays."""
    out = np.empty((len(arrays), *arrays[0].shape), dtype=arrays[0].dtype)
    for i, array in enumerate(arrays):
        out[i] = array
    return out


def _scalar_info(info: dict[str, Any]) -> dict[str, float | bool]:
    """The numeric scalar entries of an env's info dict (others are dropped)."""
    out: dict[str, float | bool] = {}
    for key, value in info.items():
        if isinstance(value, bool | np.bool_):
            out[str(key)] = bool(value)
        elif isinstance(value, int | float | np.integer | np.floating):
            out[str(key)] = float(value)
        elif isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
            out[str(key)] = bool(value) if value.dtype.kind == "b" else float(value)
    return out


class _Copy:
    """A `SingleEnv` that stops by itself when its episode ends (for lock-step batches)."""

    def __init__(self, env: SingleEnv) -> None:
        self.env = env
        self.done = False
        self.view: _View | None = None
        self.last = _Outcome(0.0, True, False)

    def _look(self) -> _View:
        env = self.env
        self.view = _View(
            obs=np.asarray(env.obs(), dtype=np.float32),  # (N, O)
            state=np.asarray(env.state(), dtype=np.float32),  # (S,)
            avail=np.asarray(env.avail_actions(), dtype=bool),  # (N, A)
        )
        return self.view

    def reset(self, seed: int) -> _View:
        self.env.reset(seed)
        self.done = False
        self.last = _Outcome(0.0, True, False)
        return self._look()

    def step(self, actions: np.ndarray) -> tuple[_Outcome, _View]:
        """Step the env, or after the episode ended return reward 0 and the last view."""
        if self.done and self.view is not None:
            frozen = _Outcome(0.0, True, self.last.truncated, dict(self.last.info))
            return frozen, self.view
        reward, terminated, truncated, info = self.env.step(np.asarray(actions, dtype=np.int64))
        self.done = bool(terminated) or bool(truncated)
        self.last = _Outcome(float(reward), self.done, bool(truncated), _scalar_info(info))
        return self.last, self._look()


class EpisodeSeeds:
    """Each copy's stream of episode seeds (see the module doc): copy i owns a
    ``torch.Generator`` seeded ``seed + i`` and its every episode starts from the next
    draw. The copies wrappers and ``env=foraging`` (which must play ``env=lbf``'s
    episodes) share it."""

    def __init__(self, batch_size: int, seed: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        self.seeds = [seed + i for i in range(batch_size)]
        self._generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.episodes = [0] * batch_size

    def next(self, copy: int) -> int:
        """The seed of copy ``copy``'s next episode, in [0, SEED_HIGH)."""
        self.episodes[copy] += 1
        return int(torch.randint(0, SEED_HIGH, (1,), generator=self._generators[copy]))

    def state_dict(self) -> dict[str, Any]:
        """Base seeds, episode counters and generator states."""
        return {
            "seeds": list(self.seeds),
            "episodes": list(self.episodes),
            "generators": [gen.get_state() for gen in self._generators],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generators: later episodes get the seeds they would have had."""
        if len(state["generators"]) != len(self._generators):
            raise ValueError(
                f"State holds {len(state['generators'])} env copies, this env has "
                f"{len(self._generators)}."
            )
        for gen, gen_state in zip(self._generators, state["generators"], strict=True):
            gen.set_state(gen_state)
        self.seeds = [int(s) for s in state["seeds"]]
        self.episodes = [int(e) for e in state["episodes"]]


class _CopiesBatchedEnv:
    """What the serial and worker batches share: seeding, collation, state_dict."""

    batch_size: int
    device: torch.device

    def __init__(self, *, batch_size: int, seed: int, device: str | torch.device) -> None:
        self._seeds = EpisodeSeeds(batch_size, seed)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._env_info: EnvInfo | None = None
        self._obs = self._state = self._avail = torch.empty(0)

    # -- implemented by the two backends -------------------------------------------------
    def _reset_copies(self, seeds: list[int]) -> list[_View]:
        raise NotImplementedError

    def _step_copies(self, actions: np.ndarray) -> list[tuple[_Outcome, _View]]:
        raise NotImplementedError

    # -- the BatchedEnv protocol ---------------------------------------------------------
    def get_env_info(self) -> EnvInfo:
        assert self._env_info is not None
        return self._env_info

    def _set_env_info(self, infos: Sequence[EnvInfo]) -> None:
        if any(info != infos[0] for info in infos):
            raise RuntimeError(f"env copies describe themselves differently: {list(infos)}.")
        self._env_info = infos[0]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """A new numpy array as a tensor on the device (shared, not copied, on the CPU)."""
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def _show(self, views: Sequence[_View]) -> None:
        self._obs = self._tensor(_stack([v.obs for v in views]))  # (B, N, O)
        self._state = self._tensor(_stack([v.state for v in views]))  # (B, S)
        self._avail = self._tensor(_stack([v.avail for v in views]))  # (B, N, A)

    def reset(self) -> None:
        """Start a new episode in every copy, each from the next seed of its generator."""
        self._show(self._reset_copies([self._seeds.next(i) for i in range(self.batch_size)]))

    def obs(self) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        return self._obs

    def state(self) -> torch.Tensor:
        """Global state, (B, S) float32."""
        return self._state

    def avail_actions(self) -> torch.Tensor:
        """Available-action masks, (B, N, A) bool."""
        return self._avail

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply actions (B, N) long to every copy; ended copies pay 0 and stay ended."""
        info = self.get_env_info()
        expected = (self.batch_size, info.n_agents)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected}, got {tuple(actions.shape)}.")
        results = self._step_copies(actions.detach().to("cpu", torch.long).numpy())
        outcomes = [outcome for outcome, _ in results]
        self._show([view for _, view in results])
        reward = self._tensor(np.array([o.reward for o in outcomes], dtype=np.float32))  # (B,)
        terminated = self._tensor(np.array([o.terminated for o in outcomes]))  # (B,) bool
        step_info = _collate_info(outcomes, self.device)
        step_info["episode_limit"] = self._tensor(np.array([o.truncated for o in outcomes]))
        return StepResult(reward=reward, terminated=terminated, info=step_info)

    def state_dict(self) -> dict[str, Any]:
        """Per-copy base seeds, episode counters and seed generators (see the module doc)."""
        return self._seeds.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the seed generators: later episodes get the seeds they would have had."""
        self._seeds.load_state_dict(state)


def _collate_info(outcomes: Sequence[_Outcome], device: torch.device) -> dict[str, torch.Tensor]:
    """Info keys of any copy as (B,) tensors; copies without a key read 0 (False).

    Keys some copies lack (e.g. ``battle_won`` only at an episode end) are kept so
    that a copy's last-step info is never lost while another copy plays on.
    """
    keys = sorted({key for o in outcomes for key in o.info})
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        values = [o.info.get(key) for o in outcomes]
        if all(isinstance(v, bool) or v is None for v in values):
            out[key] = torch.tensor([bool(v) for v in values], device=device)  # (B,)
        else:
            floats = [float(v) if v is not None else 0.0 for v in values]
            out[key] = torch.tensor(floats, dtype=torch.float32, device=device)  # (B,)
    return out


class SerialBatchedEnv(_CopiesBatchedEnv):
    """B copies of a `SingleEnv` stepped one after the other in this process."""

    def __init__(
        self,
        factory: EnvFactory,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, device=device)
        self._copies: list[_Copy] = []
        try:
            for _ in range(batch_size):
                self._copies.append(_Copy(factory()))
            self._set_env_info([c.env.env_info for c in self._copies])
            self.reset()
        except BaseException:
            self.close()
            raise

    def _reset_copies(self, seeds: list[int]) -> list[_View]:
        return [c.reset(s) for c, s in zip(self._copies, seeds, strict=True)]

    def _step_copies(self, actions: np.ndarray) -> list[tuple[_Outcome, _View]]:
        return [c.step(a) for c, a in zip(self._copies, actions, strict=True)]  # a: (N,)

    def call(self, name: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``copy_i.<name>(*args[i])`` on every copy's env; their results."""
        return [getattr(c.env, name)(*a) for c, a in zip(self._copies, args, strict=True)]

    def close(self) -> None:
        """Close every copy (idempotent)."""
        copies, self._copies = self._copies, []
        for copy in copies:
            copy.env.close()


# -- worker processes ------------------------------------------------------------------------


def _error_reply(err: BaseException, doing: str) -> tuple[str, Any]:
    """("error", (is a UsageError, error type, error text, command, traceback))."""
    usage = isinstance(err, UsageError)
    return ("error", (usage, type(err).__name__, str(err), doing, traceback.format_exc()))


def _worker_main(conn: Connection, factory: EnvFactory) -> None:
    """Serve one env copy: ("reset", seed) | ("step", actions) | ("close", None)
    | ("call", (method name, args)): a method of the copy's env, run in this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        copy = _Copy(factory())
        conn.send(("ok", copy.env.env_info))
    except BaseException as err:
        conn.send(_error_reply(err, "building the env"))
        return
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):  # the main process is gone
            return
        try:
            if command == "reset":
                reply: Any = copy.reset(int(arg))
            elif command == "step":
                reply = copy.step(arg)
            elif command == "call":
                name, args = arg
                reply = getattr(copy.env, name)(*args)
            elif command == "close":
                copy.env.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown worker command {command!r}")
        except BaseException as err:
            conn.send(_error_reply(err, command))
            return
        conn.send(("ok", reply))


def _stop_workers(processes: list[BaseProcess], conns: list[Connection], graceful: bool) -> None:
    """Ask live workers to close, then terminate whatever is left (also runs at exit)."""
    if graceful:
        for proc, conn in zip(processes, conns, strict=True):
            if proc.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send(("close", None))
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for proc in processes:
            proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    for conn in conns:
        conn.close()
    processes.clear()
    conns.clear()


class WorkerBatchedEnv(_CopiesBatchedEnv):
    """B copies of a `SingleEnv`, copy i in worker process i, stepped in parallel."""

    def __init__(
        self,
        factory: EnvFactory,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
        start_method: str = "forkserver",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, device=device)
        self.timeout = timeout
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            # The server imports numpy and torch once; every worker forked from it shares them.
            ctx.set_forkserver_preload(["__main__", __name__])
        self._processes: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._finalizer = weakref.finalize(self, _stop_workers, self._processes, self._conns, False)
        try:
            for i in range(batch_size):
                parent, child = ctx.Pipe()
                proc = ctx.Process(  # type: ignore[attr-defined]
                    target=_worker_main,
                    args=(child, factory),
                    name=f"marl-env-{i}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._processes.append(proc)
                self._conns.append(parent)
            self._set_env_info(self._gather("building the env"))
            self.reset()
        except BaseException:
            self._shutdown(graceful=False)
            raise

    def _gather(self, doing: str) -> list[Any]:
        """Every worker's reply to the command just sent; errors, deaths and silence raise."""
        if not self._conns:
            raise RuntimeError("The env's workers are closed.")
        replies: list[Any] = [None] * self.batch_size
        pending = dict(enumerate(self._conns))
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            sentinels = {self._processes[i].sentinel: i for i in pending}
            ready = wait([*pending.values(), *sentinels], timeout=remaining)
            if not ready:
                self._fail(f"env workers {sorted(pending)} sent no reply within {self.timeout} s")
            for i, conn in list(pending.items()):
                if conn not in ready and self._processes[i].sentinel not in ready:
                    continue
                if not conn.poll():  # the sentinel fired with nothing sent: the worker died
                    code = self._processes[i].exitcode
                    self._fail(f"env worker {i} died (exit code {code}) while {doing}")
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    self._fail(f"env worker {i} died while {doing}")
                if status == "error":
                    usage, kind, text, where, trace = payload
                    self._shutdown(graceful=False)
                    if usage:
                        raise UsageError(text)
                    raise RuntimeError(
                        f"env worker {i} raised while {where}: {kind}: {text}\n"
                        f"worker traceback:\n{trace}"
                    )
                replies[i] = payload
                del pending[i]
        return replies

    def _fail(self, message: str) -> NoReturn:
        self._shutdown(graceful=False)
        raise RuntimeError(message + ".")

    def _send(self, command: str, args: Sequence[Any]) -> None:
        if not self._conns:
            raise RuntimeError("The env's workers are closed.")
        for i, (conn, arg) in enumerate(zip(self._conns, args, strict=True)):
            try:
                conn.send((command, arg))
            except (BrokenPipeError, OSError):
                code = self._processes[i].exitcode
                self._fail(f"env worker {i} died (exit code {code}) before {command}")

    def _reset_copies(self, seeds: list[int]) -> list[_View]:
        self._send("reset", seeds)
        return self._gather("reset")

    def _step_copies(self, actions: np.ndarray) -> list[tuple[_Outcome, _View]]:
        self._send("step", list(actions))  # B arrays of (N,)
        return self._gather("step")

    def call(self, name: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``copy_i.<name>(*args[i])`` in worker i, where copy i's env lives; the results.

        For what must run in the env's own process (SC2: replays, the game version).
        """
        self._send("call", [(name, a) for a in args])
        return self._gather(f"calling {name}")

    @property
    def processes(self) -> list[BaseProcess]:
        """The worker processes, copy i in ``processes[i]`` (for monitoring and tests)."""
        return list(self._processes)

    def _shutdown(self, graceful: bool) -> None:
        _stop_workers(self._processes, self._conns, graceful)
        self._finalizer.detach()

    def close(self) -> None:
        """Close every copy and stop the workers (idempotent)."""
        self._shutdown(graceful=True)


class BatchedSingleEnv:
    """B copies of a `SingleEnv` as a `BatchedEnv`: in worker processes when B > 1.

    The base of the third-party adapters (`GymnasiumEnv`, `PettingZooEnv`): they
    pass the factory of one copy; ``workers=False`` keeps B > 1 copies in this
    process (cheaper for envs whose step costs less than a pipe round trip).
    """

    def __init__(
        self,
        factory: EnvFactory,
        *,
        batch_size: int,
        seed: int,
        device: str | torch.device = "cpu",
        workers: bool = True,
    ) -> None:
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.env: SerialBatchedEnv | WorkerBatchedEnv
        if workers and batch_size > 1:
            self.env = WorkerBatchedEnv(factory, batch_size=batch_size, seed=seed, device=device)
        else:
            self.env = SerialBatchedEnv(factory, batch_size=batch_size, seed=seed, device=device)

    def get_env_info(self) -> EnvInfo:
        return self.env.get_env_info()

    def reset(self) -> None:
        self.env.reset()

    def obs(self) -> torch.Tensor:
        """Per-agent observations, (B, N, O) float32."""
        return self.env.obs()

    def state(self) -> torch.Tensor:
        """Global state, (B, S) float32."""
        return self.env.state()

    def avail_actions(self) -> torch.Tensor:
        """Available-action masks, (B, N, A) bool."""
        return self.env.avail_actions()

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply actions (B, N) long to every copy."""
        return self.env.step(actions)

    def state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    def close(self) -> None:
        self.env.close()
