"""`noodle2 report` on a real study (#12): every file, the HTML and CSV parsed, the plots not
blank, and the winner's change list replayed in sta to the picosecond."""
from __future__ import annotations

import csv
import html.parser
import io
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from noodle2.engine.reports.changes import diff, replay_tcl, table_md
from noodle2.engine.tools.netlist import parse_netlist
from tests.conftest import NOODLE2, ROOT, cli_env

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("report") / "quick"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(ROOT / "sample_studies" / "quickstart.toml"),
                        "--unattended", "--study-dir", str(d)], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "report", str(d)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"report: {d}/report/summary.html" in r.stdout
    return d


class _Html(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.imgs: list[str] = []
        self.tables = 0
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in_h2 = True
        elif tag == "img":
            self.imgs.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables += 1

    def handle_endtag(self, tag):
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


def test_every_report_file_and_a_self_contained_html(study):
    rep = study / "report"
    want = {"summary.html", "summary.md", "trials.csv", "lineage.dot", "winner_changes.md", "winner_replay.tcl",
            "trajectory.png", "progression.png", "pareto.png", "eco_success.png", "params.png"}
    if shutil.which("dot"):
        want.add("lineage.svg")
    assert want <= {p.name for p in rep.iterdir()}
    page = (rep / "summary.html").read_text()
    p = _Html()
    p.feed(page)
    assert p.h2 == ["Study", "Result", "Stage funnel", "The winner's lineage",
                    "The winner's changes against the base netlist", *(["Lineage"] if shutil.which("dot") else []),
                    "ECO leaderboard", "What was learned", "Safety trace", "Failures by class", "Plots"]
    assert p.imgs and all(src.startswith("data:image/") for src in p.imgs)  # nothing fetched when it opens
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert p.tables >= 8
    # #22.12: the change list is a table in both, not Markdown inside <pre> or a code block
    changes = page.split("changes against the base netlist</h2>", 1)[1].split("<h2", 1)[0]
    assert "<table" in changes and "<pre" not in changes and "| change |" not in changes
    md = (rep / "summary.md").read_text()
    md_changes = md.split("The winner's changes against the base netlist", 1)[1].split("\n## ", 1)[0]
    assert "| change | where | what |" in md_changes and "```" not in md_changes
    assert "![" in md and "(trajectory.png)" in md and "| explore | sta_power | done | 8 |" in md


def test_trials_csv_has_every_trial_with_params_metrics_status_and_parent(study):
    rows = list(csv.DictReader(io.StringIO((study / "report" / "trials.csv").read_text())))
    events = [orjson.loads(x) for x in (study / "journal.jsonl").read_bytes().splitlines()]
    finished = {e["case_id"]: e for e in events if e["type"] == "trial_finished"}
    assert len(rows) == 19 and {r["case"] for r in rows} == {e["case_id"] for e in events if e["type"] == "trial_started"}
    for r in rows:
        if r["status"] == "done":
            assert float(r["wns_ps"]) == finished[r["case"]]["metrics"]["wns_ps"]
    assert {"case", "stage", "parent", "eco", "status", "failure", "wns_ps", "tns_ps", "area_um2"} <= set(rows[0])
    assert any(k.startswith("param.") for k in rows[0])
    assert rows[0]["stage"] == "base" and all(r["parent"] for r in rows[1:])


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plots_are_real_images(study):
    import matplotlib.image

    for name in ("trajectory.png", "pareto.png", "eco_success.png"):
        w, h = _png_size(study / "report" / name)
        assert 500 <= w <= 1600 and 250 <= h <= 1600, (name, w, h)
        img = matplotlib.image.imread(study / "report" / name)
        assert img.std() > 0.05, f"{name} is blank"  # something is drawn
        assert img.shape[:2] == (h, w)


def test_the_replay_script_reproduces_the_winner_to_the_picosecond(study):
    rep = study / "report"
    best = orjson.loads(subprocess.run([sys.executable, "-m", "noodle2.console.cli", "status", str(study), "--json"], cwd=ROOT,
                                       env=cli_env(), capture_output=True, text=True).stdout)["best"]
    r = subprocess.run(["sta", "-no_init", "-no_splash", "-exit", "winner_replay.tcl"], cwd=rep, capture_output=True,
                       text=True, timeout=120)
    assert "Error" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    # it reads the Liberty trials time with, never the cells-only copy beside it that Yosys reads
    reads = re.findall(r"^read_liberty (\S+)$", (rep / "winner_replay.tcl").read_text(), re.M)
    tech = {p.name for p in (study / "snapshot" / "tech").glob("*.lib")}
    assert "yosys_cells.lib" in tech and [Path(x).name for x in reads] == sorted(tech - {"yosys_cells.lib"}), reads
    wns = float(re.search(r"^wns (\S+)", r.stdout, re.M).group(1)) * 1000
    tns = float(re.search(r"^tns (\S+)", r.stdout, re.M).group(1)) * 1000
    assert (round(wns), round(tns)) == (round(best["metrics"]["wns_ps"]), round(best["metrics"]["tns_ps"]))
    # the replayed netlist is the winner's, edit for edit
    replayed = parse_netlist((rep / "winner_replayed.v").read_text())
    winner = parse_netlist((study / "trials" / best["case"] / "mac16.v").read_text())
    assert diff(winner, replayed).empty and not diff(parse_netlist((study / "snapshot" / "mac16.v").read_text()),
                                                     replayed).empty


def test_the_change_list_names_each_kind_of_edit():
    base = parse_netlist("""module t(a, b, y);
  input a, b; output y; wire n1, n2;
  NAND2X1 u1 (.A(a), .B(b), .Y(n1));
  INVX1 u2 (.A(n1), .Y(n2));
  INVX1 u3 (.A(n2), .Y(y));
  INVX1 u4 (.A(n1), .Y(n3));
endmodule
""")
    win = parse_netlist("""module t(a, b, y);
  input a, b; output y; wire n1, n2, nb;
  NAND2X1 u1 (.A(b), .B(a), .Y(n1));
  INVX4 u2 (.A(n1), .Y(n2));
  BUFX2 b1 (.A(n2), .Y(nb));
  INVX1 u3 (.A(nb), .Y(y));
endmodule
""")
    c = diff(base, win)
    assert c.resized == [("u2", "INVX1", "INVX4")] and c.removed == [("u4", "INVX1")]
    assert c.added == [("b1", "BUFX2", {"A": "n2", "Y": "nb"})] and c.new_nets == ["nb"]
    assert c.swapped == [("u1", "NAND2X1", {"A": "b", "B": "a"})]
    assert c.reconnected == [("u3", "A", "n2", "nb")]
    md = table_md(c)
    assert "| resize | u2 | INVX1 → INVX4 |" in md and "| swap pins | u1 | NAND2X1: A ↔ B |" in md
    tcl = replay_tcl(c)
    assert "sta::replace_cell_cmd $n2r_inst(u2)" in tcl and "sta::delete_instance_cmd $n2r_inst(u4)" in tcl


def test_ray_node_rows_name_a_lost_node_that_ran_nothing_and_skip_the_cpu_less_head():
    """As on CI's machine (stop 32): Ray placed every trial on one worker, then the other was
    lost.  The lost node still has its row, with 0 trials, and only it is marked lost."""
    from noodle2.engine.journal.state import StudyState, TrialState
    from noodle2.engine.reports.summary import node_rows

    s = StudyState(started_at=1000.0, last_event_at=1100.0)
    for i, (status, wall) in enumerate([("done", 10.0), ("done", 20.0), ("failed", 5.0), ("running", 0.0)]):
        s.trials[f"x_0_{i}"] = TrialState(f"x_0_{i}", 0, i, "x", "noop", {}, status=status,
                                          resources={"node": "pid 7:aaaa1111", "wall_s": wall})
    nodes = [{"id": "head0000", "cpus": 0, "host": "127.0.0.1"}, {"id": "aaaa1111", "cpus": 1, "host": "127.0.0.1"},
             {"id": "bbbb2222", "cpus": 2, "host": "127.0.0.1"}]
    seen = [{"node_list": nodes}, {"node_list": nodes[:2]}]
    assert node_rows(s, seen) == [["127.0.0.1/aaaa1111", 3, "35.0", "35%", ""],
                                  ["127.0.0.1/bbbb2222", 0, "0.0", "0%", "lost"]]
    assert [r[4] for r in node_rows(s, seen[:1])] == ["", ""]  # one status: nothing to have lost


@pytest.mark.parametrize("design,eco,params", [
    ("mac16", "resize_critical", {"paths": 20, "max_cells": 40}),  # replace_cell
    ("mac16", "clone_driver", {"paths": 10, "min_fanout": 3, "max_clones": 3}),  # new cells and nets
    ("sort8", "resynth_cone", {"paths": 20, "depth": 30, "delay_target_ps": 500}),  # cells removed; escaped names
])
def test_replay_of_each_kind_of_edit_in_sta(bench, design, eco, params):
    from noodle2.engine.journal.state import StudyState
    from noodle2.engine.reports.summary import replay_frame

    b = bench(design)
    base, base_dir = b.base()
    m, tdir = b.trial(f"replay_{eco}", eco, params, parent=base_dir)
    assert "failure" not in m, m
    c = diff(parse_netlist((base_dir / f"{b.top}.v").read_text()), parse_netlist((tdir / f"{b.top}.v").read_text()))
    kinds = {"resize_critical": c.resized, "clone_driver": c.added, "resynth_cone": c.removed}
    assert kinds[eco], f"{eco} changed nothing to replay"
    head, tail = replay_frame(b.dir, tdir, StudyState(name=design), b.top)
    tail = tail.replace("-digits 3", "-digits 6")
    (tdir / "replay.tcl").write_text(replay_tcl(c, head, tail))
    fresh = head.replace(f"read_verilog {head.split('read_verilog ')[1].split(chr(10))[0]}", f"read_verilog {b.top}.v")
    (tdir / "fresh.tcl").write_text(fresh + "\nreport_wns -digits 6\nreport_tns -digits 6\n")

    def slack(script):
        r = subprocess.run(["sta", "-no_init", "-no_splash", "-exit", script], cwd=tdir, capture_output=True, text=True,
                           timeout=120)
        assert "Error" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
        return [float(re.search(rf"^{k} (\S+)", r.stdout, re.M).group(1)) * 1000 for k in ("wns", "tns")]
    replayed, child = slack("replay.tcl"), slack("fresh.tcl")
    assert replayed == child  # the replay is the child's netlist: timing equal to the femtosecond
    # the trial measured in the session that made the edits (incremental delay calculation): within 1 ps
    assert abs(replayed[0] - m["wns_ps"]) <= 1 and abs(replayed[1] - m["tns_ps"]) <= 1


def test_a_large_study_draws_its_decisions_not_every_trial(tmp_path):
    """#22.12 and 100k-trial reports: every trial's lineage is unreadable in a page and Graphviz
    ran past its 2-minute limit (a traceback); above 60 cases the SVG keeps the survivors and
    their ancestors, and lineage.dot keeps every case."""
    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports import summary
    from tests.conftest import fake_study

    stages = "".join(f'[[stages]]\nname = "s{i}"\ntrials = 30\nsurvivors = 2\necos = ["resize_critical"]\n\n' for i in range(3))
    path = fake_study(tmp_path, stages=stages)
    d = tmp_path / "big"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    s = recover(d).state
    got = summary.write(d, s)
    out = d / "report"
    assert (out / "lineage.dot").read_text().count(" -> ") == 90  # every trial from its parent
    svg = (out / "lineage.svg").read_text()
    drawn = set(re.findall(r"<title>(fake(?:_\d+_\d+)?)</title>", svg))
    survivors = {c for st in s.stages for c in st.survivors}
    assert survivors <= drawn and len(drawn) < 20 and "fake" in drawn
    assert any("survivors and their ancestors" in n for n in got["notes"])


def test_a_netlist_study_records_its_snapshot_hash_and_the_report_shows_it(tmp_path):
    """#22.12: for a netlist study the page read `sha256 ` with no hash and `OpenSTA 2.0.17; `."""
    d = tmp_path / "net"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", "sample_studies/gcd_sky130hd.toml",
                        "--unattended", "--study-dir", str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-1500:]
    h = orjson.loads((d / "provenance.json").read_bytes())["snapshot"]["snapshot_hash"]
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "report", str(d)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    page = (d / "report" / "summary.html").read_text()
    assert f"sha256 {h[:16]}" in page and "OpenSTA 2.0.17;" not in page and "OpenSTA 2.0.17" in page


def _drawn(monkeypatch, fn, s, tmp_path):
    """The matplotlib figure a plot function draws, captured before it is closed."""
    from noodle2.engine.reports import plots

    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: (fig.canvas.draw(), figs.append(fig)))
    caption = fn(s, tmp_path / "x.png")
    return figs[0], caption


def test_one_unit_rule_in_plots_summary_and_compare(study, monkeypatch, tmp_path):
    """#22.12: slacks in ns everywhere, always labelled; the Pareto plot on the study's own objectives;
    the ECO-success legend clear of every bar; integer parameters on integer ticks."""
    from matplotlib.patches import Rectangle

    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports import plots

    s = recover(study).state
    fig, _ = _drawn(monkeypatch, plots.trajectory, s, tmp_path)
    assert [a.get_ylabel() for a in fig.axes] == ["WNS (ns)", "TNS (ns)"]
    wns = [t.metrics["wns_ps"] for t in plots._done(s)]
    ys = fig.axes[0].collections[0].get_offsets()[:, 1]
    assert min(ys) >= min(wns) / 1000 - 1e-9 and max(ys) <= max(wns) / 1000 + 1e-9  # drawn in ns, not ps
    fig, caption = _drawn(monkeypatch, plots.pareto, s, tmp_path)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("WNS (ns)", "TNS (ns)") and "_ps" not in ax.get_title() + caption
    s.spec = {**s.spec, "ranking": {"kind": "pareto", "objectives": ["area_um2", "power_total_w"]}}
    fig, caption = _drawn(monkeypatch, plots.pareto, s, tmp_path)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("area (µm²)", "power (mW)")
    assert ax.get_title().endswith("area against power")
    fig, _ = _drawn(monkeypatch, plots.eco_success, s, tmp_path)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    bars = [p.get_window_extent() for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]
    assert bars and not any(legend.overlaps(b) for b in bars)
    assert all(float(x).is_integer() for x in ax.get_xticks())
    fig, _ = _drawn(monkeypatch, plots.params, s, tmp_path)
    for ax in fig.axes:
        if ax.get_xlabel() in ("paths", "max_cells", "depth", "min_fanout", "max_nets"):
            assert all(float(x).is_integer() for x in ax.get_xticks()), ax.get_xlabel()
            assert ax.get_ylabel() == "ΔWNS (ns) vs parent"
    md = (study / "report" / "summary.md").read_text()
    assert "mean ΔWNS ns" in md and "ΔWNS ps" not in md and "| WNS ns |" in md


def test_the_study_best_is_the_engines_journaled_decision(study, tmp_path):
    """Each finished stage journals the study's best from then on; views read that decision
    (they do not rank again), and it is what the ranking gives over the finished stages."""
    from noodle2.engine.journal.store import JOURNAL, read_events, recover
    from noodle2.engine.policy.ranking import study_best
    from noodle2.engine.reports.status import best_case, status_text
    from noodle2.engine.study.models import Ranking

    evs = [e for e in read_events(study / JOURNAL).events if e.type == "stage_finished" and e.status == "done"]
    s = recover(study).state
    assert len(evs) == len(s.stages) >= 2 and all(e.best for e in evs)
    assert s.best == evs[-1].best == study_best(s, Ranking.model_validate(s.spec["ranking"]))
    assert evs[0].best in s.stages[0].survivors and best_case(s).case_id == s.best
    # the view shows the decision in the journal, even one the ranking would not make today
    other = next(c for st in s.stages for c in st.survivors if c != s.best)
    s.best = other
    assert best_case(s).case_id == other and f"best      {other}  WNS" in status_text(s, None)


def test_provenance_of_the_winner_and_verify_catches_a_changed_file(study, tmp_path):
    """#23: the report writes the winner's provenance; `provenance --verify` re-checks every hash and
    replays the chain in sta, edit for edit and to the picosecond; a changed netlist fails it."""
    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports.status import best_case, lineage

    s = recover(study).state
    best = best_case(s)
    doc = orjson.loads((study / "report" / f"provenance-{best.case_id}.json").read_bytes())
    chain = lineage(s, best.case_id)
    assert [st["case"] for st in doc["chain"]] == [t.case_id for t in chain] and doc["case"] == best.case_id
    assert all(st["proof"]["proven"] for st in doc["chain"][1:]) and doc["chain"][0]["eco"] == "noop"
    assert all(st["command"].startswith("sta ") and st["journal_seq"][0] <= st["journal_seq"][1] for st in doc["chain"])
    assert doc["tools"]["sta"] == "2.0.17" and doc["study_file"]["sha256"] and doc["snapshot"]
    assert f"provenance-{best.case_id}.json" in (study / "report" / "summary.html").read_text()
    md = (study / "report" / f"provenance-{best.case_id}.md").read_text()
    assert f"| {len(chain) - 1} | {best.case_id} |" in md and "WNS" in md
    r = subprocess.run([*NOODLE2, "provenance", str(study), "--verify", "--out", str(tmp_path / "p")], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✗" not in r.stdout and re.search(r"verify: (\d+)/\1 checks match", r.stdout), r.stdout
    assert r.stdout.count("edit for edit") == len(chain) - 1 and "replay timing: WNS" in r.stdout
    # a copy of the study with one step's netlist changed: that hash and that replay fail, exit 1
    bad = tmp_path / "bad"
    shutil.copytree(study, bad)
    step = chain[-1].case_id
    v = bad / "trials" / step / "mac16.v"
    v.chmod(0o644)
    v.write_text(v.read_text().replace("\n", "\n// edited\n", 1))
    r = subprocess.run([*NOODLE2, "provenance", str(bad), step, "--verify"], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and f"✗ hash trials/{step}/mac16.v" in r.stdout, r.stdout
    r = subprocess.run([*NOODLE2, "provenance", str(study), "nosuch_9_9"], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "N2-E216" in r.stderr and "Traceback" not in r.stderr


def test_a_study_directory_explains_itself(study):
    """#23: a README written at creation names every file; each stage has its summary.json with its
    plan, outcome, survivors and timing, as journaled."""
    from noodle2.engine.journal.store import recover

    readme = (study / "README.md").read_text()
    for name in ("journal.jsonl", "checkpoint.json", "provenance.json", "inputs/", "snapshot/", "trials/<case>/",
                 "stages/<n>-<name>/", "report/"):
        assert f"`{name}`" in readme, name
    s = recover(study).state
    for st in s.stages:
        got = orjson.loads((study / "stages" / f"{st.index}-{st.name}" / "summary.json").read_bytes())
        assert got["survivors"] == st.survivors and [p["case"] for p in got["plan"]] == st.cases
        assert got["status"] == st.status and got["trials_run"] == len(st.cases) and got["timing"]["wall_s"] > 0
        assert sum(o == "done" for o in got["outcome"].values()) >= len(st.survivors)


def test_what_was_learned_and_suggest_writes_a_next_study_that_validates(study, tmp_path):
    """#21: per ECO and parameter, the gain with its spread, the best values and the range the
    better trials span, in the report; `suggest` writes the next study file from it (validated)."""
    import tomllib

    from noodle2.engine.journal.store import recover
    from noodle2.engine.policy.learn import lessons, study_ranking

    s = recover(study).state
    obj, got = lessons(s, study_ranking(s))
    assert obj == "wns_ps" and sum(e.trials for e in got) == sum(1 for t in s.trials.values()
                                                                 if t.stage >= 0 and t.status in ("done", "failed"))
    for e in got:  # each gain is a trial's WNS over its parent's, as journaled
        want = sorted(t.metrics["wns_ps"] - s.trials[t.parent].metrics["wns_ps"] for t in s.trials.values()
                      if t.stage >= 0 and t.eco == e.eco and t.status == "done")
        assert sorted(e.gains) == pytest.approx(want)
    md = (study / "report" / "summary.md").read_text()
    assert "## What was learned" in md and "| resize_critical |" in md.split("## What was learned")[1]
    out = tmp_path / "next.toml"
    r = subprocess.run([*NOODLE2, "suggest", str(study), "--out", str(out)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and f"wrote {out}" in r.stdout, r.stdout + r.stderr
    v = subprocess.run([*NOODLE2, "validate", str(out)], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                       timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    spec = tomllib.loads(out.read_text())
    assert spec["study"]["name"] == f"{s.name}-next" and Path(spec["design"]["rtl"][0]).is_absolute()
    narrowed = {(e.eco, p.name): p for e in got for p in e.params if p.keep and p.keep != p.tried}
    for st in spec["stages"]:
        for eco, ps in st.get("params", {}).items():
            for name, rng in ps.items():
                if (eco, name) in narrowed and isinstance(rng, dict):
                    p = narrowed[(eco, name)]
                    assert p.tried[0] <= rng["min"] <= p.best_value <= rng["max"] <= p.tried[1], (eco, name, rng)
    again = subprocess.run([*NOODLE2, "suggest", str(study), "--out", str(out)], cwd=ROOT, env=cli_env(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "N2-E218" in again.stderr  # never overwrites without --force


def test_three_objectives_are_drawn_pair_by_pair(study, monkeypatch, tmp_path):
    """#21: with three or more objectives the Pareto plot is a pairwise grid, every axis labelled
    with its unit, the front on all objectives starred in each panel."""
    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports import plots

    s = recover(study).state
    s.spec = {**s.spec, "ranking": {"kind": "pareto", "objectives": ["wns_ps", "area_um2", "power_total_w"]}}
    fig, caption = _drawn(monkeypatch, plots.pairwise, s, tmp_path)
    drawn = [a for a in fig.axes if a.axison]
    assert len(drawn) == 3 and "3 objectives" in caption
    labels = {a.get_xlabel() for a in drawn} | {a.get_ylabel() for a in drawn}
    assert {"WNS (ns)", "area (µm²)", "power (mW)"} <= labels
    stars = [len(a.collections[1].get_offsets()) for a in drawn]
    assert len(set(stars)) == 1 and stars[0] >= 1  # the same front in every panel
