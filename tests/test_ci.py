"""`noodle2 ci` (#12): a passing and a regressing run of the real quickstart study against a
recorded baseline, JUnit XML parsed, the exit codes, and the locked default."""
from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import orjson
import pytest

from noodle2.engine.reports.ci import Check, compare, junit
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study


def ci(*args, cwd):
    return subprocess.run([sys.executable, "-m", "noodle2.console.cli", "ci", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("sta") is None, reason="needs OpenSTA (bash .ci/setup installs it)")
def test_a_passing_and_a_regressing_run_against_the_baseline(tmp_path):
    study = ROOT / "sample_studies" / "quickstart.toml"
    base = tmp_path / "baseline.json"
    r = ci(study, "--baseline", base, "--update-baseline", "--root", tmp_path / "s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    recorded = orjson.loads(base.read_bytes())
    assert recorded["best"]["metrics"]["wns_ps"] < 0 and set(recorded["stages"]) == {"explore", "refine", "polish"}

    r = ci(study, "--baseline", base, "--junit", tmp_path / "pass.xml", "--root", tmp_path / "s", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "ci: PASS: 5/5 checks passed" in r.stdout
    suite = ET.parse(tmp_path / "pass.xml").getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.findall("testcase")] == ["tns_ps", "wns_ps", "explore", "refine", "polish"]

    recorded["best"]["metrics"]["wns_ps"] += 50.0  # the baseline was 50 ps better: this run regresses
    recorded["stages"]["extra"] = {"status": "done", "survivors": 1}
    base.write_bytes(orjson.dumps(recorded))
    r = ci(study, "--baseline", base, "--junit", tmp_path / "fail.xml", "--root", tmp_path / "s", cwd=tmp_path)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "✗ metric wns_ps  REGRESSION" in r.stdout and "0.050 ns behind, threshold 0.000 ns" in r.stdout  # #22.12: ns, labelled
    assert "ci: REGRESSION: 4/6 checks passed" in r.stdout
    suite = ET.parse(tmp_path / "fail.xml").getroot().find("testsuite")
    failed = {c.get("name"): c.find("failure").get("message") for c in suite.findall("testcase")
              if c.find("failure") is not None}
    assert set(failed) == {"wns_ps", "extra"} and "stage missing" in failed["extra"]


def test_ci_runs_locked_unless_the_file_says_otherwise_and_needs_a_baseline(tmp_path):
    stages = '[[stages]]\nname = "one"\ntrials = 3\nsurvivors = 1\necos = ["resize_critical"]\n'
    path = fake_study(tmp_path, stages=stages)
    r = ci(path, "--baseline", tmp_path / "none.json", cwd=tmp_path)
    assert r.returncode == 2 and "N2-E119 no baseline" in r.stderr and "--update-baseline" in r.stderr
    r = ci(path, "--baseline", tmp_path / "b.json", "--update-baseline", "--study-dir", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "in the locked domain" in r.stdout
    assert "safety domain: locked" in (tmp_path / "run" / "legality_report.md").read_text()
    (tmp_path / "x").mkdir()
    illegal = fake_study(tmp_path / "x", stages=stages.replace("resize_critical", "buffer_fanout"))
    r = ci(illegal, "--baseline", tmp_path / "b.json", cwd=tmp_path)
    assert r.returncode == 2 and "N2-E111" in r.stderr  # placement_local is not legal when locked


def test_compare_knows_which_way_is_better_and_junit_escapes():
    base = {"best": {"metrics": {"wns_ps": -100.0, "area_um2": 1000.0}}, "stages": {"a": {"status": "done"}}}
    cur = {"best": {"metrics": {"wns_ps": -104.0, "area_um2": 1003.0}}, "stages": {"a": {"status": "aborted"}}}
    checks = compare(base, cur, {"wns_ps": 5, "area_um2": 2}, {"wns_ps": True, "area_um2": False})
    assert [(c.name, c.passed) for c in checks] == [("area_um2", False), ("wns_ps", True), ("a", False)]
    x = junit('a<b"', [Check("metric", "m&n", False, 'x < "y"')], 1.5)
    root = ET.fromstring(x)
    case = root.find("testsuite").find("testcase")
    assert case.get("name") == "m&n" and case.find("failure").get("message") == 'x < "y"'


def test_compare_two_studies_colours_better_and_worse(tmp_path):
    dirs = []
    for seed in (11, 12):
        (tmp_path / str(seed)).mkdir()
        path = fake_study(tmp_path / str(seed))
        path.write_text(path.read_text().replace("seed = 11", f"seed = {seed}"))
        dirs.append(tmp_path / f"s{seed}")
        r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                            str(dirs[-1])], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "compare", *map(str, dirs), "--color", "always"], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    best = [orjson.loads(subprocess.run([sys.executable, "-m", "noodle2.console.cli", "status", str(d), "--json"], cwd=ROOT,
                                        env=cli_env(), capture_output=True, text=True).stdout)["best"]["metrics"]
            for d in dirs]
    wns_line = next(ln for ln in r.stdout.splitlines() if ln.startswith("WNS ns"))
    a, b = best[0]["wns_ps"], best[1]["wns_ps"]
    assert a != b  # two seeds, two results
    colour = "\033[32m" if b > a else "\033[31m"
    assert colour in wns_line and ("better" if b > a else "worse") in wns_line
    assert f"{(b - a) / 1000:+,.3f}" in wns_line
    assert "ECO effectiveness" in r.stdout and "resize_critical" in r.stdout
    plain = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "compare", *map(str, dirs)], cwd=ROOT, env=cli_env(),
                           capture_output=True, text=True).stdout
    assert "\033[" not in plain  # not a terminal: no colour codes


def test_compare_shows_whole_names_and_warns_when_the_designs_differ(tmp_path):
    """#22.13: names were cut from the left (`kstart-2026…`) and two designs compared silently."""
    dirs = []
    for name, top in (("a-very-long-study-directory-name-20261202-101500", "fake"),
                      ("another-long-study-directory-name-20261202-101501", "other")):
        (tmp_path / name).mkdir()
        path = fake_study(tmp_path / name)
        path.write_text(path.read_text().replace('top = "fake"', f'top = "{top}"'))
        dirs.append(tmp_path / "studies" / name)
        r = subprocess.run([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(dirs[-1])], cwd=ROOT,
                           env=cli_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    out = subprocess.run([*NOODLE2, "compare", *map(str, dirs)], cwd=ROOT, env=cli_env(), capture_output=True,
                         text=True).stdout
    assert out.startswith("warning: A and B are different designs (fake on ")
    dir_line = next(ln for ln in out.splitlines() if ln.startswith("study dir"))
    assert dirs[0].name in dir_line and dirs[1].name in dir_line and f"{dirs[0].name}  " in dir_line
    same = subprocess.run([*NOODLE2, "compare", str(dirs[0]), str(dirs[0])], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True).stdout
    assert "warning" not in same
