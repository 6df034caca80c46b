"""A trial's heatmaps in the terminal: density, RUDY, routed congestion per layer, and diffs
against the parent, read from <trial>/maps (CSV + index.json).

Truecolor and 256-colour terminals get half-blocks (two bins per cell, viridis; coolwarm centred
on zero for diffs; Rich downsamples to 256 colours).  16-colour terminals and the high-contrast
theme get one glyph per bin from a shade ramp, so a value reads from the glyph, not the colour.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from noodle2.engine.tools.pnr.physical import Grid, read_csv

# matplotlib's viridis and coolwarm at evenly spaced stops: perceptually uniform, no matplotlib needed
VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
           (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]
COOLWARM = [(59, 76, 192), (98, 130, 234), (141, 176, 254), (184, 208, 249), (221, 221, 221), (245, 196, 173),
            (244, 154, 123), (222, 96, 77), (180, 4, 38)]
RAMP = " ·░▒▓█"  # low to high, for 16 colours and high contrast
RAMP_COLOURS = ["blue", "blue", "cyan", "green", "yellow", "red"]
MAX_SCALE = 2  # a 32-bin map is at most 64 columns by 32 rows


def colour(stops: list[tuple[int, int, int]], x: float) -> Color:
    x = min(max(x, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    a, b = stops[i], stops[i + 1]
    return Color.from_rgb(*(round(a[k] + (b[k] - a[k]) * f) for k in range(3)))


@dataclass
class MapFile:
    name: str
    layer: str | None
    unit: str
    grid: Grid  # row 0 at the bottom
    lo: float
    hi: float

    @property
    def diverging(self) -> bool:
        return self.name.startswith("diff_")

    @property
    def title(self) -> str:
        return self.name + (f" {self.layer}" if self.layer else "")

    def norm(self, v: float) -> float:
        if self.diverging:
            lim = max(abs(self.lo), abs(self.hi)) or 1.0
            return 0.5 + v / (2 * lim)
        return (v - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.0


def load_maps(maps_dir: Path) -> list[MapFile]:
    """Every map of a trial, in the index's order; [] when it has none."""
    try:
        idx = orjson.loads((maps_dir / "index.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    out = []
    for e in idx.get("maps", []):
        try:
            grid = read_csv((maps_dir / e["csv"]).read_text())
        except (OSError, ValueError, KeyError):
            continue
        lo = 0.0 if not e["name"].startswith("diff_") else float(e.get("min", 0.0))
        out.append(MapFile(e["name"], e.get("layer"), e.get("unit", ""), grid, lo, float(e.get("max", 1.0))))
    return out


def render_map(m: MapFile, width: int, plain: bool) -> Text:
    """The map as lines of text, top row first, scaled by whole cells to fit `width`."""
    ny, nx = len(m.grid), len(m.grid[0]) if m.grid else 0
    if not nx:
        return Text("(empty map)")
    stops = COOLWARM if m.diverging else VIRIDIS
    out = Text(no_wrap=True, overflow="crop")
    if plain:  # a glyph per bin, two columns wide (cells are about twice as tall as wide)
        for j in reversed(range(ny)):
            for i in range(nx):
                k = min(int(m.norm(m.grid[j][i]) * len(RAMP)), len(RAMP) - 1)
                out.append(RAMP[k] * 2 if nx * 2 <= width else RAMP[k], RAMP_COLOURS[k])
            out.append("\n")
        return out
    # a terminal cell is about twice as tall as wide: a bin is `scale` columns by `scale` half rows
    scale = max(1, min(width // nx, MAX_SCALE))
    rows = [j for j in reversed(range(ny)) for _ in range(scale)]
    if len(rows) % 2:
        rows.append(-1)  # a blank half row under the last
    for top, bottom in zip(rows[::2], rows[1::2]):
        for i in range(nx):
            up = colour(stops, m.norm(m.grid[top][i]))
            down = colour(stops, m.norm(m.grid[bottom][i])) if bottom >= 0 else None
            out.append("▀" * scale, Style(color=up, bgcolor=down))
        out.append("\n")
    return out


def legend(m: MapFile, plain: bool, width: int = 24) -> Text:
    """min ▕gradient▏ max and the unit: what a colour or a glyph means."""
    t = Text(f"{m.title}: {m.unit}\n", no_wrap=True, overflow="ellipsis")
    t.append(f"{m.lo:.3g} " if not m.diverging else f"{-max(abs(m.lo), abs(m.hi)):.3g} ")
    if plain:
        for k, g in enumerate(RAMP):
            t.append(g * 2 if g != " " else "··", RAMP_COLOURS[k])
    else:
        stops = COOLWARM if m.diverging else VIRIDIS
        for k in range(width):
            t.append(" ", Style(bgcolor=colour(stops, k / (width - 1))))
    t.append(f" {m.hi:.3g}" if not m.diverging else f" {max(abs(m.lo), abs(m.hi)):.3g}")
    return t


class Heatmap(Widget, can_focus=True):
    """Cycle maps with m, layers with y; the legend names the map, its unit and its range."""

    BINDINGS = [Binding("m", "next_map", "map", tooltip="next map: density, RUDY, congestion, diffs"),
                Binding("y", "next_layer", "layer", tooltip="next metal layer of this map")]
    index: reactive[int] = reactive(0)

    def __init__(self, maps: list[MapFile], **kw: Any) -> None:
        super().__init__(**kw)
        self.maps = maps

    @property
    def current(self) -> MapFile | None:
        return self.maps[self.index] if self.maps else None

    def plain(self) -> bool:
        """16 colours or fewer, or the high-contrast theme: glyphs carry the value."""
        system = getattr(self.app.console, "color_system", "truecolor")
        return system in (None, "standard", "windows") or "high-contrast" in (self.app.theme or "")

    def action_next_map(self) -> None:
        """The next map kind (density, rudy, congestion, diff_…), at the same layer if it has one."""
        if not self.maps:
            return
        cur = self.maps[self.index]
        for k in range(1, len(self.maps) + 1):
            m = self.maps[(self.index + k) % len(self.maps)]
            if m.name != cur.name:
                same = [j for j, x in enumerate(self.maps) if x.name == m.name and x.layer == cur.layer]
                self.index = same[0] if same else (self.index + k) % len(self.maps)
                return

    def action_next_layer(self) -> None:
        if not self.maps:
            return
        cur = self.maps[self.index]
        layers = [j for j, x in enumerate(self.maps) if x.name == cur.name]
        if len(layers) < 2:  # density and RUDY are one map for the whole die
            self.notify(f"{cur.title} has no layers: m shows the next map (congestion has one per layer)",
                        timeout=4, markup=False)
            return
        self.index = layers[(layers.index(self.index) + 1) % len(layers)]

    def render(self) -> Text:
        m = self.current
        if m is None:
            return Text("no heatmaps: this trial was not placed and routed (route modes write them)")
        plain = self.plain()
        body = render_map(m, max(self.size.width, 8), plain)
        kinds = sorted({x.title for x in self.maps if x.name == m.name and x.layer}, key=lambda t: t)
        head = Text(f"{m.title}  ({self.index + 1}/{len(self.maps)})  m map · y layer"
                    + (f" ({len(kinds)} layers)" if kinds else "") + "\n", style="bold")
        return head + body + legend(m, plain, width=min(24, max(self.size.width - 16, 8)))
