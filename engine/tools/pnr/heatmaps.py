"""Heatmap files of one trial: a CSV per map, an index, and PNGs when matplotlib is installed.

<trial>/maps/index.json lists every map: name, layer, unit, grid, min/max/mean, its CSV, its PNG
(or why there is none: `visualization_unavailable` is not a failure), and the diff against the
parent's map of the same name when the parent has one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from noodle2.engine.fsutil import save_figure
from noodle2.engine.tools.pnr.physical import Grid, Maps, diff, read_csv, write_csv

UNITS = {"density": "placed cell area / bin area", "rudy": "estimated wire demand / track supply",
         "congestion": "routed wire length / track capacity"}
PNG_SKIPPED = "visualization_unavailable: matplotlib is not installed (pip install 'noodle2[plots]')"


def write_maps(maps: Maps, out: Path, *, design: str, case: str, parent_maps: Path | None,
               png: bool = True) -> dict[str, Any]:
    """Write <out>/<map>.csv for every map, diffs against the parent's, PNGs; returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    todo: list[tuple[str, str | None, Grid, str]] = [("density", None, maps.density, UNITS["density"]),
                                                     ("rudy", None, maps.rudy, UNITS["rudy"])]
    todo += [("congestion", layer, g, UNITS["congestion"]) for layer, g in maps.congestion.items()]
    parent_index = _index(parent_maps)
    for name, layer, grid, unit in todo:
        stem = f"{name}_{layer}" if layer else name
        (out / f"{stem}.csv").write_text(write_csv(grid))
        e = {"name": name, "layer": layer, "unit": unit, "csv": f"{stem}.csv", **_stats(grid),
             "grid": {"nx": maps.grid.nx, "ny": maps.grid.ny, "bin_um": round(maps.grid.bin, 4),
                      "x0": maps.grid.x0, "y0": maps.grid.y0}}
        entries.append(e)
        p = parent_index.get(stem)
        if p is not None and parent_maps is not None:
            d, resampled = diff(grid, read_csv((parent_maps / p["csv"]).read_text()))
            (out / f"diff_{stem}.csv").write_text(write_csv(d))
            entries.append({"name": f"diff_{name}", "layer": layer, "unit": f"Δ {unit} (case − parent)",
                            "csv": f"diff_{stem}.csv", "resampled": resampled, **_stats(d), "grid": e["grid"]})
    why = render_pngs(entries, out, f"{design} · {case}") if png else "PNG output is off ([physical] png = false)"
    index = {"design": design, "case": case, "maps": entries, "png_skipped": why}
    (out / "index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
    return index


def _index(maps_dir: Path | None) -> dict[str, dict[str, Any]]:
    if maps_dir is None:
        return {}
    try:
        idx = orjson.loads((maps_dir / "index.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {m["csv"][:-4]: m for m in idx.get("maps", []) if not m["name"].startswith("diff_")}


def _stats(g: Grid) -> dict[str, float]:
    flat = [v for row in g for v in row] or [0.0]
    return {"min": round(min(flat), 6), "max": round(max(flat), 6), "mean": round(sum(flat) / len(flat), 6)}


def render_pngs(entries: list[dict[str, Any]], out: Path, title: str) -> str | None:
    """One PNG per map: a perceptually uniform colour map (viridis; coolwarm, centred on 0, for
    diffs), a colour bar with the unit, design, case, map and layer in the title.  Returns why
    PNGs were skipped, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return PNG_SKIPPED
    for e in entries:
        grid = read_csv((out / e["csv"]).read_text())
        g = e["grid"]
        extent = (g["x0"], g["x0"] + g["nx"] * g["bin_um"], g["y0"], g["y0"] + g["ny"] * g["bin_um"])
        fig, ax = plt.subplots(figsize=(6, 6 * g["ny"] / max(g["nx"], 1) + 0.8), dpi=100)
        if e["name"].startswith("diff_"):
            lim = max(abs(e["min"]), abs(e["max"])) or 1.0
            im = ax.imshow(grid, origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim, extent=extent)
        else:
            im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=max(e["max"], 1e-9), extent=extent)
        ax.set_title(f"{title} · {e['name']}" + (f" ({e['layer']})" if e["layer"] else ""), fontsize=9)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(e["unit"], fontsize=8)
        png = e["csv"][:-4] + ".png"
        save_figure(fig, out / png)
        plt.close(fig)
        e["png"] = png
    return None
