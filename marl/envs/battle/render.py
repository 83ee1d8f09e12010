"""Render a recorded battle (:class:`BattleReplay`) to an animated GIF or a PNG still.

Uses matplotlib's object API with the Agg canvas only (no pyplot, no global backend
switch), and pillow to write the GIF. The map is drawn once per GIF; each frame then
adds its unit artists, is rasterised, and has those artists removed again, so a
60-frame replay renders in a couple of seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle
from PIL import Image

from marl.envs.battle.frame import BattleFrame, BattleInfo, BattleReplay

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

__all__ = ["render_frame", "save_frame_png", "save_gif"]

SUBTITLE = "marl battle simulator (approximation of StarCraft II)"

FIG_SIZE = (6.0, 6.4)  # inches; the map axes are square and sit below the title
AXES_RECT = (0.03, 0.02, 0.94, 0.88)  # left, bottom, width, height in figure fractions

NON_PATHABLE = "#8c8c8c"
PATHABLE = "#eeeae0"
ALLY_FACE, ALLY_EDGE = "#4a86e8", "#1c4587"
ENEMY_FACE, ENEMY_EDGE = "#e06666", "#85200c"
DEAD_ALLY, DEAD_ENEMY = "#1c4587", "#85200c"
HEALTH_FILL, SHIELD_FILL, BAR_BACK = "#2eb82e", "#00c8e0", "#333333"

TYPE_LETTERS = {
    "marine": "m",
    "stalker": "s",
    "zealot": "z",
    "marauder": "r",  # m, s and z are taken on the maps these share
    "medivac": "v",
    "zergling": "g",
    "spine_crawler": "p",
}

BAR_HEIGHT = 0.22  # map units
BAR_GAP = 0.08  # between stacked bars and between the unit and its first bar
MIN_BAR_WIDTH = 0.9  # map units, so bars of small units stay visible


def type_letter(unit_type: str) -> str:
    """The letter drawn inside a unit: ``TYPE_LETTERS``, else its first letter."""
    name = unit_type.strip().lower()
    return TYPE_LETTERS.get(name, name[:1] or "?")


def _check(replay: BattleReplay, index: int | None = None) -> int:
    """Validate the replay (and an optional frame index); return the normalised index."""
    n = len(replay.frames)
    if n == 0:
        raise ValueError(
            f"cannot render battle replay of map {replay.info.map_name!r}: it has no frames"
        )
    if index is None:
        return 0
    if not -n <= index < n:
        raise IndexError(f"frame index {index} out of range for a replay of {n} frames")
    return index % n


def _new_figure(dpi: int) -> tuple[Figure, FigureCanvasAgg, Axes]:
    """A fresh Agg-backed figure with one fixed-position axes for the map."""
    fig = Figure(figsize=FIG_SIZE, dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes(AXES_RECT)
    return fig, canvas, ax


def _points_per_unit(ax: Axes, info: BattleInfo) -> float:
    """Typographic points per map unit, from the axes box (equal aspect, so the tighter side)."""
    fig = ax.get_figure(root=True)
    width_in, height_in = fig.get_size_inches() if isinstance(fig, Figure) else FIG_SIZE
    pos = ax.get_position()
    w, h = info.map_size
    return 72.0 * min(pos.width * width_in / w, pos.height * height_in / h)


def _draw_map(ax: Axes, info: BattleInfo) -> None:
    """Static part: grey non-pathable ground, light pathable rectangles, fixed equal axes."""
    w, h = info.map_size
    ax.set_facecolor(NON_PATHABLE)
    ax.set_xlim(0.0, w)
    ax.set_ylim(0.0, h)
    ax.set_aspect("equal", adjustable="box")
    ax.set_autoscale_on(False)
    ax.set_xticks([])
    ax.set_yticks([])
    rects = [Rectangle((r.x0, r.y0), r.x1 - r.x0, r.y1 - r.y0, linewidth=0) for r in info.pathable]
    if rects:
        ax.add_collection(
            PatchCollection(rects, facecolor=PATHABLE, edgecolor="none", zorder=0.5),
            autolim=False,
        )
    ax.annotate(
        SUBTITLE,
        xy=(0.5, 1.0),
        xycoords="axes fraction",
        xytext=(0.0, 3.0),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7,
        color="#555555",
    )


def _title(replay: BattleReplay, frame: BattleFrame) -> str:
    last = replay.frames[-1].step
    outcome = frame.outcome or "in progress"
    return f"{replay.info.map_name} — step {frame.step}/{last} — {outcome}"


def _draw_units(ax: Axes, replay: BattleReplay, index: int) -> list[Artist]:
    """Dynamic part of one frame; returns the artists added so they can be removed."""
    info = replay.info
    frame = replay.frames[index]
    ppu = _points_per_unit(ax, info)
    artists: list[Artist] = []

    circles, faces, edges = [], [], []
    bar_backs: list[Rectangle] = []
    health_bars: list[Rectangle] = []
    shield_bars: list[Rectangle] = []
    dead_xy: list[tuple[float, float]] = []
    dead_sizes, dead_colors = [], []
    letters: list[tuple[float, float, str, float]] = []

    for i, ally in enumerate(info.is_ally):
        x, y = frame.x[i], frame.y[i]
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        r = info.radius[i]
        if not frame.alive[i]:
            dead_xy.append((x, y))
            dead_sizes.append(max(3.0, 1.6 * r * ppu) ** 2)  # scatter sizes are points^2
            dead_colors.append(DEAD_ALLY if ally else DEAD_ENEMY)
            continue
        circles.append(Circle((x, y), r))
        faces.append(ALLY_FACE if ally else ENEMY_FACE)
        edges.append(ALLY_EDGE if ally else ENEMY_EDGE)
        fontsize = min(11.0, max(4.5, 1.2 * r * ppu))
        letters.append((x, y, type_letter(info.unit_types[i]), fontsize))

        bar_w = max(2.0 * r, MIN_BAR_WIDTH)
        left = x - bar_w / 2.0
        bottom = y + r + BAR_GAP
        fractions = [(health_bars, frame.health[i], info.max_health[i])]
        if info.max_shield[i] > 0:
            fractions.append((shield_bars, frame.shield[i], info.max_shield[i]))
        for bars, value, full in fractions:
            frac = min(1.0, max(0.0, value / full)) if full > 0 else 0.0
            bar_backs.append(Rectangle((left, bottom), bar_w, BAR_HEIGHT))
            if frac > 0:
                bars.append(Rectangle((left, bottom), bar_w * frac, BAR_HEIGHT))
            bottom += BAR_HEIGHT + BAR_GAP

    lines, line_colors = [], []
    for i, target in enumerate(frame.attacking):
        if target < 0 or target >= len(frame.x) or target == i:
            continue
        lines.append([(frame.x[i], frame.y[i]), (frame.x[target], frame.y[target])])
        line_colors.append(ALLY_EDGE if info.is_ally[i] else ENEMY_EDGE)
    if lines:
        artists.append(
            ax.add_collection(
                LineCollection(lines, colors=line_colors, linewidths=1.0, alpha=0.8, zorder=2),
                autolim=False,
            )
        )

    if dead_xy:
        xs, ys = zip(*dead_xy, strict=True)
        artists.append(
            ax.scatter(
                xs, ys, s=dead_sizes, c=dead_colors, marker="x", linewidths=1.2, alpha=0.4, zorder=1
            )
        )

    if circles:
        artists.append(
            ax.add_collection(
                PatchCollection(
                    circles, facecolors=faces, edgecolors=edges, linewidths=0.8, zorder=3
                ),
                autolim=False,
            )
        )
    for patches, color, z in (
        (bar_backs, BAR_BACK, 4),
        (health_bars, HEALTH_FILL, 5),
        (shield_bars, SHIELD_FILL, 5),
    ):
        if patches:
            artists.append(
                ax.add_collection(
                    PatchCollection(patches, facecolor=color, edgecolor="none", zorder=z),
                    autolim=False,
                )
            )
    for x, y, letter, fontsize in letters:
        artists.append(
            ax.text(
                x,
                y,
                letter,
                ha="center",
                va="center",
                fontsize=fontsize,
                fontweight="bold",
                color="white",
                zorder=6,
            )
        )

    ax.set_title(_title(replay, frame), fontsize=11, pad=16)
    return artists


def render_frame(replay: BattleReplay, index: int, ax: Axes) -> None:
    """Draw frame ``index`` of ``replay`` into ``ax``, clearing what it held before.

    Raises ValueError for a replay without frames and IndexError for a bad index.
    """
    index = _check(replay, index)
    ax.clear()
    _draw_map(ax, replay.info)
    _draw_units(ax, replay, index)


def _to_image(canvas: FigureCanvasAgg) -> Image.Image:
    """Rasterise the canvas into an RGB pillow image."""
    canvas.draw()
    buf = canvas.buffer_rgba()
    return Image.frombuffer("RGBA", (buf.shape[1], buf.shape[0]), buf, "raw", "RGBA", 0, 1)


def save_gif(replay: BattleReplay, path: Path, fps: int = 8, dpi: int = 80) -> Path:
    """Write ``replay`` as an animated GIF (one image per frame, looping forever).

    Raises ValueError for a replay without frames or a non-positive ``fps``.
    """
    _check(replay)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _fig, canvas, ax = _new_figure(dpi)
    _draw_map(ax, replay.info)
    images: list[Image.Image] = []
    for index in range(len(replay.frames)):
        artists = _draw_units(ax, replay, index)
        # quantize copies the pixels out of the canvas buffer before the next draw reuses it
        images.append(_to_image(canvas).convert("RGB").quantize(colors=128))
        for artist in artists:
            artist.remove()
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000 / fps)),
        loop=0,
        disposal=1,
        optimize=False,
    )
    return path


def save_frame_png(replay: BattleReplay, index: int, path: Path, dpi: int = 100) -> Path:
    """Write frame ``index`` of ``replay`` as a PNG still (e.g. for the README)."""
    index = _check(replay, index)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, _canvas, ax = _new_figure(dpi)
    render_frame(replay, index, ax)
    fig.savefig(path, format="png", dpi=dpi)
    return path
