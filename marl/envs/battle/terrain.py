"""Pathable areas as unions of rectangles, and the waypoints that lead around their walls.

A map's terrain, for one kind of mover (ground units, cliff walkers, air), is a union
of axis-aligned rectangles ("regions"). A unit's centre stays inside the union shrunk
by its radius (``clamp_to_area``: the nearest point of the nearest region). Where two
regions overlap with positive area they form a "portal": a unit can pass from one to
the other through it. Walls, chokes, cliffs and ramps are what the rectangles leave out.

Pathfinding is kept simple and vectorised. Inside one region (convex) a unit walks
straight to its destination. When no region holds both the unit and its destination,
it walks to the nearest point of a portal of its region instead, picking the portal
that minimises (straight distance to the portal) + (shortest distance from the portal's
centre to the destination's region along portal centres), computed once per map by
Floyd-Warshall over the portals. Once inside a portal it counts as being in both
regions and the next portal (or the destination) takes over.

Shapes: B copies, U units, R regions, P portals (both padded per map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from marl.envs.battle.frame import Rect

INSIDE_EPS = 1e-4  # a centre this close outside a shrunk region still counts as inside


def _always_work(x: torch.Tensor) -> bool:
    """On an accelerator, and inside ``torch.compile``, work is always done (reading a
    tensor would synchronise, or break the compiled graph)."""
    return x.device.type != "cpu" or torch.compiler.is_compiling()


def busy(mask: torch.Tensor) -> bool:
    """Whether work on ``mask``'s units is needed: on the CPU only if any is set
    (skipping it gives the same result; tests check both ways)."""
    return _always_work(mask) or bool(mask.any())


def busy_above(values: torch.Tensor, floor: float) -> bool:
    """``busy(values > floor)`` in one op fewer on the CPU (the largest value against
    ``floor``), for per-loop checks."""
    return _always_work(values) or (values.numel() > 0 and values.max().item() > floor)


@dataclass(frozen=True)
class NavGraph:
    """Regions, the portals where they overlap, and the portal-to-region distances."""

    regions: tuple[Rect, ...]
    portals: tuple[Rect, ...]
    """Overlap of two regions (positive area)."""
    ends: tuple[tuple[int, int], ...]
    """The two regions of each portal."""
    cost: tuple[tuple[float, ...], ...]
    """cost[r][p]: path length from portal p's centre into region r (inf: unreachable)."""


def _overlap(a: Rect, b: Rect) -> Rect | None:
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1, y1 = min(a.x1, b.x1), min(a.y1, b.y1)
    return Rect(x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _centre(r: Rect) -> tuple[float, float]:
    return ((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2)


@lru_cache(maxsize=64)
def nav_graph(regions: tuple[Rect, ...]) -> NavGraph:
    """Portals of ``regions`` and the distances from each portal into each region."""
    portals: list[Rect] = []
    ends: list[tuple[int, int]] = []
    for i, a in enumerate(regions):
        for j in range(i + 1, len(regions)):
            shared = _overlap(a, regions[j])
            if shared is not None:
                portals.append(shared)
                ends.append((i, j))
    n = len(portals)
    inf = math.inf
    dist = [[0.0 if p == q else inf for q in range(n)] for p in range(n)]
    for p in range(n):
        for q in range(n):
            if p != q and set(ends[p]) & set(ends[q]):
                (px, py), (qx, qy) = _centre(portals[p]), _centre(portals[q])
                dist[p][q] = math.hypot(px - qx, py - qy)
    for k in range(n):  # Floyd-Warshall
        for p in range(n):
            for q in range(n):
                if dist[p][k] + dist[k][q] < dist[p][q]:
                    dist[p][q] = dist[p][k] + dist[k][q]
    cost = tuple(
        tuple(min((dist[p][q] for q in range(n) if r in ends[q]), default=inf) for p in range(n))
        for r in range(len(regions))
    )
    return NavGraph(tuple(regions), tuple(portals), tuple(ends), cost)


@dataclass
class TerrainTensors:
    """Per-mover-class terrain, padded to R regions and P portals: (C, ...) tensors."""

    lo: torch.Tensor  # (C, R, 2) region corners (unshrunk)
    hi: torch.Tensor  # (C, R, 2)
    portal_lo: torch.Tensor  # (C, P, 2)
    portal_hi: torch.Tensor  # (C, P, 2)
    portal_a: torch.Tensor  # (C, P) long, first region of each portal
    portal_b: torch.Tensor  # (C, P) long, second region
    portal_ok: torch.Tensor  # (C, P) bool, False for padding
    cost: torch.Tensor  # (C, R, P) path length from a portal into a region (inf: none)
    routed: bool  # some class has more than one region: waypoints are needed


@lru_cache(maxsize=32)
def terrain_tensors(classes: tuple[tuple[Rect, ...], ...], device: torch.device) -> TerrainTensors:
    """Stack the nav graphs of the mover classes, padding with copies of region 0 (cached)."""
    graphs = [nav_graph(regions) for regions in classes]
    r = max(len(g.regions) for g in graphs)
    p = max(1, max(len(g.portals) for g in graphs))
    c = len(graphs)
    lo = torch.zeros(c, r, 2)  # (C, R, 2)
    hi = torch.zeros(c, r, 2)  # (C, R, 2)
    portal_lo = torch.zeros(c, p, 2)  # (C, P, 2)
    portal_hi = torch.zeros(c, p, 2)  # (C, P, 2)
    ends = torch.zeros(c, p, 2, dtype=torch.long)  # (C, P, 2)
    ok = torch.zeros(c, p, dtype=torch.bool)  # (C, P)
    cost = torch.full((c, r, p), math.inf)  # (C, R, P)
    for k, g in enumerate(graphs):
        padded = list(g.regions) + [g.regions[0]] * (r - len(g.regions))
        lo[k] = torch.tensor([[q.x0, q.y0] for q in padded])
        hi[k] = torch.tensor([[q.x1, q.y1] for q in padded])
        for i, (portal, pair) in enumerate(zip(g.portals, g.ends, strict=True)):
            portal_lo[k, i] = torch.tensor([portal.x0, portal.y0])
            portal_hi[k, i] = torch.tensor([portal.x1, portal.y1])
            ends[k, i] = torch.tensor(pair)
            ok[k, i] = True
        for j, row in enumerate(g.cost):
            cost[k, j, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return TerrainTensors(
        lo=lo.to(device),
        hi=hi.to(device),
        portal_lo=portal_lo.to(device),
        portal_hi=portal_hi.to(device),
        portal_a=ends[..., 0].to(device),
        portal_b=ends[..., 1].to(device),
        portal_ok=ok.to(device),
        cost=cost.to(device),
        routed=any(len(g.regions) > 1 for g in graphs),
    )


def pathing_grid(
    regions: tuple[Rect, ...], size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """Cell (i, j) is pathable when its centre lies in a region, (W * H,) bool."""
    w, h = size
    cx = torch.arange(w, device=device).float() + 0.5  # (W,)
    cy = torch.arange(h, device=device).float() + 0.5  # (H,)
    grid = torch.zeros(w, h, dtype=torch.bool, device=device)  # (W, H)
    for r in regions:
        in_x = (cx >= r.x0) & (cx < r.x1)  # (W,)
        in_y = (cy >= r.y0) & (cy < r.y1)  # (H,)
        grid |= in_x[:, None] & in_y[None, :]  # (W, H)
    return grid.reshape(-1)  # (W * H,)


@dataclass
class UnitNav:
    """Each unit's terrain (its mover class), shrunk by its radius where it bounds a centre.

    Coordinates are kept as separate x and y tensors: elementwise work on (B, U, R)
    tensors is several times faster than on (B, U, R, 2) ones reduced over the last dim.
    """

    lo_x: torch.Tensor  # (B, U, R) lowest centre x per region
    lo_y: torch.Tensor  # (B, U, R)
    hi_x: torch.Tensor  # (B, U, R) highest centre x
    hi_y: torch.Tensor  # (B, U, R)
    raw_lo_x: torch.Tensor  # (B, U, R) region corners, unshrunk (destination tests)
    raw_lo_y: torch.Tensor  # (B, U, R)
    raw_hi_x: torch.Tensor  # (B, U, R)
    raw_hi_y: torch.Tensor  # (B, U, R)
    portal_lo_x: torch.Tensor  # (B, U, P) shrunk portals
    portal_lo_y: torch.Tensor  # (B, U, P)
    portal_hi_x: torch.Tensor  # (B, U, P)
    portal_hi_y: torch.Tensor  # (B, U, P)
    portal_a: torch.Tensor  # (B, U, P) long, first region of each portal
    portal_b: torch.Tensor  # (B, U, P) long, second region
    portal_ok: torch.Tensor  # (B, U, P) bool, False for padding
    cost: torch.Tensor  # (B, U, R, P) path length from a portal into a region
    routed: bool  # some class has more than one region: waypoints are needed
    lo: torch.Tensor  # (B, U, 2) lowest centre of region 0 (the one-region fast path)
    hi: torch.Tensor  # (B, U, 2)
    in_lo_x: torch.Tensor  # (B, U, R) lo_x - INSIDE_EPS: "inside" tests
    in_lo_y: torch.Tensor  # (B, U, R)
    in_hi_x: torch.Tensor  # (B, U, R) hi_x + INSIDE_EPS
    in_hi_y: torch.Tensor  # (B, U, R)

    @classmethod
    def build(
        cls, t: TerrainTensors, mover: torch.Tensor, radius: torch.Tensor, batch_size: int
    ) -> UnitNav:
        """``mover`` (B', U) long class index and ``radius`` (B', U), B' = 1 or B."""
        b = batch_size
        r = radius.unsqueeze(-1)  # (B', U, 1)

        def grow(x: torch.Tensor) -> torch.Tensor:
            return x.expand(b, *x.shape[1:])  # (B, ...) a view when B' = 1

        lo, hi = t.lo[mover], t.hi[mover]  # (B', U, R, 2)
        plo, phi = t.portal_lo[mover], t.portal_hi[mover]  # (B', U, P, 2)
        return cls(
            lo_x=grow(lo[..., 0] + r),
            lo_y=grow(lo[..., 1] + r),
            hi_x=grow(hi[..., 0] - r),
            hi_y=grow(hi[..., 1] - r),
            raw_lo_x=grow(lo[..., 0]),
            raw_lo_y=grow(lo[..., 1]),
            raw_hi_x=grow(hi[..., 0]),
            raw_hi_y=grow(hi[..., 1]),
            portal_lo_x=grow(plo[..., 0] + r),
            portal_lo_y=grow(plo[..., 1] + r),
            portal_hi_x=grow(phi[..., 0] - r),
            portal_hi_y=grow(phi[..., 1] - r),
            portal_a=grow(t.portal_a[mover]),
            portal_b=grow(t.portal_b[mover]),
            portal_ok=grow(t.portal_ok[mover]),
            cost=grow(t.cost[mover]),
            routed=t.routed,
            lo=grow(lo[:, :, 0] + r),
            hi=grow(hi[:, :, 0] - r),
            in_lo_x=grow(lo[..., 0] + r - INSIDE_EPS),
            in_lo_y=grow(lo[..., 1] + r - INSIDE_EPS),
            in_hi_x=grow(hi[..., 0] - r + INSIDE_EPS),
            in_hi_y=grow(hi[..., 1] - r + INSIDE_EPS),
        )


def clamp_to_area(pos: torch.Tensor, nav: UnitNav) -> torch.Tensor:
    """Move every centre (B, U, 2) to the nearest point of its unit's shrunk regions."""
    if nav.lo_x.shape[-1] == 1:
        return torch.clamp(pos, min=nav.lo, max=nav.hi)  # (B, U, 2)
    x, y = pos[..., :1], pos[..., 1:]  # (B, U, 1), (B, U, 1)
    cx = torch.minimum(torch.maximum(x, nav.lo_x), nav.hi_x)  # (B, U, R)
    cy = torch.minimum(torch.maximum(y, nav.lo_y), nav.hi_y)  # (B, U, R)
    moved = (cx - x).square() + (cy - y).square()  # (B, U, R)
    best = moved.argmin(-1, keepdim=True)  # (B, U, 1)
    return torch.cat([cx.gather(2, best), cy.gather(2, best)], -1)  # (B, U, 2)


def waypoints(
    pos: torch.Tensor, dest: torch.Tensor, moving: torch.Tensor, nav: UnitNav
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each moving unit should head for to reach ``dest`` around the walls.

    Returns (point (B, U, 2), routed (B, U) bool): routed units head for ``point`` (the
    nearest point of the best portal) instead of their destination; the others walk
    straight (same region, or a destination or position outside every region).
    """
    x, y = pos[..., :1], pos[..., 1:]  # (B, U, 1), (B, U, 1)
    dx, dy = dest[..., :1], dest[..., 1:]  # (B, U, 1), (B, U, 1)
    in_unit = (x >= nav.in_lo_x) & (x <= nav.in_hi_x)  # (B, U, R)
    in_unit = in_unit & (y >= nav.in_lo_y) & (y <= nav.in_hi_y)  # (B, U, R)
    in_dest = (dx >= nav.raw_lo_x) & (dx <= nav.raw_hi_x)  # (B, U, R)
    in_dest = in_dest & (dy >= nav.raw_lo_y) & (dy <= nav.raw_hi_y)  # (B, U, R)
    apart = ~(in_unit & in_dest).any(-1) & in_unit.any(-1) & in_dest.any(-1)  # (B, U)
    route = moving & apart  # (B, U)
    if not busy(route):
        return pos, route
    region = in_dest.byte().argmax(-1)  # (B, U) first region holding the destination
    n_portals = nav.cost.shape[-1]
    index = region[..., None, None].expand(-1, -1, 1, n_portals)  # (B, U, 1, P)
    cost = nav.cost.gather(2, index).squeeze(2)  # (B, U, P) portal -> destination region
    side_a = in_unit.gather(2, nav.portal_a)  # (B, U, P)
    side_b = in_unit.gather(2, nav.portal_b)  # (B, U, P)
    usable = (side_a ^ side_b) & nav.portal_ok  # (B, U, P) a portal of its region, not in it
    near_x = torch.minimum(torch.maximum(x, nav.portal_lo_x), nav.portal_hi_x)  # (B, U, P)
    near_y = torch.minimum(torch.maximum(y, nav.portal_lo_y), nav.portal_hi_y)  # (B, U, P)
    total = ((near_x - x).square() + (near_y - y).square()).sqrt() + cost  # (B, U, P)
    best, pick = total.masked_fill(~usable, math.inf).min(-1, keepdim=True)  # (B, U, 1)
    point = torch.cat([near_x.gather(2, pick), near_y.gather(2, pick)], -1)  # (B, U, 2)
    return point, route & torch.isfinite(best.squeeze(-1))
