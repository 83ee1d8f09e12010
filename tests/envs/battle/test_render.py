"""Tests for the battle replay renderer (GIF and PNG output of synthetic replays)."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from marl.envs.battle.frame import BattleFrame, BattleInfo, BattleReplay, Rect
from marl.envs.battle.render import render_frame, save_frame_png, save_gif, type_letter

N_FRAMES = 5


def make_replay(shields: bool = True) -> BattleReplay:
    """2 allies vs 2 enemies over 5 frames: they close in, ally 0 shoots enemy 2, which dies."""
    unit_types = ("stalker", "zealot", "marine", "marine") if shields else ("marine",) * 4
    max_shield = (80.0, 50.0, 0.0, 0.0) if shields else (0.0,) * 4
    info = BattleInfo(
        map_name="2s_vs_2m" if shields else "2m_vs_2m",
        map_size=(32.0, 32.0),
        pathable=(Rect(4.0, 8.0, 28.0, 24.0), Rect(12.0, 2.0, 20.0, 30.0)),
        unit_types=unit_types,
        radius=(0.625, 0.5, 0.375, 0.375) if shields else (0.375,) * 4,
        is_ally=(True, True, False, False),
        max_health=(80.0, 100.0, 45.0, 45.0) if shields else (45.0,) * 4,
        max_shield=max_shield,
    )
    frames = []
    for k in range(N_FRAMES):
        enemy2_hp = max(0.0, 45.0 - 15.0 * k)
        frames.append(
            BattleFrame(
                step=k,
                x=(10.0 + k, 10.0 + k, 22.0 - k, 22.0 - k),
                y=(15.0, 17.0, 15.0, 17.0),
                health=(80.0 - 5 * k, 100.0, enemy2_hp, 45.0) if shields else (45.0 - 3 * k,) * 4,
                shield=tuple(s * (1 - 0.1 * k) for s in max_shield),
                alive=(True, True, enemy2_hp > 0, True),
                attacking=(2 if 0 < k < 4 else -1, -1, -1, 0 if k == 2 else -1),
                outcome="won" if k == N_FRAMES - 1 else "",
            )
        )
    return BattleReplay(info=info, frames=frames)


@pytest.mark.parametrize("shields", [True, False])
def test_save_gif_is_animated_with_all_frames(tmp_path: Path, shields: bool) -> None:
    path = save_gif(make_replay(shields), tmp_path / "out" / "battle.gif", fps=10, dpi=40)
    assert path.exists()
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.is_animated
        assert im.n_frames == N_FRAMES
        assert im.size == (round(6.0 * 40), round(6.4 * 40))
        assert im.info.get("loop") == 0
        assert im.info.get("duration") == 100


def test_save_frame_png(tmp_path: Path) -> None:
    path = save_frame_png(make_replay(), 2, tmp_path / "frame.png", dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (300, 320)
        # Not blank: the map, units and bars give many distinct colours.
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 10


def test_render_frame_into_own_axes_and_title() -> None:
    replay = make_replay()
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for index in (0, N_FRAMES - 1):
        render_frame(replay, index, ax)
    assert ax.get_title() == f"2s_vs_2m — step {N_FRAMES - 1}/{N_FRAMES - 1} — won"
    assert ax.get_xlim() == (0.0, 32.0)
    assert ax.get_ylim() == (0.0, 32.0)
    render_frame(replay, 1, ax)
    assert ax.get_title().endswith("in progress")
    fig.canvas.draw()
    with pytest.raises(IndexError):
        render_frame(replay, N_FRAMES, ax)


def test_empty_replay_raises(tmp_path: Path) -> None:
    replay = BattleReplay(info=make_replay().info)
    with pytest.raises(ValueError, match="no frames"):
        save_gif(replay, tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="no frames"):
        save_frame_png(replay, 0, tmp_path / "empty.png")
    assert not (tmp_path / "empty.gif").exists()


def test_type_letters() -> None:
    assert [type_letter(t) for t in ("marine", "stalker", "zealot", "Colossus", "")] == [
        "m",
        "s",
        "z",
        "c",
        "?",
    ]
