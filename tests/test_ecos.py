"""Every ECO, on the design whose netlist holds escaped names, in all three OSU processes: no
OpenSTA warning, integrity held, timing never worse than the parent (each ECO keeps a change only
if it helps), and the result proven equivalent to its parent.  Plus the integrity gate itself."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from noodle2.engine.catalog.ecos import CATALOG
from noodle2.engine.tools.tech.liberty import load

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")

PARAMS = {"resize_critical": {"paths": 10, "max_cells": 20}, "buffer_fanout": {"paths": 10, "min_fanout": 3, "max_nets": 4},
          "clone_driver": {"paths": 10, "min_fanout": 3, "max_clones": 3}, "pin_swap": {"paths": 10, "max_swaps": 10},
          "downsize_noncritical": {"margin_ps": 200, "max_cells": 100}, "upsize_all": {"margin_ps": 0}, "noop": {},
          "resynth_cone": {"paths": 20, "depth": 30, "delay_target_ps": 500},
          "vt_swap": {"paths": 10, "max_cells": 20, "margin_ps": 200},  # one threshold voltage here: no change
          "repair_design": {"max_nets": 20, "max_fanout": 8, "tree_fanout": 4, "wns_loss_ps": 0}}
KEEPS_IF_BETTER = {"resize_critical", "buffer_fanout", "clone_driver", "pin_swap", "resynth_cone", "vt_swap",
                   "repair_design"}


PHYSICAL = {n for n, e in CATALOG.items() if e.physical}  # place-and-route knobs: tests/test_postroute.py


def test_every_catalog_eco_is_covered():
    assert set(PARAMS) == set(CATALOG) - PHYSICAL and PHYSICAL == {"replace", "reroute"}


@pytest.mark.parametrize("tech", ["osu018", "osu035", "osu050"])
def test_every_eco_on_escaped_names_in_every_tech(bench, tech):
    b = bench("sort8", tech)
    base, base_dir = b.base()
    assert "failure" not in base, base
    assert base["sta_warnings"] == 0 and base["wns_ps"] < 0
    lib = load(b.tool.libs[0])
    for eco, params in PARAMS.items():
        if eco not in CATALOG:
            continue
        m, tdir = b.trial(f"m_{eco}", eco, params, parent=base_dir)
        assert "failure" not in m, (tech, eco, m)
        assert m["sta_warnings"] == 0, (tech, eco, m.get("warnings"))
        if eco in KEEPS_IF_BETTER:
            assert m["wns_ps"] >= base["wns_ps"] and m["tns_ps"] >= base["tns_ps"] - 0.5, (tech, eco)
        from noodle2.engine.tools.proof.equiv import prove
        proof = prove(base_dir / "sort8.v", tdir / "sort8.v", b.tool.libs, lib, tdir / "equiv")
        assert proof.proven, (tech, eco, proof)


BAD_ECOS = """
proc n2_test_float {} {
  foreach inst [get_cells *] {
    foreach p [n2_inputs $inst] { sta::disconnect_pin_cmd $p; return 1 }
  }
}
proc n2_test_two_drivers {} {
  set a [lindex [n2_path_drivers 1] 0]
  set b [lindex [n2_path_drivers 1] 1]
  sta::disconnect_pin_cmd $b
  sta::connect_pin_cmd [$b instance] [$b port] [$a net]
  return 1
}
"""


@pytest.mark.parametrize("call, reason", [("n2_test_float", "1 floating inputs"),
                                          ("n2_test_two_drivers", "1 multi driven nets")])
def test_integrity_fails_floating_inputs_and_two_drivers(bench, call, reason):
    b = bench("sort8")
    base_dir = b.base()[1]
    m, _ = b.trial(f"ig_{call}", "noop", parent=base_dir, eco_call=call, extra_tcl=BAD_ECOS)
    assert m["failure"]["type"] == "eco_integrity" and reason in m["failure"]["reason"], m


def test_a_snapshot_from_before_the_cells_only_liberty_resynthesises_from_the_whole_file(bench):
    """A study resumed from an older version has no yosys_cells.lib: its re-synthesis trials read
    yosys.lib (or the technology's file) as they did, and the snapshot is left as it was."""
    from noodle2.engine.tools.base import TrialContext

    b = bench("mac16")
    cells = b.tool.design.yosys_cells
    kept = cells.with_name("kept.lib")
    cells.rename(kept)
    try:
        tdir = b.dir / "trials" / "rs_old_snapshot"
        tdir.mkdir(parents=True)
        b.tool.prepare(TrialContext(b.dir, "rs_old_snapshot", tdir, b.dir / "snapshot", None, "resynth_cone", {},
                                    "sta", 60, 70, None))
        cfg = json.loads((tdir / "resynth.json").read_text())
        assert cfg["yosys_cells"] == cfg["yosys_lib"] and not cells.exists()
    finally:
        kept.rename(cells)


def test_resynthesis_restructures_the_cone_and_is_proven(bench):
    """mac16's multiplier cone re-mapped by ABC for delay: a large WNS gain in one trial, kept
    only after the driver proved it (ABC &cec); the engine's own check proves it again."""
    b = bench("mac16")
    base, base_dir = b.base()
    m, tdir = b.trial("rs_mac16", "resynth_cone", {"paths": 30, "depth": 60, "delay_target_ps": 1000}, parent=base_dir)
    assert "failure" not in m, m
    assert m["wns_ps"] > base["wns_ps"] + 500 and m["eco_changes"] > 100, (base["wns_ps"], m["wns_ps"])
    log = (tdir / "resynth.log").read_text()
    assert "proof: True" in log and "&cec" in log
    # Yosys read the cells without their tables; the whole Liberty maps the cone to the same netlist
    cfg = json.loads((tdir / "resynth.json").read_text())
    script = (tdir / "resynth.ys").read_text()
    assert script.startswith(f"read_liberty -ignore_miss_func {cfg['yosys_cells']}\n"), script[:200]
    assert cfg["yosys_cells"].endswith("yosys_cells.lib") and cfg["yosys_lib"] != cfg["yosys_cells"]
    whole = script.replace(cfg["yosys_cells"], cfg["yosys_lib"], 1).replace("cone_new.v", "cone_whole.v")
    (tdir / "whole.ys").write_text(whole)
    subprocess.run(["yosys", "-q", "-s", "whole.ys"], cwd=tdir, check=True, capture_output=True)
    assert (tdir / "cone_whole.v").read_text() == (tdir / "cone_new.v").read_text()
    from noodle2.engine.tools.proof.equiv import prove
    proof = prove(base_dir / "mac16.v", tdir / "mac16.v", b.tool.libs, load(b.tool.libs[0]), tdir / "recheck")
    assert proof.proven and proof.method == "sat"


def _prepared_resynth(b, case: str, parent, warm: bool):
    """A resynth_cone trial's directory as the adapter prepares it, `warm` set in its resynth.json."""
    from noodle2.engine.tools.base import TrialContext

    tdir = b.dir / "trials" / case
    tdir.mkdir(parents=True)
    b.tool.prepare(TrialContext(b.dir, case, tdir, parent, None, "resynth_cone",
                                {"paths": 30, "depth": 60, "delay_target_ps": 1000}, "sta_power", 60, 70, None))
    cfg = json.loads((tdir / "resynth.json").read_text())
    assert cfg["warm"] is True  # the study's [execution] warm, on by default
    # one name for the new cone's cells and nets in both directories: their netlists compare
    (tdir / "resynth.json").write_text(json.dumps({**cfg, "warm": warm, "case_id": "rs"}))
    return tdir


def test_resynthesis_times_in_one_warm_worker_what_three_cold_runs_time(bench, tmp_path):
    """The driver's three sta scripts (select the cone, time the spliced netlist, the trial's
    run.tcl) share one worker, so the Liberty is read once; every file they produce is the one
    three cold `sta` runs produce, and so is the trial's log but for where warnings go (the
    worker's redirect takes them, as the engine's warm workers do)."""
    b = bench("mac16")
    base_dir = b.base()[1]
    dirs = {w: _prepared_resynth(b, f"rs_{'warm' if w else 'cold'}", base_dir, w) for w in (True, False)}
    # the real sta behind a wrapper that counts its starts
    wrap = tmp_path / "bin"
    wrap.mkdir()
    (wrap / "sta").write_text(f'#!/bin/sh\necho "$*" >> "$N2_TEST_STARTS"\nexec {shutil.which("sta")} "$@"\n')
    (wrap / "sta").chmod(0o755)
    for tdir in dirs.values():
        env = {**os.environ, "PATH": f"{wrap}:{os.environ['PATH']}", "N2_TEST_STARTS": str(tdir / "starts.txt")}
        with open(tdir / "stdout.log", "wb") as out, open(tdir / "stderr.log", "wb") as err:
            rc = subprocess.call([sys.executable, "-m", "noodle2.engine.tools.synthesis.resynth", "resynth.json"],
                                 cwd=tdir, stdout=out, stderr=err, env=env)
        assert rc == 0, (tdir / "stderr.log").read_text()[-2000:]
    warm, cold = dirs[True], dirs[False]
    assert len((warm / "starts.txt").read_text().splitlines()) == 1, (warm / "starts.txt").read_text()
    assert [ln.split()[-1] for ln in (cold / "starts.txt").read_text().splitlines()] == \
        ["select.tcl", "time.tcl", "run.tcl"]
    notes = (warm / "resynth.log").read_text().splitlines()
    assert notes[-1] == "sta: 3 scripts in one warm worker, 0 cold", notes
    assert (cold / "resynth.log").read_text().splitlines()[-1] == "sta: 3 cold runs"
    seconds = re.compile(r"\d+\.\d+ s\)")  # the proof's own time
    assert [seconds.sub("", n) for n in notes[:-1]] == \
        [seconds.sub("", n) for n in (cold / "resynth.log").read_text().splitlines()[:-1]], notes
    assert "proof: True" in notes[1], notes
    assert int((warm / "resynth.count").read_text()) > 100  # the cone was kept: time.tcl's verdict counted
    logs = {"stdout.log", "stderr.log", "resynth.log", "select.log", "time.log", "equiv", "starts.txt"}
    made = sorted(p.name for p in warm.iterdir() if p.name not in logs)
    assert made == sorted(p.name for p in cold.iterdir() if p.name not in logs)
    assert {"cone.txt", "spliced.v", "resynth.v", "mac16.raw.v", "sta.timing.rpt"} <= set(made), made
    clock = re.compile(rb"^N2M phase_\w+_ms .*$", re.M)  # how long each phase took
    for name in made:
        if not (warm / name).is_dir() and name not in {"run.tcl", "select.tcl", "time.tcl", "resynth.json"}:
            assert clock.sub(b"", (warm / name).read_bytes()) == clock.sub(b"", (cold / name).read_bytes()), name
    said = [seconds.sub("", ln) for ln in (warm / "stdout.log").read_text().splitlines()
            if not ln.startswith("Warning")]
    # a cold sta's goodbye; the worker, started with -exit, leaves without it
    assert said == [seconds.sub("", ln) for ln in (cold / "stdout.log").read_text().splitlines()
                    if ln != "Saving command history"]
    assert not (warm / "sta_steps").exists()


def test_a_resynthesis_worker_that_dies_leaves_its_scripts_to_cold_runs(bench):
    """A worker killed between scripts: the next script runs cold and reads what a cold run
    reads; the driver does not try the dead worker again."""
    import signal

    from noodle2.engine.tools.synthesis.resynth import Sta, _slack

    b = bench("mac16")
    tdir = _prepared_resynth(b, "rs_dies", b.base()[1], True)
    sta = Sta(tdir, warm=True)
    try:
        warm_out, rc = sta.run("select.tcl")
        assert rc == 0 and sta.runs == {"warm": 1, "cold": 0} and (tdir / "cone.txt").is_file()
        os.kill(sta.worker.pid, signal.SIGKILL)
        again, rc = sta.run("select.tcl")
        assert rc == 0 and sta.runs == {"warm": 1, "cold": 1} and sta.worker is None
        assert _slack(again.decode()) == _slack(warm_out.decode()) is not None
        sta.run("select.tcl")
        assert sta.runs == {"warm": 1, "cold": 2}
    finally:
        sta.close()
