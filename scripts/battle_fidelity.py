"""How `battle` fights differ from SMAC's (issue 18): crowding, and a scripted policy's wins.

Two measurements, one JSON line per (measurement, map), each naming the marl it ran
(``marl_commit``: the git commit of the imported ``marl``, "-dirty" when the package's
tracked files differ from it) so that runs before and after a simulator change are told apart.
Only BattleEnv's public API is used, so the script runs unchanged on older trees
(``PYTHONPATH=/old/tree python scripts/battle_fidelity.py``).

- ``crowding``: every living ally is told to stop (action 1; the dead no-op) and the
  enemies come in. Each step, for every living ally, count the living enemies whose
  edge is within melee reach of its edge (``MELEE_RANGE`` plus ``REACH_SLACK``).
  Reported: the max over steps, allies and copies; the mean over copies of each
  episode's max; and the ring capacity, how many enemies fit around one ally at
  centre distance R + r (``ring_capacity``), and at the reach counted
  (``ring_capacity_at_reach``). SMAC's units collide, so SC2 keeps the count within the
  ring; a simulator without collisions stacks far more.
- ``scripted``: every living ally attacks the first attackable enemy (lowest j with
  action 6 + j available), else takes the move whose direction points closest to the
  living enemies' mean position if that move is available, else stops. Reported: win
  rate, mean episode length and mean dead enemies over whole episode batches (reset,
  then step until every copy has ended; each copy plays one episode per batch), as many
  batches as reach ``--episodes``.

Runs on one torch thread. ``distinct_episodes`` counts the different (won, length,
dead enemies) outcomes: without start noise or cooldown jitter every copy of a
deterministic policy plays the same episode.

python scripts/battle_fidelity.py                       # crowding on 2c_vs_64zg, corridor;
                                                        # scripted on 2c_vs_64zg
python scripts/battle_fidelity.py --maps 3m --episodes 16 --batch 16
python scripts/battle_fidelity.py --env spawn_noise=1.0 cooldown_jitter=true  # varied starts
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

import marl
from marl.envs.battle.env import BattleEnv
from marl.envs.battle.features import MOVE_DIRECTIONS, N_ACTIONS_NO_ATTACK, NOOP
from marl.envs.battle.units import MELEE_RANGE
from marl.machine import run_context

CROWDING_MAPS = ["2c_vs_64zg", "corridor"]
SCRIPTED_MAP = "2c_vs_64zg"
REACH_SLACK = 0.05  # counted as in reach up to this far beyond the melee weapon range
STOP = 1

Policy = Callable[[BattleEnv, torch.Tensor], torch.Tensor]


def marl_commit() -> str:
    """The git commit of the imported marl's checkout ("-dirty" if tracked files differ),
    or "unknown" outside a git checkout."""
    root = Path(marl.__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = git("diff", "--quiet", "HEAD", "--", ".").returncode != 0
    return head.stdout.strip() + ("-dirty" if dirty else "")


def ring_capacity(big: float, small: float, gap: float = 0.0) -> int:
    """How many discs of radius ``small`` fit, without overlapping, on a ring around a
    disc of radius ``big`` at centre distance big + small + gap."""
    return math.floor(math.pi / math.asin(small / (big + small + gap)) + 1e-9)  # 6 equal discs fit


def enemies_in_reach(env: BattleEnv) -> torch.Tensor:
    """Living enemies within melee reach (edge to edge, plus the slack) of each living
    ally, (B, N) long; 0 for dead allies."""
    n = env.n_agents
    pos, alive = env.units.pos, env.units.health > 0  # (B, U, 2), (B, U)
    radius = torch.broadcast_to(env.tab.radius, alive.shape)  # (B, U)
    distance = torch.cdist(pos[:, :n], pos[:, n:])  # (B, N, M)
    reach = radius[:, :n, None] + radius[:, None, n:] + MELEE_RANGE + REACH_SLACK  # (B, N, M)
    near = (distance <= reach) & alive[:, None, n:] & alive[:, :n, None]  # (B, N, M)
    return near.sum(-1)  # (B, N)


def stop_actions(env: BattleEnv, avail: torch.Tensor) -> torch.Tensor:
    """Stop every living ally (the dead no-op), (B, N)."""
    return torch.where(avail[..., STOP], STOP, NOOP)  # (B, N)


def scripted_actions(env: BattleEnv, avail: torch.Tensor) -> torch.Tensor:
    """Attack the first attackable enemy, else move towards the enemies, else stop, (B, N)."""
    n = env.n_agents
    attackable = avail[..., N_ACTIONS_NO_ATTACK:]  # (B, N, M)
    first = attackable.long().argmax(-1)  # (B, N) the lowest available j
    pos, alive = env.units.pos, env.units.health > 0  # (B, U, 2), (B, U)
    enemies = alive[:, n:, None].float()  # (B, M, 1)
    centre = (pos[:, n:] * enemies).sum(1) / enemies.sum(1).clamp(min=1)  # (B, 2)
    heading = centre[:, None] - pos[:, :n]  # (B, N, 2)
    directions = torch.tensor(MOVE_DIRECTIONS, device=pos.device)  # (4, 2) N, S, E, W
    move = 2 + (heading @ directions.T).argmax(-1)  # (B, N) move actions are 2..5
    can_move = avail.gather(-1, move[..., None]).squeeze(-1)  # (B, N)
    otherwise = torch.where(can_move, move, stop_actions(env, avail))  # (B, N)
    return torch.where(attackable.any(-1), N_ACTIONS_NO_ATTACK + first, otherwise)  # (B, N)


def play_batch(
    env: BattleEnv,
    policy: Policy,
    max_steps: int | None = None,
    watch: Callable[[torch.Tensor], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Reset, then step every copy until it ends (or ``max_steps``, if given).

    ``watch(live)`` is called at the reset and after every step. Returns per copy (B,):
    won, ended, length (steps played) and dead_enemies at its end (or at the cut).
    """
    env.reset()
    b, dev = env.batch_size, env.units.pos.device
    live = torch.ones(b, dtype=torch.bool, device=dev)  # (B,)
    won, length = torch.zeros_like(live), torch.zeros(b, dtype=torch.long, device=dev)  # (B,)
    dead = torch.zeros(b, dtype=torch.long, device=dev)  # (B,)
    if watch is not None:
        watch(live)
    steps = 0
    while bool(live.any()) and (max_steps is None or steps < max_steps):
        result = env.step(policy(env, env.avail_actions()))
        info = result.info
        won = torch.where(live, info["battle_won"], won)  # (B,)
        dead = torch.where(live, torch.as_tensor(info["dead_enemies"], device=dev), dead)  # (B,)
        length = length + live.long()  # (B,)
        if watch is not None:
            watch(live)
        live = live & ~result.terminated  # (B,)
        steps += 1
    return {"won": won, "ended": ~live, "length": length, "dead_enemies": dead}


def crowding(env: BattleEnv, max_steps: int | None = None) -> dict[str, object]:
    """Allies stopped, enemies coming in: the most enemies within melee reach of one ally."""
    peak = torch.zeros(env.batch_size, dtype=torch.long)  # (B,) each copy's episode max

    def watch(live: torch.Tensor) -> None:
        nonlocal peak
        now = enemies_in_reach(env).amax(-1).cpu()  # (B,)
        peak = torch.where(live.cpu(), torch.maximum(peak, now), peak)  # (B,)

    out = play_batch(env, stop_actions, max_steps, watch)
    n = env.n_agents
    radius = torch.broadcast_to(env.tab.radius, env.units.health.shape)  # (B, U)
    big, small = float(radius[:, :n].max()), float(radius[:, n:].min())
    return {
        "measure": "crowding",
        "map": env.map_name,
        "copies": env.batch_size,
        "max_in_reach": int(peak.max()),
        "mean_episode_max": round(float(peak.float().mean()), 2),
        "ring_capacity": ring_capacity(big, small),
        "ring_capacity_at_reach": ring_capacity(big, small, MELEE_RANGE + REACH_SLACK),
        "ally_radius": big,
        "enemy_radius": small,
        "mean_length": round(float(out["length"].float().mean()), 1),
    }


def scripted(env: BattleEnv, episodes: int, max_steps: int | None = None) -> dict[str, object]:
    """Win rate of the scripted policy over whole batches, at least ``episodes`` episodes."""
    n_batches = -(-episodes // env.batch_size)
    batches = [play_batch(env, scripted_actions, max_steps) for _ in range(n_batches)]
    won, ended, length, dead = (
        torch.cat([out[key] for out in batches]).cpu()
        for key in ("won", "ended", "length", "dead_enemies")
    )  # (E,) each
    return {
        "measure": "scripted",
        "map": env.map_name,
        "copies": env.batch_size,
        "episodes": len(won),
        "win_rate": round(float(won.float().mean()), 3),
        "wins": int(won.sum()),
        "mean_length": round(float(length.float().mean()), 1),
        "mean_dead_enemies": round(float(dead.float().mean()), 2),
        "n_enemies": env.n_enemies,
        "unfinished": int((~ended).sum()),
        "distinct_episodes": len(
            set(zip(won.tolist(), length.tolist(), dead.tolist(), strict=True))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--maps",
        nargs="+",
        help=f"crowding and scripted maps (default: crowding on "
        f"{' '.join(CROWDING_MAPS)}; scripted on {SCRIPTED_MAP} always)",
    )
    parser.add_argument("--episodes", type=int, default=1024, help="scripted episodes per map")
    parser.add_argument("--batch", type=int, default=64, help="copies simulated together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--env", nargs="+", default=[], help="KEY=VALUE BattleEnv settings (e.g. spawn_noise=1)"
    )
    args = parser.parse_args()
    settings = {key: yaml.safe_load(raw) for key, _, raw in (s.partition("=") for s in args.env)}
    torch.set_num_threads(1)
    context: dict[str, Any] = {
        "marl_commit": marl_commit(),
        "marl_path": str(Path(marl.__file__).parent),
    }
    context |= {"seed": args.seed, "env": settings, **run_context("cpu")}
    crowding_maps = args.maps or CROWDING_MAPS
    scripted_maps = list(dict.fromkeys([SCRIPTED_MAP, *(args.maps or [])]))
    for map_name in crowding_maps:
        env = BattleEnv(map_name, batch_size=args.batch, seed=args.seed, **settings)
        print(json.dumps({**crowding(env), **context}), flush=True)
    for map_name in scripted_maps:
        env = BattleEnv(map_name, batch_size=args.batch, seed=args.seed, **settings)
        print(json.dumps({**scripted(env, args.episodes), **context}), flush=True)


if __name__ == "__main__":
    main()
