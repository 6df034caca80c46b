"""Real PDKs and the designs users bring (#18): Nangate45, SKY130hd and ASAP7 shipped and read as
OpenROAD-flow-scripts uses them; a routed netlist with tap cells and its SPEF; several corners;
threshold-voltage swaps; electrical repair; RTL with includes; SDC as real flows write it.
Each on the real tools, on each technology's smallest real case (gcd)."""
from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.study.load import load_study, parse_study
from noodle2.engine.tools.tech import detect, names, resolve_tech
from noodle2.engine.tools.tech.liberty import load_set
from tests.conftest import NOODLE2, ROOT, cli_env

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")
GCD = ROOT / "sample_studies" / "designs" / "gcd"


# --- technologies that ship ------------------------------------------------------------------

def test_every_shipped_technology_resolves_from_its_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NOODLE2_CACHE", str(tmp_path / "cache"))
    assert {"nangate45", "sky130hd", "asap7", "osu018"} <= set(names())
    ng = resolve_tech("nangate45", None)
    assert list(ng.corners) == ["typ", "fast", "slow"] and ng.time_unit_ps == 1000.0 and not ng.qflow
    assert all(p.is_file() and p.suffix == ".lib" for fs in ng.corners.values() for p in fs)  # decompressed
    a7 = resolve_tech("asap7", None)
    assert a7.time_unit_ps == 1.0 and len(a7.liberty) == 5 and len(resolve_tech("asap7", None, vt=True).liberty) == 11
    assert a7.is_dont_use("NAND2xp33_ASAP7_75t_R") and not a7.is_dont_use("NAND2x1_ASAP7_75t_R")
    sk = resolve_tech("sky130hd", None, dont_use=("*_16",))
    assert sk.physical_kind("sky130_fd_sc_hd__tapvpwrvgnd_1") == "tap" and sk.is_dont_use("sky130_fd_sc_hd__buf_16")
    assert sk.physical_kind("sky130_fd_sc_hd__fill_2") == "fill" and sk.is_dont_use("sky130_fd_sc_hd__lpflow_bleeder_1")


def test_a_damaged_shipped_liberty_is_refused_not_used(tmp_path, monkeypatch):
    from noodle2.engine.tools import tech

    monkeypatch.setenv("NOODLE2_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "nangate45_typ.lib.gz"
    bad.write_bytes(gzip.compress(b"library (x) { }"))
    with pytest.raises(N2Error) as ei:
        tech.unpacked.__wrapped__(bad, tech.facts("nangate45")["sha256"]["nangate45_typ.lib"])
    assert ei.value.codes == ["N2-E301"] and "sha256 differs" in str(ei.value)
    assert not list((tmp_path / "cache").rglob("*.lib"))


def test_a_library_split_over_files_is_one_library_with_families_per_threshold_voltage():
    t = resolve_tech("asap7", None, vt=True)
    lib = load_set(t.liberty, t.dont_use)
    assert lib.family("INVx1_ASAP7_75t_R")[0] == "INVx1_ASAP7_75t_R" and all(
        c.endswith("_R") for c in lib.family("INVx1_ASAP7_75t_R"))  # sizing never changes the VT
    assert lib.vt["NAND2x1_ASAP7_75t_R"] == ("NAND2x1_ASAP7_75t_R", "NAND2x1_ASAP7_75t_L", "NAND2x1_ASAP7_75t_SL")
    leak = [lib.cells[c].leakage for c in lib.vt["INVx1_ASAP7_75t_R"]]
    assert leak == sorted(leak) and leak[-1] > 10 * leak[0]  # the ladder: least leaky (slowest) first
    assert all(b.endswith("_R") for b in lib.buffers) and len(lib.buffers) >= 4  # the default VT buffers
    assert not any(t.is_dont_use(c) for fam in lib.families.values() for c in fam)
    sk = resolve_tech("sky130hd", None)
    s = load_set(sk.liberty, sk.dont_use)
    assert [c.rsplit("__", 1)[1] for c in s.buffers][:4] == ["buf_1", "buf_2", "buf_4", "buf_6"]
    assert "sky130_fd_sc_hd__dlygate4sd3_1" not in s.buffers  # a delay cell is no size of a buffer


def test_every_cell_of_a_given_netlist_is_checked_against_the_technology_at_validate(tmp_path):
    study = tmp_path / "s.toml"
    shutil.copytree(GCD, tmp_path / "gcd")
    text = (ROOT / "sample_studies" / "gcd_sky130hd.toml").read_text().replace("designs/gcd/", "gcd/")
    study.write_text(text.replace('tech = "sky130hd"', 'tech = "nangate45"'))
    with pytest.raises(N2Error) as ei:
        load_study(study)
    [p] = [p for p in ei.value.problems if p.code == "N2-E124"]
    assert "sky130_fd_sc_hd__" in p.message and "tapvpwrvgnd" not in p.message  # tap cells are fine
    assert detect({"sky130_fd_sc_hd__nand2_1", "sky130_fd_sc_hd__tapvpwrvgnd_1"})[0] == ("sky130hd", 0)
    study.write_text(text + '\n[[stages]]\nname = "pr"\nmode = "route"\ntrials = 1\nsurvivors = 1\necos = ["noop"]\n')
    with pytest.raises(N2Error) as ei:
        load_study(study)
    assert "N2-E118" in ei.value.codes and "qflow, which has no sky130hd technology" in ei.value.render()
    study.write_text(text.replace('parasitics = "gcd/gcd_sky130hd.spef"\n', "") + '\n[[design.corners]]\nname = "ss"\n')
    with pytest.raises(N2Error) as ei:
        load_study(study)
    assert ei.value.codes == ["N2-E123"] and "has no corner 'ss'" in ei.value.render()
    study.write_text(text + '\n[[design.corners]]\nname = "tt"\nparasitics = "gcd/gcd_sky130hd.spef"\n')
    with pytest.raises(N2Error) as ei:
        load_study(study)
    assert ei.value.codes == ["N2-E123"] and "reads one SPEF for every corner" in ei.value.render()


def test_init_picks_the_technology_a_netlist_was_made_for(tmp_path):
    r = subprocess.run([*NOODLE2, "init", str(tmp_path / "s.toml"), "--netlist", str(GCD / "gcd_sky130hd.v"), "--sdc",
                        str(GCD / "gcd_sky130hd.sdc")], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'tech = "sky130hd"' in (tmp_path / "s.toml").read_text()


# --- a routed netlist with its SPEF ----------------------------------------------------------

def test_the_routed_gcd_with_its_spef_matches_opensta_by_hand_and_keeps_its_tap_cells(bench, tmp_path):
    b = bench("gcd_sky130hd.toml")
    m, tdir = b.base()
    assert "failure" not in m, m
    assert m["physical_cells"] == 1040 and m["instances"] == 252 and m["sta_warnings"] == 0
    assert (tdir / "gcd.v").read_text().count("sky130_fd_sc_hd__tapvpwrvgnd_1") == 1040  # passed through untouched
    lib = str(b.tool.libs[0])
    by_hand = tmp_path / "hand.tcl"
    by_hand.write_text(f"read_liberty {lib}\nread_verilog {GCD / 'gcd_sky130hd.v'}\nlink_design gcd\n"
                       f"read_sdc {GCD / 'gcd_sky130hd.sdc'}\nread_spef {GCD / 'gcd_sky130hd.spef'}\n"
                       "report_wns -digits 3\nreport_tns -digits 3\nexit\n")
    out = subprocess.run(["sta", "-no_init", "-no_splash", str(by_hand)], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    wns = float(re.search(r"^wns (\S+)", out, re.M).group(1)) * 1000
    tns = float(re.search(r"^tns (\S+)", out, re.M).group(1)) * 1000
    assert (m["wns_ps"], m["tns_ps"]) == (wns, tns) and wns < -1000  # the SPEF matters: -2.17 ns, not -1.41


def test_nets_an_eco_makes_are_estimated_and_a_child_reproduces_its_parent(bench):
    b = bench("gcd_sky130hd.toml")
    base, bdir = b.base()
    m, tdir = b.trial("sp_buf", "buffer_fanout", {"paths": 30, "min_fanout": 3, "max_nets": 8}, parent=bdir)
    assert "failure" not in m and m["eco_changes"] > 0 and m["estimated_nets"] > 0, m
    assert m["wns_ps"] > base["wns_ps"]
    again, _ = b.trial("sp_again", "noop", parent=tdir)  # what its children will see: the same numbers
    assert (again["wns_ps"], again["tns_ps"], again["estimated_nets"]) == (m["wns_ps"], m["tns_ps"], m["estimated_nets"])
    more, _ = b.trial("sp_resize", "resize_critical", {"paths": 20, "max_cells": 20}, parent=tdir)
    assert more["wns_ps"] >= m["wns_ps"]  # keep-if-better holds against a parent timed the same way


# --- several corners -------------------------------------------------------------------------

def test_every_trial_times_every_corner_and_wns_is_the_worst_of_them(bench):
    b = bench("gcd_nangate45.toml")
    m, _ = b.base()
    assert "failure" not in m, m
    per = {c: m[f"wns_ps@{c}"] for c in ("typ", "fast", "slow")}
    assert m["wns_ps"] == min(per.values()) == per["slow"] < per["typ"] < per["fast"] <= 0
    assert m["tns_ps"] == pytest.approx(m["tns_ps@slow"], abs=0.5)
    assert all(f"hold_worst_ps@{c}" in m for c in per) and m["power_total_w"] > 0
    assert m["ws_ps"] == pytest.approx(m["wns_ps"], abs=0.5)  # signed, and negative here


def test_a_study_can_rank_and_rail_on_one_corner(tmp_path):
    text = (ROOT / "sample_studies" / "gcd_nangate45.toml").read_text()
    text = text.replace('objective = "wns_ps"', 'objective = "wns_ps@typ"\n\n[rails]\nmin = { "hold_worst_ps@fast" = 0 }')
    study = parse_study(text, ROOT / "sample_studies" / "gcd_nangate45.toml")
    from noodle2.engine.policy.ranking import maximise

    assert maximise("wns_ps@typ", study.spec.ranking) and not maximise("area_um2", study.spec.ranking)


def test_ws_ps_is_the_signed_slack_when_timing_is_met(bench):
    b = bench("mac16")
    relax = "proc n2_relax {} { create_clock -name clk -period 100 [get_ports clk]; return 0 }"
    m, _ = b.trial("relaxed", "noop", eco_call="n2_relax", extra_tcl=relax)
    assert m["wns_ps"] == 0 and m["ws_ps"] > 50_000  # two winners with real slack no longer both read 0


# --- threshold voltages ----------------------------------------------------------------------

def test_vt_swap_speeds_the_critical_path_trades_leakage_and_is_proven(bench):
    from noodle2.engine.tools.proof.equiv import prove

    b = bench("gcd_asap7.toml")
    base, bdir = b.base()
    assert "failure" not in base and base["wns_ps"] < 0, base
    fast, fdir = b.trial("vt_fast", "vt_swap", {"paths": 20, "max_cells": 40, "margin_ps": 5000}, parent=bdir)
    assert fast["eco_changes"] > 0 and fast["wns_ps"] > base["wns_ps"]
    assert fast["power_leakage_w"] > base["power_leakage_w"]  # faster cells leak more
    assert fast["instances"] == base["instances"] and fast["area_um2"] == base["area_um2"]  # same footprints
    cells = (fdir / "gcd.v").read_text()
    assert re.search(r"_ASAP7_75t_(L|SL) ", cells)
    # with time to spare (a relaxed clock), the same cells step back to slower, less leaky ones
    relax = "proc n2_relaxed_vt {} { create_clock -name core_clock -period 5000 [get_ports clk]; " \
            "create_clock -name vclk_core_clock -period 5000; return [n2_eco_vt_swap 0 200 0] }"
    slow, sdir = b.trial("vt_slow", "vt_swap", parent=fdir, eco_call="n2_relaxed_vt", extra_tcl=relax)
    assert slow["eco_changes"] > 0 and slow["power_leakage_w"] < fast["power_leakage_w"], slow
    def leaky(d: Path) -> int:  # LVT counts once, SLVT twice: steps above RVT
        text = (d / "gcd.v").read_text()
        return len(re.findall(r"_ASAP7_75t_L ", text)) + 2 * len(re.findall(r"_ASAP7_75t_SL ", text))
    assert slow["wns_ps"] == 0 and leaky(sdir) == leaky(fdir) - slow["eco_changes"]  # one step down each
    lib = b.tool.library()
    for parent, child in ((bdir, fdir), (fdir, sdir)):
        proof = prove(parent / "gcd.v", child / "gcd.v", b.tool.libs, lib, child / "equiv")
        assert proof.proven, proof


# --- repair the design before tuning paths ----------------------------------------------------

def test_repair_design_clears_electrical_violations_and_gains_wns(bench, tmp_path):
    b = bench("alu32", tech="sky130hd")
    base, bdir = b.base()
    assert base["slew_violations"] > 100 and base["cap_violations"] > 0, base
    m, tdir = b.trial("repair", "repair_design", {"max_nets": 500, "max_fanout": 0, "tree_fanout": 8,
                                                   "wns_loss_ps": 0}, parent=bdir, mode="sta")
    assert "failure" not in m, m
    assert m["slew_violations"] == 0 and m["cap_violations"] == 0
    assert m["wns_ps"] > base["wns_ps"] + 2000  # measured: -9.168 -> -5.006 ns
    from noodle2.engine.tools.proof.equiv import prove

    assert prove(bdir / "alu32.v", tdir / "alu32.v", b.tool.libs, b.tool.library(), tdir / "equiv").proven


# --- RTL and SDC as flows write them ----------------------------------------------------------

def test_rtl_with_includes_in_folders_and_defines_synthesises(tmp_path):
    src = tmp_path / "rtl"
    (src / "inc").mkdir(parents=True)
    (src / "inc" / "widths.vh").write_text("`define W 8\n")
    (src / "sub").mkdir()
    (src / "sub" / "timescale.v").write_text("`timescale 1ns/1ps\n")
    (src / "top.v").write_text('`include "sub/timescale.v"\n`include "widths.vh"\n'
                               "module top(input clk, input [`W-1:0] a, b, output reg [`W-1:0] y);\n"
                               "`ifdef SUM\n  always @(posedge clk) y <= a + b;\n`else\n"
                               "  always @(posedge clk) y <= a & b;\n`endif\nendmodule\n")
    (src / "top.sdc").write_text("create_clock -name clk -period 2 [get_ports clk]\n")
    base = '''[study]
name = "inc"
[design]
top = "top"
tech = "nangate45"
rtl = ["rtl/top.v"]
sdc = "rtl/top.sdc"
{extra}
[[stages]]
name = "s"
mode = "sta"
trials = 1
survivors = 1
ecos = ["resize_critical"]
'''
    (tmp_path / "s.toml").write_text(base.format(extra=""))
    with pytest.raises(N2Error) as ei:
        load_study(tmp_path / "s.toml")
    assert 'includes "widths.vh", found neither beside it nor in design.include_dirs' in ei.value.render()
    (tmp_path / "s.toml").write_text(base.format(extra='include_dirs = ["rtl/inc"]\ndefines = { SUM = "" }'))
    d = tmp_path / "d"
    r = subprocess.run([*NOODLE2, "run", str(tmp_path / "s.toml"), "--unattended", "--study-dir", str(d)], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (d / "snapshot" / "src" / "rtl" / "sub" / "timescale.v").is_file()
    netlist = (d / "snapshot" / "top.v").read_text()
    assert re.search(r"(FA_X1|HA_X1|XOR2_X1|XNOR2_X1)", netlist)  # an adder: SUM reached Yosys


def test_a_failed_synthesis_names_its_first_error_line(tmp_path):
    (tmp_path / "bad.v").write_text("module top(input a, output y);\n  assign y = a &;\nendmodule\n")
    (tmp_path / "bad.sdc").write_text("")
    (tmp_path / "s.toml").write_text('[study]\nname = "bad"\n[design]\ntop = "top"\ntech = "nangate45"\n'
                                     'rtl = ["bad.v"]\nsdc = "bad.sdc"\n[[stages]]\nname = "s"\ntrials = 1\n'
                                     'survivors = 1\necos = ["resize_critical"]\n')
    d = tmp_path / "d"
    r = subprocess.run([*NOODLE2, "run", str(tmp_path / "s.toml"), "--unattended", "--study-dir", str(d)], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    from noodle2.engine.journal.store import recover

    why = recover(d).state.base().failure["reason"]
    assert why.startswith("Yosys (synth) failed: ERROR:") and "syntax error" in why, why


@pytest.mark.parametrize("platform", ["osu018", "nangate45", "sky130hd", "asap7"])
def test_yosys_reads_the_same_cells_from_the_liberty_without_its_tables(tmp_path, platform):
    """What cone re-synthesis's read_liberty reads (yosys_cells.lib): the design Yosys builds
    from it is the whole file's, RTLIL byte for byte, from a fraction of the text."""
    from noodle2.engine.tools.tech.liberty import cells_text, liberty_cell_names, merged_text

    t = resolve_tech(platform, None)
    whole, cells = tmp_path / "whole.lib", tmp_path / "cells.lib"
    whole.write_text(merged_text(list(t.corners[t.default_corner]), lambda c: not t.is_dont_use(c)))
    cells.write_text(cells_text(whole.read_text()))
    for lib, il in ((whole, "whole.il"), (cells, "cells.il")):
        subprocess.run(["yosys", "-q", "-p", f"read_liberty -ignore_miss_func {lib}; write_rtlil {tmp_path / il}"],
                       check=True, capture_output=True)
    rtlil = (tmp_path / "whole.il").read_text()
    assert rtlil == (tmp_path / "cells.il").read_text()
    assert rtlil.count("\nmodule ") > 0.9 * len(liberty_cell_names((whole,))) > 20  # a few Yosys skips itself
    assert not re.search(r"^\s*(timing|internal_power|leakage_power)\s*\(", cells.read_text(), re.M)
    assert cells.stat().st_size < whole.stat().st_size / 5


def test_a_liberty_named_like_a_yosys_file_keeps_its_own_copy(tmp_path):
    """The snapshot's yosys.lib and yosys_cells.lib are written beside the Liberty copies: a
    user's file with either name is copied under another, and sta is never given Yosys's files."""
    from noodle2.engine.tools.timing.design import StaDesign, snapshot_timing_libs

    for name in ("yosys.lib", "yosys_cells.lib"):
        shutil.copyfile(resolve_tech("osu018", None).liberty[0], tmp_path / name)
    text = (ROOT / "sample_studies" / "quickstart.toml").read_text().replace(
        'tech = "osu018"', 'liberty = ["yosys.lib", "yosys_cells.lib"]\ndont_use = ["FILL"]')
    text = text.replace('"designs/', f'"{ROOT}/sample_studies/designs/')
    d = StaDesign(parse_study(text, tmp_path / "s.toml"), tmp_path / "d")
    names = sorted(p.name for p in d.libs)
    assert names == ["0_yosys.lib", "1_yosys_cells.lib"], names
    files = d.files()
    assert len(set(files)) == len(files) and d.yosys_lib.name == "yosys.lib" and d.yosys_lib not in d.libs
    for p in files:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    assert [p.name for p in snapshot_timing_libs(d.snapshot)] == names


@pytest.mark.parametrize("platform", ["nangate45", "sky130hd", "asap7"])
@pytest.mark.parametrize("domain", ["guarded", "sandbox"])
def test_the_orfs_sdc_of_every_platform_reads_as_written(tmp_path, platform, domain):
    """all_inputs -no_clocks, a virtual clock and clock latency, through either reader: the clock
    port gets no input delay, every other input does, and the translation is said."""
    from noodle2.engine.tools.timing.opensta import ECO_LIB
    from noodle2.engine.tools.timing.sdc import SDC_COMMANDS

    t = resolve_tech(platform, None)
    yl = tmp_path / "y.lib"
    from noodle2.engine.tools.tech.liberty import merged_text

    yl.write_text(merged_text(list(t.corners[t.default_corner]), lambda c: not t.is_dont_use(c)))
    subprocess.run(["yosys", "-q", "-p", f"read_verilog {GCD / 'gcd_rtl.v'}; synth -top gcd -flatten; dfflibmap "
                    f"-liberty {yl}; abc -liberty {yl}; opt_clean -purge; write_verilog -noattr -noexpr "
                    f"{tmp_path / 'g.v'}"], check=True, capture_output=True)
    read = (f"n2_read_sdc_safe {GCD / f'gcd_{platform}.orfs.sdc'} {{{' '.join(sorted(SDC_COMMANDS))}}}"
            if domain == "guarded" else f"n2_read_sdc_raw {GCD / f'gcd_{platform}.orfs.sdc'}")
    libs = "\n".join(f"read_liberty {p}" for p in t.corners[t.default_corner])
    (tmp_path / "t.tcl").write_text(f"{ECO_LIB.read_text()}\n{libs}\nread_verilog {tmp_path / 'g.v'}\nlink_design gcd\n"
                                    f"{read}\nputs \"N2CLOCKS [llength [all_clocks]]\"\n"
                                    "check_setup -unconstrained_endpoints\nreport_wns\nexit\n")
    r = subprocess.run(["sta", "-no_init", "-no_splash", str(tmp_path / "t.tcl")], capture_output=True, text=True)
    assert "Error" not in r.stdout + r.stderr, (r.stdout[-1500:], r.stderr[-800:])
    assert "N2CLOCKS 2" in r.stdout and "Note: SDC: all_inputs -no_clocks" in r.stdout
    assert "unconstrained" not in r.stdout.lower() or "There are 0" in r.stdout
