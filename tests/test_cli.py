"""The headless CLI as an operator uses it: real processes, real exit codes, real output."""
from __future__ import annotations

import signal
import subprocess
import sys

import orjson

from tests.conftest import NOODLE2, ROOT, cli_env, fake_study
from tests.waiting import journal_lines, wait_until


def sh(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*NOODLE2, *args], cwd=ROOT, env=kw.pop("env", cli_env()), capture_output=True, text=True, **kw)


def test_help_shows_examples():
    for args in [("--help",), ("run", "--help"), ("resume", "--help"), ("watch", "--help"), ("status", "--help")]:
        r = sh(*args)
        assert r.returncode == 0 and "examples:" in r.stdout and "noodle2 " in r.stdout


def test_validate_error_exit_2_no_traceback(tmp_path):
    path = fake_study(tmp_path)
    path.write_text(path.read_text().replace("survivors = 1", "survivors = 30"))
    r = sh("validate", str(path))
    assert r.returncode == 2
    assert "N2-E104 stages[2].survivors (line" in r.stderr and "hint:" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_dry_run_prints_plan_and_runs_nothing(tmp_path):
    r = sh("run", str(fake_study(tmp_path)), "--dry-run", "--root", str(tmp_path / "studies"))
    assert r.returncode == 0 and "13 trials + 1 base case" in r.stdout
    assert not (tmp_path / "studies").exists()


def test_unattended_lines_json_and_fresh_dirs(tmp_path):
    path = fake_study(tmp_path)
    r1 = sh("run", str(path), "--unattended", "--root", str(tmp_path / "studies"))
    assert r1.returncode == 0, r1.stderr
    trial_lines = [line for line in r1.stdout.splitlines() if line.strip().startswith("✓ fake_")]
    assert len(trial_lines) == 13 and all("WNS" in line for line in trial_lines)
    assert sum(line.startswith("■ stage") for line in r1.stdout.splitlines()) == 3
    r2 = sh("run", str(path), "--json", "--root", str(tmp_path / "studies"))
    types = [orjson.loads(line)["type"] for line in r2.stdout.splitlines()]  # every stdout line is JSON
    assert "legality report" in r2.stderr.lower()
    assert types[0] == "study_started" and types[-2:] == ["study_finished", "checkpoint_written"]
    assert len(list((tmp_path / "studies").iterdir())) == 2  # a second run never overwrites the first
    d = sorted((tmp_path / "studies").iterdir())[0]
    st = sh("status", str(d))
    assert "[complete]" in st.stdout and "13/13 finished" in st.stdout


def test_watch_follows_another_process_and_sigterm_resumes(tmp_path):
    from noodle2.console.follow import send_control
    from noodle2.engine.journal.store import recover

    path = fake_study(tmp_path)
    d = tmp_path / "study"
    env = cli_env(N2_FAKE_DELAY="0.05")
    engine = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (d / "journal.jsonl").exists(), "the study's journal")
    watcher = subprocess.Popen([*NOODLE2, "watch", str(d)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    wait_until(lambda: any(t.status == "done" and t.stage >= 0 for t in recover(d).state.trials.values()),
               "a first ECO trial to finish", progress=lambda: journal_lines(d))
    send_control(d, "pause")  # hold the study mid-way, however fast this machine is
    wait_until(lambda: recover(d).state.paused, "the pause to be acknowledged")
    st = sh("status", str(d))
    assert "[running]" in st.stdout and f"engine PID {engine.pid}" in st.stdout
    engine.send_signal(signal.SIGTERM)
    out, _ = engine.communicate(timeout=30)
    assert engine.returncode == 3
    assert f"resume with: {sys.executable} -m noodle2.console.cli resume {d}" in out  # as it can be pasted
    wout, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 3 and "interrupted" in wout and "✓ fake " in wout
    assert "[interrupted]" in sh("status", str(d)).stdout
    r = sh("resume", str(d), env=env)
    assert r.returncode == 0 and "resumed" in r.stdout and "study fake complete" in r.stdout


def test_resume_of_non_study_dir_is_coded(tmp_path):
    r = sh("resume", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith("N2-E203")


def test_without_a_terminal_run_goes_headless_and_the_console_refuses(tmp_path):
    """cron, CI, nohup, `> out.txt < /dev/null`: no full-screen UI, no escape codes, no hang (#22.1, #22.10)."""
    path = fake_study(tmp_path)
    r = subprocess.run([*NOODLE2, "run", str(path), "--study-dir", str(tmp_path / "s")], cwd=ROOT, env=cli_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "running headless" in r.stderr and "\x1b[" not in r.stdout + r.stderr
    assert "complete" in r.stdout
    r = subprocess.run([*NOODLE2, "console", str(tmp_path)], cwd=ROOT, env=cli_env(TERM="dumb"),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("N2-E215") and "\x1b[" not in r.stderr
    assert "--unattended" in r.stderr  # the hint says what to do instead


def test_init_refuses_a_wrong_top_rtl_as_netlist_and_an_unknown_tech_and_writes_nothing(tmp_path):
    """#22.5, #22.6: each used to print "it validates as it is" (or leave the file behind),
    then block on the base case or refuse the retry with N2-E206."""
    mac8 = ROOT / "sample_studies" / "designs" / "mac8"
    cases = [(["--top", "foo", "--rtl", str(mac8 / "mac8.v")], "N2-E125", 'top = "mac8"'),
             (["--netlist", str(mac8 / "mac8.v")], "N2-E125", "is RTL, not a gate-level netlist"),
             (["--tech", "osu99", "--rtl", str(mac8 / "mac8.v"), "--top", "mac8"], "N2-E301", "use one of"),
             (["--rtl", str(mac8 / "mac8.v")], "N2-E101", "the RTL defines mac8"),
             (["--netlist", str(tmp_path / "my chip" / "nonexist.v")], "N2-E214", "my chip/nonexist.v does not exist")]  # 22.2
    for i, (extra, code, needle) in enumerate(cases):
        out = tmp_path / f"c{i}.toml"
        r = sh("init", str(out), *extra, "--sdc", str(mac8 / "mac8.sdc"))
        assert r.returncode == 2 and code in r.stderr and needle in r.stderr, (extra, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists(), extra
    r = sh("init", str(tmp_path / "ok.toml"), "--rtl", str(mac8 / "mac8.v"), "--top", "mac8", "--sdc", str(mac8 / "mac8.sdc"))
    assert r.returncode == 0 and "validates as it is" in r.stdout and (tmp_path / "ok.toml").is_file()


def test_theme_is_offered_only_where_a_console_opens():
    """#22.24: --theme was listed on every subcommand, schema and compare included."""
    for cmd in ("console", "run", "resume"):
        assert "--theme" in sh(cmd, "--help").stdout, cmd
    for cmd in ("schema", "compare", "status", "validate", "report", "ecos", "init", "ci", "watch", "techs"):
        assert "--theme" not in sh(cmd, "--help").stdout, cmd


def test_init_from_a_shipped_or_a_users_template(tmp_path):
    """#21: --template climb (the samples' 100-trial template) or NAME.toml from the user's folder:
    the design half is init's, the stages the template's; it validates as written."""
    import tomllib

    r = sh("init", str(tmp_path / "long.toml"), "--template", "climb")
    assert r.returncode == 0 and "validates as it is" in r.stdout, r.stderr
    spec = tomllib.loads((tmp_path / "long.toml").read_text())
    assert sum(s.get("repeat", 1) * s["trials"] for s in spec["stages"]) == 100
    assert spec["study"]["safety_domain"] == "sandbox"  # its re-synthesis needs it
    assert spec["study"]["goal"] == {"wns_ps": 0}  # and it stops once timing is met
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "tiny.toml").write_text('[study]\nname = "t"\n\n[ranking]\nobjective = "tns_ps"\n\n'
                                    '[[stages]]\nname = "only"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\n')
    (mine / "empty.toml").write_text('[study]\nname = "e"\n')
    env = {"NOODLE2_TEMPLATES": str(mine)}
    r = sh("init", str(tmp_path / "tiny.toml"), "--template", "tiny", env=cli_env(**env))
    assert r.returncode == 0, r.stderr
    spec = tomllib.loads((tmp_path / "tiny.toml").read_text())
    assert [s["name"] for s in spec["stages"]] == ["only"] and spec["ranking"]["objective"] == "tns_ps"
    assert spec["study"]["name"] == "mac16" and spec["design"]["top"] == "mac16"
    for name, needle in (("nope", "no template 'nope'"), ("empty", "has no [[stages]]")):
        r = sh("init", str(tmp_path / f"{name}.toml"), "--template", name, env=cli_env(**env))
        assert r.returncode == 2 and "N2-E128" in r.stderr and needle in r.stderr
        assert name != "nope" or "generic, climb, empty, tiny" in r.stderr  # what there is to choose from
        assert not (tmp_path / f"{name}.toml").exists()
