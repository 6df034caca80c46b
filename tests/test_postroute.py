"""Post-route truth (#11): real qflow place and route of mac8 (about 470 cells), routed delays in
OpenSTA, congestion/density/RUDY maps, physical ECOs, router failures, and kill -9 mid-route."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import orjson
import pytest

from noodle2.engine.policy.ranking import Candidate, rank_agreement
from noodle2.engine.run.studydir import new_study_dir
from noodle2.engine.study.load import parse_study
from noodle2.engine.study.models import Ranking
from noodle2.engine.tools.timing.opensta import OpenSTATool
from tests.conftest import ROOT, cli_env
from tests.waiting import journal_lines, wait_until

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in ("sta", "yosys", "qflow")),
                                reason="needs OpenSTA, Yosys and qflow (bash .ci/setup installs them)")

STUDY = ROOT / "tests" / "data" / "postroute_mac8.toml"


class RouteBench:
    """mac8's snapshot and single trials in any mode, run as the engine runs them."""

    def __init__(self, root) -> None:
        self.study = parse_study(STUDY.read_text(), STUDY)
        self.dir = new_study_dir(self.study, explicit=root)
        self.tool = OpenSTATool(self.study, self.dir)
        self.tool.setup()

    def trial(self, case, eco, params=None, parent=None, mode="route", eco_call=None, extra_tcl=""):
        from noodle2.engine.executors.process import run_command
        from noodle2.engine.policy.failures import classify
        from noodle2.engine.tools.base import TrialContext, TrialFailure

        tdir = self.dir / "trials" / case
        tdir.mkdir(parents=True)
        ctx = TrialContext(self.dir, case, tdir, parent or self.dir / "snapshot", None, eco, params or {}, mode,
                           300, 320, None)
        cmd = self.tool.prepare(ctx)
        if eco_call is not None:
            (tdir / "run.tcl").write_text(self.tool.script(ctx, eco_call, extra_tcl))
        res = run_command(cmd, timeouts=(300, 320))
        if (fail := classify(res.outcome, "")) is not None:
            return {"failure": fail}, tdir
        try:
            return self.tool.collect(ctx, res), tdir
        except TrialFailure as f:
            return {"failure": f.failure}, tdir


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    return RouteBench(tmp_path_factory.mktemp("route8"))


@pytest.fixture(scope="module")
def routed(rb):
    """The base netlist (noop), placed and routed."""
    return rb.trial("routed", "noop")


def test_a_routed_trial_is_timed_with_routed_delays_and_keeps_its_files(routed):
    m, d = routed
    assert "failure" not in m, m
    # wires only add delay: post-route slack is worse than the same netlist's pre-route slack
    assert m["wns_ps"] < m["pre_wns_ps"] < 0 and m["tns_ps"] < m["pre_tns_ps"]
    assert m["route_failed_nets"] == 0 and m["wirelength_um"] > 1000 and m["vias"] > 500
    assert 0 < m["utilisation"] <= 1 and m["die_area_um2"] > m["area_um2"] * 0.9
    assert 0 <= m["hot_ratio"] <= 1 and 0 < m["congestion_max"] <= 1.5
    assert m["wirecap_nets"] > 400 and "warnings" not in m, m.get("warnings")
    assert {"hold_worst_ps", "hold_violations", "slew_violations", "cap_violations"} <= set(m)
    index = {e["path"] for e in orjson.loads((d / "artifact_index.json").read_bytes())}
    assert {"pnr/mac8.def", "pnr/mac8_unroute.def", "pnr/route.log", "pnr/mac8.sdf", "post.timing.rpt",
            "post.hold.rpt", "maps/index.json", "maps/density.csv", "maps/rudy.csv", "maps/congestion_metal2.csv",
            "physical.json"} <= index
    maps = orjson.loads((d / "maps" / "index.json").read_bytes())
    names = {(e["name"], e["layer"]) for e in maps["maps"]}
    assert {("density", None), ("rudy", None)} | {("congestion", f"metal{k}") for k in range(1, 7)} <= names
    if maps["png_skipped"] is None:  # matplotlib installed (the plots extra)
        assert all((d / "maps" / e["png"]).stat().st_size > 1000 for e in maps["maps"])
    phys = orjson.loads((d / "physical.json").read_bytes())
    assert phys["passes"] and set(phys["times"]) >= {"place_s", "route_s", "backanno_s", "post_sta_s"}
    # the SDF holds qrouter's interconnect delays for the routed netlist's pins
    assert (d / "pnr" / "mac8.sdf").read_text().count("INTERCONNECT") > 1000


def test_the_routed_netlist_is_proven_equal_to_the_trials_and_a_changed_one_is_caught(rb, routed):
    """qflow renames every register (DFFPOSX1_1 for _906_): they are matched by structure."""
    _, d = routed
    p = rb.tool.prove(d, d)  # the netlist against itself, then qflow's against it
    assert p["proven"] and "routed netlist: structurally equal; 20 renamed register(s)" in p["detail"], p
    text = (d / "pnr" / "mac8.timing.v").read_text()
    flops = [ln for ln in text.splitlines() if ln.startswith("DFFPOSX1 ")]
    di, dj = (re.search(r"\.D\((\w+)\)", f).group(1) for f in (flops[2], flops[5]))
    swapped = text.replace(flops[2], flops[2].replace(f".D({di})", f".D({dj})")).replace(
        flops[5], flops[5].replace(f".D({dj})", f".D({di})"))
    bad = d.parent / "bad_routed"
    shutil.copytree(d, bad, ignore=shutil.ignore_patterns("equiv"))
    for x in (bad, bad / "pnr"):
        os.chmod(x, 0o755)
    (bad / "pnr" / "mac8.timing.v").chmod(0o644)
    (bad / "pnr" / "mac8.timing.v").write_text(swapped)  # two registers' next states exchanged
    p = rb.tool.prove(bad, d)
    assert not p["proven"] and p["method"] == "sat" and "routed netlist: a counterexample" in p["detail"], p


def test_a_buffer_changes_post_route_wirelength_and_the_routed_delays(rb, routed):
    """An unconditional buffer on the highest-fanout net: one more cell to place, new wires,
    new interconnect delays; timing after routing moves with it."""
    m0, d0 = routed
    buffer = """
proc n2_test_buffer {} {
  set best {}
  set most 0
  foreach inst [get_cells *] {
    foreach p [n2_outputs $inst] {
      if {[$p net] eq "NULL"} continue
      set n [llength [n2_loads [$p net]]]
      if {$n > $most} { set most $n; set best [$p net] }
    }
  }
  set loads [n2_loads $best]
  set half [lrange $loads 0 [expr {[llength $loads] / 2 - 1}]]
  set b [n2_make_instance n2t_buf BUFX2]
  set n [n2_make_net n2t_net]
  n2_connect $b A $best
  n2_connect $b Y $n
  foreach p $half { n2_move $p $n }
  return 1
}
"""
    m1, d1 = rb.trial("buffered", "buffer_fanout", eco_call="n2_test_buffer", extra_tcl=buffer)
    assert "failure" not in m1, m1
    assert m1["instances"] == m0["instances"] + 1
    assert abs(m1["wirelength_um"] - m0["wirelength_um"]) > 1.0
    sdf0 = set(re.findall(r"\(INTERCONNECT (\S+) (\S+) \((\S+)\)\)", (d0 / "pnr" / "mac8.sdf").read_text()))
    sdf1 = set(re.findall(r"\(INTERCONNECT (\S+) (\S+) \((\S+)\)\)", (d1 / "pnr" / "mac8.sdf").read_text()))
    assert sdf0 != sdf1 and len(sdf1 - sdf0) > 10
    assert (m1["wns_ps"], m1["tns_ps"]) != (m0["wns_ps"], m0["tns_ps"])


def test_replace_moves_cells_and_diffs_its_maps_against_the_routed_parent(rb, routed):
    m0, d0 = routed
    m1, d1 = rb.trial("seed7", "replace", {"seed": 7, "density": 1}, parent=d0)
    assert "failure" not in m1, m1
    assert (d1 / "pnr" / "mac8_unroute.def").read_text() != (d0 / "pnr" / "mac8_unroute.def").read_text()
    assert m1["instances"] == m0["instances"] and m1["wirelength_um"] != m0["wirelength_um"]
    knobs = orjson.loads((d1 / "pnr.json").read_bytes())["knobs"]
    assert knobs == {"seed": 7, "density": 1}
    idx = {e["csv"]: e for e in orjson.loads((d1 / "maps" / "index.json").read_bytes())["maps"]}
    assert "diff_density.csv" in idx and "diff_congestion_metal3.csv" in idx
    from noodle2.engine.tools.pnr.physical import read_csv

    child, parent = read_csv((d1 / "maps" / "density.csv").read_text()), read_csv((d0 / "maps" / "density.csv").read_text())
    diff = read_csv((d1 / "maps" / "diff_density.csv").read_text())
    if not idx["diff_density.csv"]["resampled"]:
        j, i = len(diff) // 2, len(diff[0]) // 2
        assert diff[j][i] == pytest.approx(child[j][i] - parent[j][i], abs=1e-5)
    assert any(abs(v) > 1e-3 for row in diff for v in row)  # cells moved


def test_electrical_checks_count_slew_and_capacitance_violations(rb):
    """Pre-route too: a transition limit from the SDC's set_max_transition and a 1 pF wire on a
    net driven by a cell whose Liberty max_capacitance is below it."""
    tcl = """
proc n2_test_loads {} {
  set_max_transition 0.05 [current_design]
  foreach inst [get_cells *] {
    foreach p [n2_outputs $inst] {
      if {[$p net] ne "NULL"} { set_load 1.0 [$p net]; return 0 }
    }
  }
}
"""
    m, d = rb.trial("loaded", "noop", mode="sta", eco_call="n2_test_loads", extra_tcl=tcl)
    assert "failure" not in m, m
    assert m["cap_violations"] == 1 and m["slew_violations"] > 10
    rpt = (d / "sta.electrical.rpt").read_text()
    assert "max_capacitance violations: 1" in rpt and f"max_transition violations: {m['slew_violations']}" in rpt


def test_a_missing_qflow_is_tool_missing(rb, monkeypatch, tmp_path):
    from noodle2.engine.tools.base import TrialContext, TrialFailure

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for t in ("sta", "yosys"):
        (bin_ / t).symlink_to(shutil.which(t))
    monkeypatch.setenv("PATH", str(bin_))
    tdir = rb.dir / "trials" / "noqflow"
    tdir.mkdir(parents=True)
    ctx = TrialContext(rb.dir, "noqflow", tdir, rb.dir / "snapshot", None, "noop", {}, "route", 60, 70, None)
    with pytest.raises(TrialFailure) as ei:
        rb.tool.prepare(ctx)
    assert ei.value.failure["type"] == "tool_missing" and "apt-get install qflow" in ei.value.failure["reason"]


def test_a_router_failure_is_classified_and_contained(tmp_path):
    """Two metal layers cannot route mac8: that trial fails as route_failed with its maps and
    per-pass counts kept; the noop trial beside it survives and the study completes."""
    d = tmp_path / "study"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(STUDY), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    events = [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]
    failed = [e for e in events if e["type"] == "trial_failed"]
    assert [(e["case_id"], e["failure"]["type"]) for e in failed] == [("mac8_0_1", "route_failed")]
    assert "unrouted" in failed[0]["failure"]["reason"]
    phys = orjson.loads((d / "trials" / "mac8_0_1" / "physical.json").read_bytes())
    pm = phys["metrics"]
    assert phys["passes"][-1] > 0 and set(phys["layers"]) == {"metal1", "metal2"} and pm["congestion_max_metal2"] > 0.3
    chosen = next(e for e in events if e["type"] == "survivors_chosen")
    assert chosen["survivors"] == ["mac8_0_0"]
    agree = next(e for e in events if e["type"] == "rank_agreement")
    assert agree["post_ranking"] == ["mac8_0_0"] and agree["winner_pre_rank"] == 1
    assert "post-route WNS" in r.stdout and (d / "postroute.md").is_file()


def _routers(marker_value: str) -> list[int]:
    """graywolf/qrouter processes whose environment carries this trial marker."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            env = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if comm in ("graywolf", "qrouter", "yosys", "tcsh") and marker_value.encode() in env:
            out.append(int(pid))
    return out


def test_kill_9_mid_route_then_resume_reruns_the_trial_clean(tmp_path):
    d = tmp_path / "study"
    path = tmp_path / "one.toml"
    text = STUDY.read_text().split("[stages.params")[0]
    path.write_text(text.replace('ecos = ["noop", "reroute"]', 'ecos = ["noop"]').replace("trials = 2", "trials = 1")
                    .replace("../../sample_studies", str(ROOT / "sample_studies")))
    env = cli_env()
    p = subprocess.Popen([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trial = d / "trials" / "mac8_0_0"
    wait_until(lambda: (trial / "pnr" / "place.log").exists() or p.poll() is not None, "place and route to start",
               progress=lambda: journal_lines(d))
    wait_until(lambda: _routers(str(trial)) or p.poll() is not None, "a placer or router to run")
    assert p.poll() is None
    before = _routers(str(trial))
    for pid in before:  # frozen: they cannot finish on their own, only the resume can clear them
        os.kill(pid, signal.SIGSTOP)
    p.send_signal(signal.SIGKILL)
    p.wait()
    lines = journal_lines(d)
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "resume", str(d), "--unattended"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not [x for x in before if os.path.exists(f"/proc/{x}") and open(f"/proc/{x}/stat").read().split()[2] != "Z"]
    assert "orphaned tool process(es) of the previous engine" in r.stdout + r.stderr
    events = [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]
    starts = [e for e in events if e["type"] == "trial_started" and e["case_id"] == "mac8_0_0"]
    assert len(starts) == 2 and journal_lines(d) > lines
    done = next(e for e in events if e["type"] == "trial_finished" and e["case_id"] == "mac8_0_0")
    assert done["metrics"]["route_failed_nets"] == 0 and "pre_wns_ps" in done["metrics"]


def test_rank_agreement_is_spearman_and_the_winners_pre_route_place():
    def c(name, pre, post):
        return Candidate(name, {"pre_wns_ps": pre, "wns_ps": post})
    cands = [c("a", -100, -300), c("b", -200, -250), c("c", -300, -200)]  # routing reversed the order
    a = rank_agreement(cands, ["c", "b", "a"], Ranking(), None)
    assert a == {"pre_ranking": ["a", "b", "c"], "post_ranking": ["c", "b", "a"], "spearman": -1.0,
                 "winner_pre_rank": 3}
    same = rank_agreement(cands[:2], ["a", "b"], Ranking(), None)
    assert same["spearman"] == 1.0 and same["winner_pre_rank"] == 1
    assert rank_agreement([Candidate("x", {"wns_ps": 1})], ["x"], Ranking(), None) is None  # nothing routed


def test_one_netlist_placed_twice_ties_before_routing():
    cands = [Candidate("a", {"pre_wns_ps": -100, "wns_ps": -300}), Candidate("b", {"pre_wns_ps": -100, "wns_ps": -250})]
    a = rank_agreement(cands, ["b", "a"], Ranking(), None)
    assert a["spearman"] is None and a["winner_pre_rank"] == 0
    from noodle2.engine.reports.files import agreement_line

    assert agreement_line(a) == "2 trials of one netlist: pre-route numbers tie, only routing told them apart"
