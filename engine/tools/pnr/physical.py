"""What a placed and routed design looks like, read from its DEF and the technology's LEF.

Pure functions over text: no tool runs here.  Measured, not estimated:

- congestion: for every grid bin and routing layer, the routed wire length on that layer in the
  bin against the layer's track capacity there (tracks crossing the bin × the bin's extent along
  them, from the DEF's TRACKS);
- placement density: the area of placed cells (fill and spacer cells excluded) in each bin over
  the bin's area;
- RUDY (rectangular uniform wire density): each net's bounding box spreads its half-perimeter of
  wire evenly over the box; a bin's demand over the track length of every routing layer in it;
- wirelength, vias, die and core area, utilisation, and the router's failed nets per pass.

Coordinates are in microns; a map is rows of bins, row 0 at the bottom of the die.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

Grid = list[list[float]]


# --- LEF -----------------------------------------------------------------------------------------

@dataclass
class Macro:
    name: str
    width: float
    height: float
    filler: bool  # CLASS CORE SPACER or a fill cell: space, not logic
    pins: dict[str, tuple[float, float]] = field(default_factory=dict)  # pin -> centre of its first shape


@dataclass
class Lef:
    macros: dict[str, Macro]
    vias: dict[str, list[str]]  # via -> the layers it connects (routing and cut)
    routing: list[str]  # routing layers, bottom first


def parse_lef(text: str) -> Lef:
    macros: dict[str, Macro] = {}
    vias: dict[str, list[str]] = {}
    routing: list[str] = []
    lines = iter(text.splitlines())
    for raw in lines:
        w = raw.split()
        if not w or raw[0].isspace():  # statements at the top level start in column 0
            continue
        if w[0] == "LAYER" and len(w) >= 2:
            name = w[1]
            for inner in lines:
                v = inner.split()
                if v[:2] == ["END", name]:
                    break
                if v[:2] in (["TYPE", "ROUTING"], ["TYPE", "ROUTING;"]):
                    routing.append(name)
        elif w[0] == "VIA" and len(w) >= 2:
            name, layers = w[1], []
            for inner in lines:
                v = inner.split()
                if v[:2] == ["END", name]:
                    break
                if v and v[0] == "LAYER" and len(v) >= 2:
                    layers.append(v[1].rstrip(";"))
            vias[name] = layers
        elif w[0] == "MACRO" and len(w) >= 2:
            m = Macro(w[1], 0.0, 0.0, w[1].upper().startswith("FILL"))
            pin: str | None = None
            for inner in lines:
                v = inner.replace(";", " ; ").split()
                if v[:2] == ["END", m.name]:
                    break
                if not v:
                    continue
                if v[0] == "SIZE" and len(v) >= 4:
                    m.width, m.height = float(v[1]), float(v[3])
                elif v[0] == "CLASS" and "SPACER" in v:
                    m.filler = True
                elif v[0] == "PIN" and len(v) >= 2:
                    pin = v[1]
                elif v[0] == "END" and len(v) >= 2 and v[1] == pin:
                    pin = None
                elif v[0] == "RECT" and pin is not None and pin not in m.pins and len(v) >= 5:
                    x1, y1, x2, y2 = (float(x) for x in v[1:5])
                    m.pins[pin] = ((x1 + x2) / 2, (y1 + y2) / 2)
            macros[m.name] = m
    return Lef(macros, vias, routing)


# --- DEF -----------------------------------------------------------------------------------------

@dataclass
class Track:
    layer: str
    horizontal: bool  # TRACKS Y: lines at fixed y, running along x
    start: float
    count: int
    step: float

    def within(self, lo: float, hi: float) -> int:
        """Tracks at positions in [lo, hi)."""
        if self.step <= 0 or self.count <= 0:
            return 0
        first = max(0, math.ceil((lo - self.start) / self.step - 1e-9))
        last = min(self.count - 1, math.ceil((hi - self.start) / self.step - 1e-9) - 1)
        return max(0, last - first + 1)


@dataclass
class Component:
    name: str
    macro: str
    x: float
    y: float
    orient: str


@dataclass
class Segment:
    layer: str
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def length(self) -> float:
        return abs(self.x2 - self.x1) + abs(self.y2 - self.y1)


@dataclass
class Net:
    name: str
    pins: list[tuple[str, str]]  # (component or "PIN", pin)
    segments: list[Segment] = field(default_factory=list)
    vias: int = 0


@dataclass
class Def:
    design: str
    die: tuple[float, float, float, float]
    tracks: list[Track]
    components: dict[str, Component]
    pins: dict[str, tuple[float, float]]  # top-level pin -> placed location
    nets: list[Net]


_POINT = re.compile(r"\(\s*(\S+)\s+(\S+)(?:\s+\S+)?\s*\)")


def _sections(text: str) -> dict[str, str]:
    out = {}
    for name in ("COMPONENTS", "PINS", "NETS"):
        m = re.search(rf"^\s*{name}\s+\d+\s*;(.*?)^\s*END\s+{name}\b", text, re.S | re.M)
        out[name] = m.group(1) if m else ""
    return out


def parse_def(text: str, vias: dict[str, list[str]] | None = None) -> Def:
    """A DEF's die, tracks, placed components, pins and routed nets (regular NETS; special
    power nets are not signal routing).  `vias` (from the LEF) lets a route continue on the far
    layer of a via; without it, points after a via stay on the same layer."""
    vias = vias or {}
    units = float(m.group(1)) if (m := re.search(r"UNITS\s+DISTANCE\s+MICRONS\s+(\d+)", text)) else 1.0
    design = m.group(1) if (m := re.search(r"^\s*DESIGN\s+(\S+)\s*;", text, re.M)) else "?"
    die_m = re.search(r"DIEAREA\s*\(\s*(\S+)\s+(\S+)\s*\)\s*\(\s*(\S+)\s+(\S+)\s*\)", text)
    if die_m is None:
        raise ValueError("DEF has no DIEAREA")
    die = tuple(float(x) / units for x in die_m.groups())
    tracks = [Track(layer, axis == "Y", float(start) / units, int(n), float(step) / units)
              for axis, start, n, step, layer in
              re.findall(r"TRACKS\s+([XY])\s+(\S+)\s+DO\s+(\d+)\s+STEP\s+(\S+)\s+LAYER\s+(\S+)", text)]
    sec = _sections(text)
    comps = {}
    for stmt in sec["COMPONENTS"].split(";"):
        m = re.search(r"-\s+(\S+)\s+(\S+).*?\+\s+(?:PLACED|FIXED)\s*\(\s*(\S+)\s+(\S+)\s*\)\s*(\S+)", stmt, re.S)
        if m:
            comps[m.group(1)] = Component(m.group(1), m.group(2), float(m.group(3)) / units,
                                          float(m.group(4)) / units, m.group(5))
    pins = {}
    for stmt in sec["PINS"].split(";"):
        m = re.search(r"-\s+(\S+).*?\+\s+(?:PLACED|FIXED)\s*\(\s*(\S+)\s+(\S+)\s*\)", stmt, re.S)
        if m:
            pins[m.group(1)] = (float(m.group(2)) / units, float(m.group(3)) / units)
    nets = [_net(stmt, units, vias) for stmt in _statements(sec["NETS"])]
    return Def(design, die, tracks, comps, pins, [n for n in nets if n is not None])  # type: ignore[arg-type]


def _statements(body: str) -> list[str]:
    """`- name ... ;` statements; a `;` inside a net name cannot occur in DEF."""
    return [s for s in body.split(";") if s.strip().startswith("-")]


def _net(stmt: str, units: float, vias: dict[str, list[str]]) -> Net | None:
    head, _, rest = stmt.strip()[1:].partition("+")
    words = head.split()
    if not words:
        return None
    net = Net(words[0], [(a, b) for a, b in re.findall(r"\(\s*(\S+)\s+(\S+)\s*\)", head)])
    m = re.search(r"\b(?:ROUTED|FIXED|COVER)\b(.*)", "+" + rest, re.S)
    if not m:
        return net
    for part in re.split(r"\bNEW\b", m.group(1)):
        toks = re.findall(r"\([^)]*\)|[^\s()]+", part)
        if not toks:
            continue
        layer = toks[0]
        x = y = None
        for t in toks[1:]:
            if t.startswith("("):
                pm = _POINT.match(t)
                if pm is None:
                    continue
                nx = x if pm.group(1) == "*" else float(pm.group(1)) / units
                ny = y if pm.group(2) == "*" else float(pm.group(2)) / units
                if x is not None and y is not None and nx is not None and ny is not None and (nx, ny) != (x, y):
                    net.segments.append(Segment(layer, x, y, nx, ny))
                x, y = nx, ny
            elif t in ("+", "SHAPE", "STRIPE", "TAPER", "TAPERRULE", "STYLE") or t.startswith("+"):
                continue
            elif re.fullmatch(r"[A-Za-z_][\w.\-$]*", t):  # a via at the current point
                net.vias += 1
                others = [v for v in vias.get(t, []) if v != layer]
                if others:  # continue on the via's far routing layer (the last layer it names)
                    layer = others[-1]
    return net


# --- measurements ---------------------------------------------------------------------------------

@dataclass
class GridSpec:
    x0: float
    y0: float
    bin: float  # square bins, µm
    nx: int
    ny: int

    def box(self, i: int, j: int) -> tuple[float, float, float, float]:
        return (self.x0 + i * self.bin, self.y0 + j * self.bin, self.x0 + (i + 1) * self.bin,
                self.y0 + (j + 1) * self.bin)


def grid_for(die: tuple[float, float, float, float], bins: int) -> GridSpec:
    """Square bins, `bins` of them along the die's longer side."""
    w, h = die[2] - die[0], die[3] - die[1]
    size = max(w, h) / max(bins, 1)
    return GridSpec(die[0], die[1], size, max(1, math.ceil(w / size - 1e-9)), max(1, math.ceil(h / size - 1e-9)))


def _zeros(g: GridSpec) -> Grid:
    return [[0.0] * g.nx for _ in range(g.ny)]


def _spread(grid: Grid, g: GridSpec, x1: float, y1: float, x2: float, y2: float, per_area: float) -> None:
    """Add per_area × (overlap area) of the rectangle to each bin it touches."""
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    i0, i1 = _span(x1, x2, g.x0, g.bin, g.nx)
    j0, j1 = _span(y1, y2, g.y0, g.bin, g.ny)
    for j in range(j0, j1 + 1):
        by0, by1 = g.y0 + j * g.bin, g.y0 + (j + 1) * g.bin
        oy = min(y2, by1) - max(y1, by0)
        if oy <= 0:
            continue
        for i in range(i0, i1 + 1):
            bx0, bx1 = g.x0 + i * g.bin, g.x0 + (i + 1) * g.bin
            ox = min(x2, bx1) - max(x1, bx0)
            if ox > 0:
                grid[j][i] += per_area * ox * oy


def _span(a: float, b: float, origin: float, size: float, n: int) -> tuple[int, int]:
    lo = min(max(int((a - origin) // size), 0), n - 1)
    hi = min(max(int((b - origin) // size), 0), n - 1)
    return lo, hi


def _add_segment(grid: Grid, g: GridSpec, s: Segment) -> None:
    """Add the segment's length in each bin it crosses (clamped to the grid: boundary pins
    may sit just outside the die)."""
    hi_x, hi_y = g.x0 + g.nx * g.bin, g.y0 + g.ny * g.bin
    x1, x2 = sorted((min(max(s.x1, g.x0), hi_x), min(max(s.x2, g.x0), hi_x)))
    y1, y2 = sorted((min(max(s.y1, g.y0), hi_y), min(max(s.y2, g.y0), hi_y)))
    i0, i1 = _span(x1, x2, g.x0, g.bin, g.nx)
    j0, j1 = _span(y1, y2, g.y0, g.bin, g.ny)
    for j in range(j0, j1 + 1):
        for i in range(i0, i1 + 1):
            bx0, by0, bx1, by1 = g.box(i, j)
            along_x = max(0.0, min(x2, bx1) - max(x1, bx0)) if x2 > x1 else 0.0
            along_y = max(0.0, min(y2, by1) - max(y1, by0)) if y2 > y1 else 0.0
            grid[j][i] += along_x + along_y


def capacity(g: GridSpec, t: Track) -> Grid:
    """Track length of one layer in each bin."""
    out = _zeros(g)
    for j in range(g.ny):
        for i in range(g.nx):
            x0, y0, x1, y1 = g.box(i, j)
            if t.horizontal:
                out[j][i] = t.within(y0, y1) * g.bin
            else:
                out[j][i] = t.within(x0, x1) * g.bin
    return out


def _orient(m: Macro, orient: str) -> tuple[float, float]:
    return (m.height, m.width) if orient in ("E", "W", "FE", "FW") else (m.width, m.height)


def _pin_xy(d: Def, lef: Lef, comp: str, pin: str) -> tuple[float, float] | None:
    if comp == "PIN":
        return d.pins.get(pin)
    c = d.components.get(comp)
    if c is None:
        return None
    m = lef.macros.get(c.macro)
    if m is None:
        return (c.x, c.y)
    w, h = _orient(m, c.orient)
    px, py = m.pins.get(pin, (m.width / 2, m.height / 2))
    if c.orient in ("N", "R0"):
        return (c.x + px, c.y + py)
    if c.orient in ("S", "R180"):
        return (c.x + m.width - px, c.y + m.height - py)
    if c.orient in ("FN", "MY"):
        return (c.x + m.width - px, c.y + py)
    if c.orient in ("FS", "MX"):
        return (c.x + px, c.y + m.height - py)
    return (c.x + w / 2, c.y + h / 2)


@dataclass
class Maps:
    """Every map of one routed (or only placed) design, on one grid."""

    grid: GridSpec
    density: Grid
    rudy: Grid
    congestion: dict[str, Grid]  # layer -> usage / capacity (routed designs only)
    metrics: dict[str, float]
    layers: dict[str, dict[str, float]]  # layer -> max, mean, hot_ratio, wirelength_um


def measure(d: Def, lef: Lef, bins: int = 32, hot: float = 0.9) -> Maps:
    g = grid_for(d.die, bins)
    tracks = {}
    for t in d.tracks:
        if not lef.routing or t.layer in lef.routing:
            tracks.setdefault(t.layer, t)
    caps = {layer: capacity(g, t) for layer, t in tracks.items()}
    supply = _zeros(g)
    for c in caps.values():
        for j in range(g.ny):
            for i in range(g.nx):
                supply[j][i] += c[j][i]
    density, cell_area, core = _placement(d, lef, g)
    demand, used, wire, vias = _wiring(d, lef, g, tracks)
    rudy = [[demand[j][i] / supply[j][i] if supply[j][i] > 0 else 0.0 for i in range(g.nx)] for j in range(g.ny)]
    routed = any(wire.values())
    congestion, layers, hot_n = _congestion(g, caps, used, wire, hot) if routed else ({}, {}, 0)
    die_area = (d.die[2] - d.die[0]) * (d.die[3] - d.die[1])
    core_area = (core[2] - core[0]) * (core[3] - core[1]) if core[0] < math.inf else 0.0
    flat_d = [v for row in density for v in row]
    flat_r = [v for row in rudy for v in row]
    metrics = {"die_area_um2": die_area, "core_area_um2": core_area,
               "utilisation": cell_area / core_area if core_area > 0 else 0.0,
               "density_max": max(flat_d), "rudy_max": max(flat_r), "rudy_mean": sum(flat_r) / len(flat_r)}
    if routed:
        metrics.update({"wirelength_um": sum(wire.values()), "vias": vias, "hot_ratio": hot_n / (g.nx * g.ny),
                        "congestion_max": max(v["max"] for v in layers.values())})
    return Maps(g, density, rudy, congestion, {k: round(v, 6) for k, v in metrics.items()}, layers)


def _placement(d: Def, lef: Lef, g: GridSpec) -> tuple[Grid, float, list[float]]:
    """Cell density per bin (fillers excluded), the cells' area, and the core's bounding box."""
    density = _zeros(g)
    cell_area = 0.0
    core = [math.inf, math.inf, -math.inf, -math.inf]
    for c in d.components.values():
        m = lef.macros.get(c.macro)
        if m is None:
            continue
        w, h = _orient(m, c.orient)
        core = [min(core[0], c.x), min(core[1], c.y), max(core[2], c.x + w), max(core[3], c.y + h)]
        if m.filler:
            continue
        cell_area += w * h
        _spread(density, g, c.x, c.y, c.x + w, c.y + h, 1.0 / (g.bin * g.bin))
    return density, cell_area, core


def _wiring(d: Def, lef: Lef, g: GridSpec, tracks: dict) -> tuple[Grid, dict[str, Grid], dict[str, float], int]:
    """RUDY demand (each net's bounding box), and routed track use, wirelength and vias per layer."""
    demand = _zeros(g)
    min_side = min((t.step for t in tracks.values()), default=g.bin)
    used = {layer: _zeros(g) for layer in tracks}
    wire = {layer: 0.0 for layer in tracks}
    vias = 0
    for n in d.nets:
        pts = [p for p in (_pin_xy(d, lef, a, b) for a, b in n.pins) if p is not None]
        if len(pts) >= 2:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            w, h = max(max(xs) - min(xs), min_side), max(max(ys) - min(ys), min_side)
            x0, y0 = min(xs), min(ys)
            _spread(demand, g, x0, y0, x0 + w, y0 + h, (w + h) / (w * h))
        for s in n.segments:
            if s.layer in used:
                _add_segment(used[s.layer], g, s)
                wire[s.layer] += s.length
        vias += n.vias
    return demand, used, wire, vias


def _congestion(g: GridSpec, caps: dict[str, Grid], used: dict[str, Grid], wire: dict[str, float],
                hot: float) -> tuple[dict[str, Grid], dict[str, dict[str, float]], int]:
    """Usage over capacity per layer and bin, per-layer figures, and the bins hot on any layer."""
    congestion: dict[str, Grid] = {}
    layers: dict[str, dict[str, float]] = {}
    hot_bins = [[False] * g.nx for _ in range(g.ny)]
    for layer in caps:
        ratio = [[used[layer][j][i] / caps[layer][j][i] if caps[layer][j][i] > 0 else 0.0 for i in range(g.nx)]
                 for j in range(g.ny)]
        congestion[layer] = ratio
        flat = [v for row in ratio for v in row]
        hot_n = 0
        for j in range(g.ny):
            for i in range(g.nx):
                if ratio[j][i] > hot:
                    hot_bins[j][i] = True
                    hot_n += 1
        layers[layer] = {"max": max(flat), "mean": sum(flat) / len(flat), "hot_ratio": hot_n / len(flat),
                         "wirelength_um": wire[layer]}
    return congestion, layers, sum(1 for row in hot_bins for v in row if v)


# --- router log ---------------------------------------------------------------------------------

def router_passes(log: str) -> tuple[list[int], int | None]:
    """qrouter's failed nets after each pass, and at the end (None when it never got there)."""
    passes = [int(x) for x in re.findall(r"^Failed net routes:\s*(\d+)", log, re.M)]
    final: int | None = None
    if m := re.search(r"^Final:\s*Failed net routes:\s*(\d+)", log, re.M):
        final = int(m.group(1))
    elif re.search(r"^Final:\s*No failed routes", log, re.M):
        final = 0
    return passes, final


# --- files --------------------------------------------------------------------------------------

def write_csv(grid: Grid) -> str:
    """Top row first, as the map is drawn; one value per bin."""
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in reversed(grid))


def read_csv(text: str) -> Grid:
    rows = [[float(x) for x in line.split(",")] for line in text.splitlines() if line.strip()]
    return list(reversed(rows))


def diff(child: Grid, parent: Grid) -> tuple[Grid, bool]:
    """child − parent; a parent on another grid is sampled at the same relative position.
    Returns the map and whether resampling was needed."""
    cy, cx = len(child), len(child[0]) if child else 0
    py, px = len(parent), len(parent[0]) if parent else 0
    if not (cy and cx and py and px):
        return [[0.0] * cx for _ in range(cy)], True
    same = (cy, cx) == (py, px)
    out = [[child[j][i] - parent[min(py - 1, j * py // cy)][min(px - 1, i * px // cx)] for i in range(cx)]
           for j in range(cy)]
    return out, not same
