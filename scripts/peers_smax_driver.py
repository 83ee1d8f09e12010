"""JaxMARL SMAX env steps per second with random valid actions, one JSON line.

Runs inside a venv that has jaxmarl and jax (``scripts/bench_peers.py --setup`` makes
one); ``bench_peers.py`` starts it as a whole process beside marl's ``bench_env.py``. It
is our code calling jaxmarl's public API (``jaxmarl.make``, ``map_name_to_scenario``);
nothing of jaxmarl is copied.

    <jaxmarl venv>/bin/python scripts/peers_smax_driver.py --map 3m --envs 1024

``--envs`` copies of ``HeuristicEnemySMAX`` (SMAX with its scripted enemy, the
SMAC-like setting: the agents are the allies) step together under ``jax.vmap``, each
agent's action drawn uniformly among its available ones, finished episodes reset by
the env's own ``step`` (auto-reset), ``--steps-per-call`` steps per jitted
``jax.lax.scan``. After untimed calls (the compiling), calls run for at least
``--seconds``; every copy steps every time, so env steps = copies x steps.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jaxmarl
from jaxmarl.environments.smax import map_name_to_scenario


def make_rollout(env: Any, n_envs: int, n_steps: int) -> Callable[..., Any]:
    """A jitted ``(key, state) -> (key, state, episodes ended)`` of ``n_steps`` steps."""
    agents = env.agents

    def step(carry: tuple[Any, Any], _: None) -> tuple[tuple[Any, Any], jax.Array]:
        key, state = carry
        key, act_key, step_key = jax.random.split(key, 3)
        avail = jax.vmap(env.get_avail_actions)(state)  # {agent: (E, A)}
        avail = jnp.stack([avail[a] for a in agents], axis=1)  # (E, N, A)
        logits = jnp.where(avail > 0, 0.0, -jnp.inf)  # (E, N, A) uniform over available
        actions = jax.random.categorical(act_key, logits)  # (E, N)
        actions = {a: actions[:, i] for i, a in enumerate(agents)}  # {agent: (E,)}
        step_keys = jax.random.split(step_key, n_envs)  # (E, 2)
        _, state, _, dones, _ = jax.vmap(env.step)(step_keys, state, actions)
        return (key, state), dones["__all__"].sum()

    @jax.jit
    def rollout(key: jax.Array, state: Any) -> tuple[jax.Array, Any, jax.Array]:
        (key, state), ended = jax.lax.scan(step, (key, state), None, n_steps)
        return key, state, ended.sum()

    return rollout


def avals(tree: Any) -> list[tuple[Any, ...]]:
    """Shape, dtype and weak type of every leaf: what a jitted call is compiled for."""
    return [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(tree)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m")
    parser.add_argument("--envs", type=int, default=1024, help="env copies (vmapped)")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum timed time")
    parser.add_argument("--steps-per-call", type=int, default=50)
    parser.add_argument("--env", default="HeuristicEnemySMAX", help="jaxmarl env name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = jaxmarl.make(args.env, scenario=map_name_to_scenario(args.map))
    key = jax.random.PRNGKey(args.seed)
    key, reset_key = jax.random.split(key)
    _, state = jax.jit(jax.vmap(env.reset))(jax.random.split(reset_key, args.envs))
    rollout = make_rollout(env, args.envs, args.steps_per_call)

    # Reset's state has weakly typed leaves that step's has not: made strong here, the
    # first call's compiling serves the timed calls. Untimed calls until one is compiled
    # for the state it returns, in case other leaves change type too.
    state = jax.tree.map(lambda x: x.astype(x.dtype), state)
    start = time.perf_counter()
    while True:
        before = avals(state)
        key, state, _ = jax.block_until_ready(rollout(key, state))
        if avals(state) == before:
            break
    compile_s = time.perf_counter() - start

    calls, episodes = 0, 0
    start = time.perf_counter()
    while True:
        key, state, ended = jax.block_until_ready(rollout(key, state))
        calls += 1
        episodes += int(ended)
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds:
            break
    steps = calls * args.steps_per_call * args.envs
    print(
        json.dumps(
            {
                "env": args.env,
                "map": args.map,
                "envs": args.envs,
                "env_steps_per_s": round(steps / elapsed, 1),
                "episodes_per_s": round(episodes / elapsed, 1),
                "env_steps": steps,
                "timed_s": round(elapsed, 2),
                "first_call_s": round(compile_s, 2),
                "jax": jax.__version__,
                "jaxmarl": importlib.metadata.version("jaxmarl"),
                "devices": [str(d) for d in jax.devices()],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
