"""Policy end to end on real OpenSTA studies."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir, read_provenance
from noodle2.engine.study.load import load_study
from noodle2.engine.tools import make_tool
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study

pytestmark = pytest.mark.skipif(shutil.which("sta") is None, reason="needs OpenSTA")

HEAD = """
[study]
name = "{name}"
safety_domain = "{domain}"
seed = 4
[design]
top = "mac16"
rtl = ["designs/mac16/mac16.v"]
sdc = "designs/mac16/mac16.sdc"
[execution]
max_parallel = 2
soft_timeout_s = 60
"""


def study_file(tmp: Path, name: str, body: str, domain: str = "guarded") -> Path:
    d = tmp / name
    shutil.copytree(ROOT / "sample_studies/designs/mac16", d / "designs/mac16")
    f = d / "study.toml"
    f.write_text(HEAD.format(name=name, domain=domain) + body)
    return f


def run(path: Path, root: Path) -> Engine:
    study = load_study(path)
    sd = new_study_dir(study, root)
    eng = Engine(sd, study, make_tool(study, sd))
    anyio.run(eng.run)
    return eng


def test_locked_domain_refuses_routing_affecting_before_compute(tmp_path):
    f = study_file(tmp_path, "locked", """
[[stages]]
name = "regress"
trials = 4
survivors = 1
ecos = ["resize_critical", "pin_swap"]
""", domain="locked")
    r = subprocess.run([*NOODLE2, "run", str(f), "--unattended", "--root", str(tmp_path / "studies")], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 2
    assert "N2-E111 stages[0].ecos[1]" in r.stderr and "pin_swap (routing_affecting)" in r.stderr
    assert "regress" in r.stderr and "locked does not allow routing_affecting" in r.stderr
    assert not (tmp_path / "studies").exists()  # refused before anything was created or run


def test_crashing_eco_is_disabled_and_the_study_completes(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sta").write_text(f"""#!/bin/sh
# fault injection: real sta, except that clone_driver trials crash it
if grep -q "n2_eco_clone_driver [0-9]" run.tcl; then kill -SEGV $$; fi
exec {shutil.which('sta')} "$@"
""")
    (bindir / "sta").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    # the wrapper looks at run.tcl as sta starts, so each trial must start its own sta (tests/test_warm.py
    # crashes warm workers)
    f = study_file(tmp_path, "crashy", """
[abort]
eco_failure_limit = 3
catastrophic_crash_cases = 3
[[stages]]
name = "explore"
trials = 6
survivors = 2
ecos = ["clone_driver", "pin_swap"]
[[stages]]
name = "more"
trials = 4
survivors = 1
ecos = ["clone_driver", "buffer_fanout"]
""")
    f.write_text(f.read_text().replace("[execution]", "[execution]\nwarm = false", 1))
    eng = run(f, tmp_path / "studies")
    s = eng.state
    assert s.status == "complete", s.reason
    crashed = [t for t in s.stage_trials(0) if t.eco == "clone_driver"]
    assert [t.failure["type"] for t in crashed] == ["tool_crash"] * 3
    assert any(d["action"] == "disable_eco" and d["subject"] == "clone_driver" for d in s.decisions)
    assert any(d["action"] == "skip_eco" and d["subject"] == "clone_driver" and d["stage"] == 1 for d in s.decisions)
    assert {t.eco for t in s.stage_trials(1)} == {"buffer_fanout"}
    trace = [orjson.loads(x) for x in (eng.dir / "safety_trace.jsonl").read_bytes().splitlines()]
    gate = [g for g in trace if g["gate"] == "eco_failure_limit" and g["subject"] == "clone_driver" and g["stage"] == 1]
    assert gate[0]["result"] == "fail" and gate[0]["values"] == {"failures": 3, "limit": 3}
    assert "✗ FAIL" in (eng.dir / "safety_trace.md").read_text()
    status = subprocess.run([*NOODLE2, "status", str(eng.dir)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert "! ECO clone_driver disabled: failed 3 times" in status.stdout
    board = orjson.loads((eng.dir / "eco_leaderboard.json").read_bytes())
    assert board[-1]["eco"] == "clone_driver" and board[-1]["failures"] == 3


def test_plateau_stops_the_study_early(tmp_path):
    f = study_file(tmp_path, "flat", """
[abort]
plateau_stages = 1
plateau_min_gain_ps = 5000
[[stages]]
name = "one"
trials = 2
survivors = 1
ecos = ["pin_swap"]
[[stages]]
name = "two"
trials = 2
survivors = 1
ecos = ["pin_swap"]
""")
    eng = run(f, tmp_path / "studies")
    s = eng.state
    assert s.status == "complete" and s.reason.startswith("plateau: 1 stage(s) without a WNS gain of ≥ 5000 ps")
    assert [st.status for st in s.stages] == ["done", "skipped"]
    assert not s.stages[1].cases


def test_pareto_stage_survivors_are_all_non_dominated(tmp_path):
    f = study_file(tmp_path, "pareto", """
[ranking]
kind = "pareto"
objectives = ["wns_ps", "area_um2"]
[[stages]]
name = "front"
mode = "sta"
trials = 10
survivors = 2
ecos = ["buffer_fanout", "pin_swap", "clone_driver"]
[stages.params.buffer_fanout]
paths = { min = 5, max = 20 }
min_fanout = { min = 2, max = 6 }
[stages.params.clone_driver]
min_fanout = { min = 2, max = 8 }
""")
    eng = run(f, tmp_path / "studies")
    s = eng.state
    st = s.stages[0]
    pts = {c: (s.trials[c].metrics["wns_ps"], -s.trials[c].metrics["area_um2"]) for c in st.ranking}
    assert len(st.front) >= st.survivor_count  # a real WNS/area trade-off exists among the trials
    for c in st.survivors:
        assert not any(all(a >= b for a, b in zip(pts[o], pts[c])) and pts[o] != pts[c] for o in pts), c
    assert set(st.survivors) <= set(st.front)
    assert len({pts[c] for c in st.survivors}) == len(st.survivors)  # distinct design points
    pareto = orjson.loads((eng.dir / "stages/0-front/pareto.json").read_bytes())
    assert pareto["front"] == st.front and set(pareto["on_front"]) == set(st.survivors) & set(st.front)


def test_priors_import_is_explicit_and_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = fake_study(tmp_path, name="first")
    r = subprocess.run([*NOODLE2, "run", str(first), "--unattended", "--study-dir", str(tmp_path / "a")], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    second = fake_study(tmp_path, name="second", extra=f'[priors]\nimport_from = ["{tmp_path / "a"}"]\nmin_trials = 1')
    study = load_study(second)
    sd = new_study_dir(study, tmp_path / "b")
    prov = read_provenance(sd)["priors_imported"]
    assert prov[0]["from"].endswith("a/eco_leaderboard.json") and len(prov[0]["sha256"]) == 64
    eng = Engine(sd, study, make_tool(study, sd))
    anyio.run(eng.run)
    isolated = load_study(fake_study(tmp_path, name="third"))
    sd3 = new_study_dir(isolated, tmp_path / "c")
    assert "priors_imported" not in read_provenance(sd3)  # never implicit
    a = {r["eco"]: r["trials"] for r in orjson.loads((tmp_path / "a" / "eco_leaderboard.json").read_bytes())}
    b = {r["eco"]: r["trials"] for r in orjson.loads((sd / "eco_leaderboard.json").read_bytes())}
    own = {}
    for t in eng.state.trials.values():
        if t.stage >= 0:
            own[t.eco] = own.get(t.eco, 0) + 1
    assert b == {e: a.get(e, 0) + own.get(e, 0) for e in set(a) | set(own)}
    assert a and all(a[e] > 0 for e in a)


MIXED = f"""
[study]
name = "mixed"
safety_domain = "guarded"
seed = 9

[design]
top = "mac8"
tech = "osu018"
rtl = ["{ROOT / 'sample_studies' / 'designs' / 'mac8' / 'mac8.v'}"]
sdc = "{ROOT / 'sample_studies' / 'designs' / 'mac8' / 'mac8.sdc'}"

[execution]
max_parallel = 2
soft_timeout_s = 300

[ranking]
kind = "lexicographic"
objectives = ["wns_ps", "hot_ratio"]

[[stages]]
name = "timing"
mode = "sta"
trials = 3
survivors = 2
ecos = ["resize_critical", "pin_swap", "buffer_fanout"]
{{timing_ranking}}

[[stages]]
name = "route"
mode = "route"
trials = 2
survivors = 1
ecos = ["noop"]
[stages.ranking]
objective = "hot_ratio"
"""


@pytest.mark.skipif(shutil.which("qflow") is None, reason="needs qflow (bash .ci/setup installs it)")
def test_a_timing_stage_ranked_on_congestion_is_a_validate_error_and_per_stage_ranking_runs(tmp_path):
    """#21: ranking on wns_ps and hot_ratio passed validate, then the unrouted base case 'lacked'
    hot_ratio and blocked the study.  Now validate names the timing-only stage; with its own
    [stages.ranking] the study runs: timing ranked on WNS, the route stage on congestion."""
    from noodle2.engine.study.load import parse_study

    bad = tmp_path / "bad.toml"
    bad.write_text(MIXED.replace("{timing_ranking}", ""))
    with pytest.raises(N2Error) as ei:
        parse_study(bad.read_text(), bad)
    [p] = [p for p in ei.value.problems if p.code == "N2-E126"]
    assert "stage 'timing' (mode sta) ranks on 'hot_ratio'" in p.message and "[stages.ranking]" in p.hint
    good = tmp_path / "good.toml"
    good.write_text(MIXED.replace("{timing_ranking}", '[stages.ranking]\nobjective = "wns_ps"'))
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(good), "--unattended", "--study-dir",
                        str(tmp_path / "d")], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    evs = [orjson.loads(x) for x in (tmp_path / "d" / "journal.jsonl").read_bytes().splitlines()]
    done = {e["case_id"]: e["metrics"] for e in evs if e["type"] == "trial_finished"}
    chosen = {e["stage"]: e for e in evs if e["type"] == "survivors_chosen"}
    timing = chosen[0]["ranking"]
    assert [done[c]["wns_ps"] for c in timing] == sorted((done[c]["wns_ps"] for c in timing), reverse=True)
    route = chosen[1]["ranking"]
    assert all("hot_ratio" in done[c] for c in route)
    assert [done[c]["hot_ratio"] for c in route] == sorted(done[c]["hot_ratio"] for c in route)  # least congested first
