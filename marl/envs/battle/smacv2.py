"""SMACv2-style random teams and start positions, drawn per env copy and per episode.

For the ``{protoss,terran,zerg}_N_vs_M`` maps (``maps.smacv2_map``). Per episode and
per copy, from the env's per-copy generator (``rng.CopyRNG``), as SMACv2's
``distributions.py`` with its example configs (``sc2_gen_*.yaml``):

- teams (``weighted_teams``): N i.i.d. unit types with weights 0.45/0.45/0.1 over
  stalker/zealot/colossus, marine/marauder/medivac, zergling/hydralisk/baneling; a
  team made only of exception types (Terran: medivac; Zerg: baneling) is redrawn.
  Enemies copy the ally team, then M - N extra enemies are drawn the same way (or the
  team is cut to M). Allies are then sorted by (unit type, x, y) like SMAC's agents
  (RL type ids are alphabetical: colossus < stalker < zealot, marauder < marine <
  medivac, baneling < hydralisk < zergling); enemies keep the drawn order.
- start positions (``surrounded_and_reflect``, p = 0.5): with probability 0.5
  "reflect": allies uniform over x in [0, 15), y in [0, 32), the first N enemies at
  their mirror images (32 - x, y), extra enemies uniform over the right half; else
  "surrounded": every ally at the centre (16, 16) and the enemies in 1-4 groups (equal
  chance each, members split multinomially), each group on its own diagonal at
  t * (centre +- 2) + (1 - t) * corner with t uniform in [0, 1).

The simulator then adds its spawn noise (units of SC2 push each other apart; here a
group would otherwise stand on one point), and the enemies attack-move to the mean
start position of the allies (SMACv2 leaves them to the built-in AI).

Shapes: B copies, N agents, M enemies.
"""

from __future__ import annotations

import torch

from marl.envs.battle.maps import TeamDistribution
from marl.envs.battle.rng import CopyRNG
from marl.envs.battle.units import type_index

SMACV2_MAP_SIZE = 32.0
REFLECT_BUFFER = 1.0  # allies stay this far left of the middle line (SMACv2's "- 1")
SURROUND_OFFSET = 2.0  # enemy groups stop this far (per axis) from the centre
P_SURROUNDED = 0.5
MAX_GROUPS = 4


def _categorical(u: torch.Tensor, cum: torch.Tensor) -> torch.Tensor:
    """Index drawn from uniforms u (...) with cumulative weights cum (K,), (...) long."""
    return (u.unsqueeze(-1) >= cum[:-1]).sum(-1)  # (...)


def _draw_team(
    rng: CopyRNG, team: TeamDistribution, size: int, only: torch.Tensor | None = None
) -> torch.Tensor:
    """``size`` unit types per copy (global type indices), never all exceptions, (B, size).
    ``only`` (B,) bool: the copies whose streams advance (None: all); the others' draws are
    thrown away by the caller."""
    dev = rng.device
    kinds = torch.tensor([type_index(t) for t in team.unit_types], device=dev)  # (K,)
    weights = torch.tensor(team.weights, device=dev)  # (K,)
    cum = torch.cumsum(weights / weights.sum(), 0)  # (K,)
    exception = torch.tensor([t in team.exceptions for t in team.unit_types], device=dev)  # (K,)
    pick = _categorical(rng.uniform(size, advance=only), cum)  # (B, size)
    bad = (
        exception[pick].all(1)
        if team.exceptions
        else torch.zeros_like(pick[:, 0], dtype=torch.bool)
    )
    if only is not None:
        bad = bad & only  # (B,) a copy that does not advance would redraw the same forever
    while bool(bad.any()):  # redraw (only those copies' streams advance)
        again = _categorical(rng.uniform(size, advance=bad), cum)  # (B, size)
        pick = torch.where(bad.unsqueeze(1), again, pick)  # (B, size)
        bad = bad & exception[pick].all(1)  # (B,)
    return kinds[pick]  # (B, size)


def draw_teams(
    rng: CopyRNG, team: TeamDistribution, only: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ally and enemy unit types per copy, (B, N) and (B, M) long (allies not yet sorted);
    only the ``only`` (B,) copies' streams advance (None: all)."""
    n, m = team.n_agents, team.n_enemies
    allies = _draw_team(rng, team, n, only)  # (B, N)
    if m <= n:
        return allies, allies[:, :m].clone()  # (B, N), (B, M)
    extra = _draw_team(rng, team, m - n, only)  # (B, M - N)
    return allies, torch.cat([allies, extra], 1)  # (B, N), (B, M)


def draw_positions(
    rng: CopyRNG, team: TeamDistribution, only: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start positions (B, N, 2), (B, M, 2) and whether each copy is "surrounded" (B,);
    only the ``only`` (B,) copies' streams advance (None: all)."""
    n, m = team.n_agents, team.n_enemies
    size = SMACV2_MAP_SIZE
    half = size / 2
    u = rng.uniform(1 + 2 * n + 2 * m + 1 + m + 2 * MAX_GROUPS, advance=only)  # (B, K)
    b = u.shape[0]
    surrounded = u[:, 0] > P_SURROUNDED  # (B,)
    u = u[:, 1:]  # (B, K - 1)
    ally_u, u = u[:, : 2 * n].view(b, n, 2), u[:, 2 * n :]  # (B, N, 2)
    extra_u, u = u[:, : 2 * m].view(b, m, 2), u[:, 2 * m :]  # (B, M, 2)
    groups_u, member_u, u = u[:, 0], u[:, 1 : 1 + m], u[:, 1 + m :]  # (B,), (B, M)
    perm_u, t_u = u[:, :MAX_GROUPS], u[:, MAX_GROUPS:]  # (B, 4), (B, 4)

    # Reflect: allies on the left, their mirror images (and extra draws) on the right.
    span = torch.tensor([half - REFLECT_BUFFER, size], device=rng.device)  # (2,)
    ally_reflect = ally_u * span  # (B, N, 2)
    mirror = torch.stack([size - ally_reflect[..., 0], ally_reflect[..., 1]], -1)  # (B, N, 2)
    extra = torch.stack([half + extra_u[..., 0] * half, extra_u[..., 1] * size], -1)  # (B, M, 2)
    k = min(n, m)
    enemy_reflect = torch.cat([mirror[:, :k], extra[:, k:]], 1)  # (B, M, 2)

    # Surrounded: allies at the centre, enemy groups on distinct diagonals.
    n_groups = 1 + (groups_u * MAX_GROUPS).long().clamp(max=MAX_GROUPS - 1)  # (B,)
    group = (member_u * n_groups.unsqueeze(1)).long()  # (B, M) i.i.d. = multinomial counts
    group = group.clamp(max=MAX_GROUPS - 1).sort(dim=1).values  # (B, M) contiguous blocks
    diagonal = perm_u.argsort(dim=1).gather(1, group)  # (B, M) one diagonal per group
    t = t_u.gather(1, group).unsqueeze(-1)  # (B, M, 1)
    off = SURROUND_OFFSET
    inner = torch.tensor(
        [[half - off, half - off], [half - off, half + off], [half + off, half + off],
         [half + off, half - off]], device=rng.device,
    )  # fmt: skip  # (4, 2) SMACv2's diagonal_to_centre_point
    corners = [[0.0, 0.0], [0.0, size], [size, size], [size, 0.0]]
    corner = torch.tensor(corners, device=rng.device)  # (4, 2) diagonal_to_point_map
    enemy_surround = inner[diagonal] * t + corner[diagonal] * (1 - t)  # (B, M, 2)
    ally_surround = torch.full_like(ally_reflect, half)  # (B, N, 2)

    pick = surrounded.view(b, 1, 1)  # (B, 1, 1)
    allies = torch.where(pick, ally_surround, ally_reflect)  # (B, N, 2)
    enemies = torch.where(pick, enemy_surround, enemy_reflect)  # (B, M, 2)
    return allies, enemies, surrounded
