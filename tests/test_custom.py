"""Your own ECOs and metrics (#12): defined in the study file, in a folder of ECO files, or by an
installed plugin; run by real sta through the same legality, integrity and ranking as built-ins;
malformed definitions refused at validate with N2-E121."""
from __future__ import annotations

import shutil
import subprocess
import sys

import orjson
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.study.load import parse_study
from tests.conftest import ROOT, cli_env

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")

MAC16 = ROOT / "sample_studies" / "designs" / "mac16"
STUDY = f"""
[study]
name = "mine"
safety_domain = "guarded"
seed = 2

[design]
top = "mac16"
tech = "osu018"
rtl = ["{MAC16 / 'mac16.v'}"]
sdc = "{MAC16 / 'mac16.sdc'}"

[ranking]
objective = "{{objective}}"

[[custom.ecos]]
name = "upsize_worst_drivers"
eco_class = "topology_neutral"
description = "Upsize every driver on the worst paths, no questions asked"
tcl = '''
  set n 0
  foreach pin [n2_path_drivers $paths] {{ incr n [n2_resize [$pin instance] 1] }}
  return $n
'''
[[custom.ecos.params]]
name = "paths"
min = 1
max = 10
default = 2

[[custom.metrics]]
name = "worst_slack_ns"
source = "sta.wns.rpt"
regex = '^wns\\s+(\\S+)'
unit = "ns"
direction = "max"

[[custom.metrics]]
name = "first_path_stages"
source = "metrics.json"
json_pointer = "/worst_paths/0/stages"
unit = "cells"
direction = "min"

[[stages]]
name = "one"
mode = "sta"
trials = 2
survivors = 1
ecos = ["upsize_worst_drivers"]
[stages.params.upsize_worst_drivers]
paths = [1, 3]
"""


def run(tmp_path, text, name="s", check=True):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(tmp_path / name)], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    events = [orjson.loads(x) for x in (tmp_path / name / "journal.jsonl").read_bytes().splitlines()] \
        if (tmp_path / name / "journal.jsonl").exists() else []
    return r, events


def test_a_custom_eco_and_metrics_run_rank_and_report(tmp_path):
    r, events = run(tmp_path, STUDY.replace("{objective}", "worst_slack_ns"))
    done = {e["case_id"]: e["metrics"] for e in events if e["type"] == "trial_finished"}
    trials = {e["case_id"]: e for e in events if e["type"] == "stage_started" for e in e["plan"]}
    assert [trials[c]["eco"] for c in ("mac16_0_0", "mac16_0_1")] == ["upsize_worst_drivers"] * 2
    for case, m in done.items():
        assert m["worst_slack_ns"] == pytest.approx(m["wns_ps"] / 1000, abs=5e-4)  # the regex read sta.wns.rpt
        assert m["first_path_stages"] == m["worst_paths"][0]["stages"]  # the pointer read metrics.json
    few, many = sorted(("mac16_0_0", "mac16_0_1"), key=lambda c: trials[c]["params"]["paths"])
    assert [trials[c]["params"]["paths"] for c in (few, many)] == [1, 3]
    assert done[many]["eco_changes"] > done[few]["eco_changes"] > 0  # 3 paths resize more than 1
    chosen = next(e for e in events if e["type"] == "survivors_chosen")
    best = max(("mac16_0_0", "mac16_0_1"), key=lambda c: (done[c]["worst_slack_ns"], c == chosen["survivors"][0]))
    assert chosen["survivors"] == [best]  # ranked on the custom metric, larger is better as declared
    legality = (tmp_path / "s" / "legality_report.md").read_text()
    assert "✓ upsize_worst_drivers" in legality and "topology_neutral" in legality
    listed = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "ecos", str(tmp_path / "s.toml")], cwd=ROOT,
                            env=cli_env(), capture_output=True, text=True).stdout
    assert "upsize_worst_drivers" in listed and "[study file]" in listed and "worst_slack_ns" in listed


def test_a_custom_eco_is_held_to_its_class_and_its_domain(tmp_path):
    adds_a_cell = STUDY.replace("{objective}", "wns_ps").replace(
        "  foreach pin [n2_path_drivers $paths] { incr n [n2_resize [$pin instance] 1] }",
        "  set b [n2_make_instance n2x_buf BUFX2]\n  incr n")
    r, events = run(tmp_path, adds_a_cell, check=False)
    failed = [e["failure"] for e in events if e["type"] == "trial_failed"]
    assert failed and all(f["type"] == "eco_integrity" for f in failed), failed  # topology_neutral adds no cell
    disruptive = STUDY.replace('eco_class = "topology_neutral"', 'eco_class = "global_disruptive"')
    with pytest.raises(N2Error) as ei:
        parse_study(disruptive.replace("{objective}", "wns_ps"), tmp_path / "x.toml")
    assert ("N2-E111", "stages[0].ecos") == (ei.value.problems[0].code, ei.value.problems[0].path.rsplit("[", 1)[0])


@pytest.mark.parametrize("change,needle", [
    ("return $n\n'''", "braces or brackets do not balance"),
    ("regex = '^wns\\s+(\\S+)'", "exactly one group"),
    ("default = 2", "default 20 outside"),
    ('name = "upsize_worst_drivers"\neco_class', "defined twice (or is a built-in)"),
    ('json_pointer = "/worst_paths/0/stages"', "exactly one of regex and json_pointer"),
])
def test_malformed_definitions_are_n2_e121_at_validate(tmp_path, change, needle):
    text = STUDY.replace("{objective}", "wns_ps")
    bad = {"return $n\n'''": "return $n\n  }\n'''",
           "regex = '^wns\\s+(\\S+)'": "regex = '^wns'",
           "default = 2": "default = 20",
           'name = "upsize_worst_drivers"\neco_class': 'name = "resize_critical"\neco_class',
           'json_pointer = "/worst_paths/0/stages"': 'json_pointer = "/x"\nregex = "(x)"'}[change]
    assert change in text, change
    with pytest.raises(N2Error) as ei:
        parse_study(text.replace(change, bad), tmp_path / "x.toml")
    assert any(p.code == "N2-E121" and needle in p.message for p in ei.value.problems), ei.value.render()


def test_a_metric_that_finds_nothing_fails_its_trial(tmp_path):
    text = STUDY.replace("{objective}", "wns_ps").replace("regex = '^wns\\s+(\\S+)'", "regex = '^nothing (\\S+)'")
    r, events = run(tmp_path, text, check=False)
    base = next(e for e in events if e["type"] == "trial_failed")
    assert base["failure"]["type"] == "parse_failure" and "matches nothing in sta.wns.rpt" in base["failure"]["reason"]
    assert r.returncode == 1  # the base case failed: the study is blocked before any ECO


def test_eco_files_in_a_folder_are_copied_in_and_resume_reads_the_copies(tmp_path):
    (tmp_path / "ecos").mkdir()
    (tmp_path / "ecos" / "downsize.toml").write_text('''name = "downsize_one"
eco_class = "topology_neutral"
description = "Upsize the slackest resizable cell"
tcl = """
  foreach entry [n2_by_slack -decreasing] {
    if {[n2_resize [lindex $entry 2] 1]} { return 1 }
  }
  return 0
"""
''')
    text = STUDY.replace("{objective}", "wns_ps")
    text = text.replace('ecos = ["upsize_worst_drivers"]', 'ecos = ["upsize_worst_drivers", "downsize_one"]')
    text = text.replace("[[custom.ecos]]", '[custom]\neco_dirs = ["ecos"]\n\n[[custom.ecos]]', 1)
    r, events = run(tmp_path, text)
    assert (tmp_path / "s" / "inputs" / "ecos" / "downsize.toml").is_file()
    ran = [e for e in events if e["type"] == "trial_finished" and e["case_id"] == "mac16_0_1"]
    assert ran and ran[0]["metrics"]["eco_changes"] == 1
    from noodle2.engine.study.load import load_study

    (tmp_path / "ecos" / "downsize.toml").unlink()  # the study keeps its own copy, as resume reads it

    again = load_study(tmp_path / "s" / "inputs" / "study.toml", stored=True)
    assert "downsize_one" in {e.name for e in again.spec.custom.ecos}


def test_a_plugin_package_adds_an_eco_and_a_metric(tmp_path):
    text = STUDY.replace("{objective}", "wns_ps").replace('ecos = ["upsize_worst_drivers"]', 'ecos = ["upsize_first_driver"]')
    text = text.replace("[stages.params.upsize_worst_drivers]\npaths = [1, 3]\n", "")
    text = text.replace("[[custom.ecos]]", '[custom]\nplugin_metrics = ["worst_arrival_ns"]\n\n[[custom.ecos]]', 1)
    r, events = run(tmp_path, text)
    done = [e["metrics"] for e in events if e["type"] == "trial_finished" and e["case_id"] != "mac16"]
    assert done and all(m["eco_changes"] >= 1 for m in done)
    assert all(m["worst_arrival_ns"] == pytest.approx(m["worst_paths"][0]["arrival_ns"]) for m in done)
    spec = parse_study(text, tmp_path / "p.toml").spec
    assert next(e for e in spec.custom.ecos if e.name == "upsize_first_driver").source == "plugin:noodle2-example-plugin"


def escape_study(execution: str = "") -> str:
    """A study whose `escape` ECO writes into the snapshot and the study directory, beside an honest one."""
    text = STUDY.replace("{objective}", "wns_ps").replace('ecos = ["upsize_worst_drivers"]',
                                                         'ecos = ["escape", "upsize_worst_drivers"]')
    text = text.replace("[[custom.metrics]]", """[[custom.ecos]]
name = "escape"
eco_class = "topology_neutral"
description = "Writes where no trial may"
tcl = '''
  foreach f {../../snapshot/extra.txt ../../escaped.txt} { set ch [open $f w]; puts $ch x; close $ch }
  return 0
'''

[[custom.metrics]]""", 1)
    text = text.replace("[stages.params.upsize_worst_drivers]\npaths = [1, 3]\n", "")
    return text.replace("[ranking]", f"{execution}\n[ranking]", 1) if execution else text


def test_a_write_seen_by_overlapping_trials_marks_them_all_and_a_lone_one_none(tmp_path):
    """The manifest's bookkeeping: which trials had another tool running beside them."""
    from noodle2.engine.run.isolation import Watch

    (tmp_path / "snapshot").mkdir()
    (tmp_path / "trials" / "p").mkdir(parents=True)
    w = Watch(tmp_path)
    w.start("a", tmp_path / "trials" / "p")
    w.start("b", tmp_path / "trials" / "p")
    (tmp_path / "snapshot" / "x.v").write_text("x")  # one of them wrote it
    (tmp_path / "stray.txt").write_text("y")
    assert w.end("a") == (["snapshot/x.v created", "stray.txt created"], True)
    assert w.end("b") == (["snapshot/x.v created", "stray.txt created"], True)
    w.start("cancelled", tmp_path / "trials" / "p")
    w.drop("cancelled")  # its attempt ended without an end(): it must not count as running beside c
    w.start("c", tmp_path / "trials" / "p")
    (tmp_path / ".checkpoint.json.7.140.tmp").write_text("engine")  # the engine's own, never a trial's
    (tmp_path / "report").mkdir()
    assert w.end("c") == ([], False)


def test_a_trial_that_writes_outside_its_directory_fails_as_escaped_write(tmp_path):
    """#23: an ECO whose Tcl writes into the snapshot and the study directory is caught by the
    manifest after it runs: `escaped_write`, never ranked; its sibling runs as usual, and the
    snapshot and inputs are read-only to trials (file modes: root writes through them, so
    this test turns the read-only mounts off; the next one has them on)."""
    text = escape_study().replace("[ranking]", "[execution]\nmax_parallel = 2\nread_only_mounts = false\n\n[ranking]", 1)
    r, events = run(tmp_path, text)
    d = tmp_path / "s"
    failed = {e["case_id"]: e["failure"] for e in events if e["type"] == "trial_failed" and not e.get("retry")}
    plan = next(e["plan"] for e in events if e["type"] == "stage_started")
    escaper = next(p["case_id"] for p in plan if p["eco"] == "escape")
    assert failed[escaper]["type"] == "escaped_write", failed
    # a trial that ran beside another and saw the writes runs again alone, and only the writer
    # writes again.  The writer always sees its writes; its sibling only if it started before them
    # (on a loaded machine the writer may be done writing first), and never without the writer.
    warned = {e["msg"].split()[0] for e in events if e["type"] == "log" and "runs again alone" in e["msg"]}
    assert warned in (set(), {escaper}, {c["case_id"] for c in plan}), (warned, escaper)
    assert "snapshot/extra.txt" in failed[escaper]["reason"]
    assert set(failed) == {escaper}, failed
    survivors = next(e["survivors"] for e in events if e["type"] == "survivors_chosen")
    assert escaper not in survivors and survivors, survivors
    assert r.returncode == 0 and "escaped_write" in r.stdout
    for f in [*(d / "snapshot").glob("*.v"), *(d / "snapshot").glob("*.sdc"), d / "inputs" / "study.toml"]:
        assert not f.stat().st_mode & 0o222, f  # read-only to trials


@pytest.mark.parametrize("warm", [True, False])
def test_with_read_only_mounts_a_write_into_the_snapshot_fails_where_it_is_made(tmp_path, warm):
    """#23: where the machine allows a mount namespace (root, or unprivileged user namespaces),
    the snapshot, the inputs and the parent are bound read-only for each tool: the ECO's write
    fails at once ("read-only file system"), for root too, and nothing reaches the snapshot.
    Warm workers bind them as they start; a cold `sta` gets them in one `mount -a` as root."""
    from noodle2.engine.executors.contain import mount_ns

    if mount_ns() is None:
        pytest.skip("this machine allows no mount namespace (not root, no unprivileged user namespaces)")
    text = escape_study().replace("[ranking]", f"[execution]\nmax_parallel = 2\nwarm = {str(warm).lower()}\n\n[ranking]", 1)
    r, events = run(tmp_path, text)
    d = tmp_path / "s"
    failed = {e["case_id"]: e["failure"] for e in events if e["type"] == "trial_failed" and not e.get("retry")}
    escaper = next(p["case_id"] for p in next(e["plan"] for e in events if e["type"] == "stage_started")
                   if p["eco"] == "escape")
    assert set(failed) == {escaper} and failed[escaper]["type"] == "tool_error", failed
    assert "snapshot/extra.txt" in failed[escaper]["excerpt"] and "read-only file system" in failed[escaper]["excerpt"]
    assert not (d / "snapshot" / "extra.txt").exists() and not (d / "escaped.txt").exists()
    assert not [e for e in events if e["type"] == "log" and "runs again alone" in e["msg"]]
    survivors = next(e["survivors"] for e in events if e["type"] == "survivors_chosen")
    assert escaper not in survivors and survivors, survivors
    assert r.returncode == 0


@pytest.mark.parametrize("domain,aborts", [("sandbox", False), ("guarded", False), ("locked", True)])
def test_safety_domains_differ_in_how_many_integrity_failures_abort_a_stage(tmp_path, domain, aborts):
    """#21: locked aborts a stage at its first integrity failure, guarded at 3, sandbox never; the
    legality report states the number."""
    text = STUDY.replace("{objective}", "wns_ps").replace(
        "  foreach pin [n2_path_drivers $paths] { incr n [n2_resize [$pin instance] 1] }",
        "  set b [n2_make_instance n2x_buf BUFX2]\n  incr n")  # a topology_neutral ECO that adds a cell
    text = text.replace('safety_domain = "guarded"', f'safety_domain = "{domain}"')
    text = text.replace("[design]", '[safety]\nallow = ["custom_ecos"]\n\n[design]', 1)
    text = text.replace('ecos = ["upsize_worst_drivers"]', 'ecos = ["upsize_worst_drivers", "resize_critical"]')
    text = text.replace("trials = 2\nsurvivors = 1", "trials = 4\nsurvivors = 1")
    r, events = run(tmp_path, text, check=False)
    legality = (tmp_path / "s" / "legality_report.md").read_text()
    want = {"sandbox": "integrity failures never abort a stage (sandbox", "guarded": "aborts once 3 of its trials fail",
            "locked": "aborts once 1 of its trials fail"}[domain]
    assert want in legality, legality
    broken = [e for e in events if e["type"] == "trial_failed" and e["failure"]["type"] == "eco_integrity"]
    assert len(broken) == 2  # both of the custom ECO's trials, in every domain
    stage = next(e for e in events if e["type"] == "stage_finished" and e["stage"] == 0)
    if aborts:
        assert stage["status"] == "aborted" and "the locked domain aborts a stage at 1" in stage["reason"]
        assert r.returncode != 0
    else:
        assert stage["status"] == "done" and r.returncode == 0, r.stdout[-1500:]
