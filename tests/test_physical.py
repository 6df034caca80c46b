"""Maps from a DEF, checked on a tiny design computed by hand; the files they become; qflow's
logs and SPEF as the driver reads them.  Pure: no tool runs here."""
from __future__ import annotations

import sys

import orjson
import pytest

from noodle2.engine.tools.pnr.flow import project_vars, spef_wire_caps, timing_netlist
from noodle2.engine.tools.pnr.heatmaps import PNG_SKIPPED, write_maps
from noodle2.engine.tools.pnr.physical import diff, measure, parse_def, parse_lef, read_csv, router_passes, write_csv

LEF = """
LAYER metal1
  TYPE ROUTING ;
  DIRECTION HORIZONTAL ;
END metal1
LAYER via
  TYPE CUT ;
END via
LAYER metal2
  TYPE ROUTING ;
END metal2
VIA M2_M1 DEFAULT
  LAYER metal1 ;
    RECT -0.2 -0.2 0.2 0.2 ;
  LAYER via ;
  LAYER metal2 ;
END M2_M1
MACRO INV
  CLASS CORE ;
  SIZE 2 BY 10 ;
  PIN A
    PORT
      LAYER metal1 ;
        RECT 0 0 1 1 ;
    END
  END A
  PIN Y
    PORT
      LAYER metal1 ;
        RECT 1 9 2 10 ;
    END
  END Y
END INV
MACRO FILL
  CLASS CORE SPACER ;
  SIZE 1 BY 10 ;
END FILL
"""

# A 20 x 20 µm die in 2 x 2 bins of 10 µm.  metal1: horizontal tracks every 1 µm (10 per bin,
# capacity 10 x 10 = 100 µm); metal2: vertical every 2 µm from 0.5 (5 per bin, 50 µm).
DEF = """VERSION 5.6 ;
DESIGN tiny ;
UNITS DISTANCE MICRONS 100 ;
DIEAREA ( 0 0 ) ( 2000 2000 ) ;
TRACKS Y 0 DO 20 STEP 100 LAYER metal1 ;
TRACKS X 50 DO 10 STEP 200 LAYER metal2 ;
COMPONENTS 3 ;
- u1 INV + PLACED ( 0 0 ) N ;
- u2 INV + PLACED ( 1000 1000 ) N ;
- f1 FILL + PLACED ( 500 0 ) N ;
END COMPONENTS
PINS 0 ;
END PINS
NETS 1 ;
- n1
  ( u1 Y ) ( u2 A )
+ ROUTED metal1 ( 150 950 ) ( 1500 * ) M2_M1
  NEW metal2 ( 1500 950 ) ( * 1050 ) ;
END NETS
END DESIGN
"""


@pytest.fixture
def tiny():
    lef = parse_lef(LEF)
    return measure(parse_def(DEF, lef.vias), lef, bins=2, hot=0.08), lef


def test_congestion_is_routed_length_over_track_capacity_per_layer_and_bin(tiny):
    m, _ = tiny
    # metal1 runs (1.5, 9.5) -> (15, 9.5): 8.5 µm in bin (0,0), 5 µm in bin (1,0); a via; then
    # metal2 (15, 9.5) -> (15, 10.5): 0.5 µm in bin (1,0) and 0.5 µm in bin (1,1)
    assert m.congestion["metal1"] == [[pytest.approx(0.085), pytest.approx(0.05)], [0.0, 0.0]]
    assert m.congestion["metal2"] == [[0.0, pytest.approx(0.01)], [0.0, pytest.approx(0.01)]]
    assert m.metrics["wirelength_um"] == pytest.approx(14.5) and m.metrics["vias"] == 1
    assert m.layers["metal1"]["max"] == pytest.approx(0.085) and m.layers["metal1"]["mean"] == pytest.approx(0.03375)
    assert m.metrics["hot_ratio"] == pytest.approx(0.25)  # one bin of four above 0.08 on some layer
    assert m.metrics["congestion_max"] == pytest.approx(0.085)


def test_density_excludes_fill_and_utilisation_uses_the_core(tiny):
    m, _ = tiny
    assert m.density == [[pytest.approx(0.2), 0.0], [0.0, pytest.approx(0.2)]]  # 20 µm² of 100 µm² bins
    assert m.metrics["die_area_um2"] == 400.0 and m.metrics["core_area_um2"] == 240.0  # fill is core
    assert m.metrics["utilisation"] == pytest.approx(40 / 240, abs=1e-6)


def test_rudy_spreads_half_perimeter_over_the_bounding_box(tiny):
    m, _ = tiny
    # pins at (1.5, 9.5) and (10.5, 10.5): a 9 x 1 µm box, (w + h) / (w h) = 10 / 9 per µm²;
    # bin (0,0) holds 8.5 x 0.5 µm² of it, over 100 + 50 µm of track
    assert m.rudy[0][0] == pytest.approx(4.25 * 10 / 9 / 150)
    assert m.rudy[1][1] == pytest.approx(0.25 * 10 / 9 / 150)
    total = sum(v for row in m.rudy for v in row) * 150
    assert total == pytest.approx(10.0)  # all of the half-perimeter, nothing lost


def test_a_placed_design_has_density_and_rudy_but_no_congestion():
    lef = parse_lef(LEF)
    placed = parse_def(DEF.split("+ ROUTED")[0] + ";\nEND NETS\nEND DESIGN\n", lef.vias)
    m = measure(placed, lef, bins=2)
    assert m.congestion == {} and "hot_ratio" not in m.metrics and m.metrics["rudy_max"] > 0


def test_maps_are_csv_with_an_index_and_diffs_and_no_matplotlib_is_not_a_failure(tiny, tmp_path, monkeypatch):
    m, _ = tiny
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    parent = write_maps(m, tmp_path / "p", design="tiny", case="t_0_0", parent_maps=None)
    assert parent["png_skipped"] == PNG_SKIPPED and "visualization_unavailable" in PNG_SKIPPED
    assert read_csv((tmp_path / "p" / "density.csv").read_text()) == [[0.2, 0.0], [0.0, 0.2]]
    assert (tmp_path / "p" / "density.csv").read_text() == "0,0.2\n0.2,0\n"  # top row first
    m.density[0][1] = 0.5
    child = write_maps(m, tmp_path / "c", design="tiny", case="t_1_0", parent_maps=tmp_path / "p")
    d = next(e for e in child["maps"] if e["name"] == "diff_density")
    assert d["resampled"] is False and d["max"] == pytest.approx(0.5)
    assert read_csv((tmp_path / "c" / "diff_density.csv").read_text())[0] == [0.0, pytest.approx(0.5)]
    idx = orjson.loads((tmp_path / "c" / "index.json").read_bytes())
    assert {(e["name"], e["layer"]) for e in idx["maps"]} >= {("congestion", "metal1"), ("diff_congestion", "metal2")}


def test_a_parent_map_on_another_grid_is_resampled():
    out, resampled = diff([[1.0, 1.0, 1.0, 1.0]], [[0.5, 0.25]])
    assert resampled and out == [[0.5, 0.5, 0.75, 0.75]]
    assert write_csv(out) == "0.5,0.5,0.75,0.75\n"


def test_router_passes_and_final_count():
    log = "Failed net routes: 267\nNets remaining: 200\nFailed net routes: 191\nFinal: Failed net routes: 191\n"
    assert router_passes(log) == ([267, 191], 191)
    assert router_passes("Failed net routes: 3\nFinal: No failed routes!\n") == ([3], 0)
    assert router_passes("qrouter died") == ([], None)


def test_spef_wire_caps_use_the_name_map_only_and_fill_cells_leave_the_timing_netlist():
    spef = """*SPEF "IEEE 1481.1999"
*C_UNIT 1 FF

*NAME_MAP
*1 _557_
*2 a[7]

*PORTS
*2 I
*9 O

*D_NET *1 0.0201884
*CONN
*D_NET *2 0.0170023
"""
    assert spef_wire_caps(spef) == {"_557_": 0.0201884, "a[7]": 0.0170023}
    v = "module t (a);\nINVX1 INVX1_1 ( .A(a), .Y(y) );\nFILL FILL_0_0_0 ( );\nendmodule\n"
    assert timing_netlist(v, {"FILL"}) == "module t (a);\nINVX1 INVX1_1 ( .A(a), .Y(y) );\nendmodule\n"
    assert project_vars({"seed": 7, "density": 0.6, "layers": 0, "effort": 20}) == \
        'set initial_density = 0.6\nset qrouter_options = "-e 20"\n'
    assert project_vars({"seed": 7, "density": 1.0, "layers": 4}) == "set route_layers = 4\n"
