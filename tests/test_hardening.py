"""Issue #8 findings, each as an experiment that failed before its fix: stop and pause never hang,
hostile control files, symlinks, bad metrics, floods, escaped children, missing inputs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noodle2.console.follow import send_control
from noodle2.engine.errors import N2Error
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from noodle2.engine.policy.ranking import Candidate, select_survivors
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir, open_for_resume
from noodle2.engine.study.load import load_study
from noodle2.engine.study.models import Ranking
from noodle2.engine.tools import make_tool
from tests.conftest import FAKE, NOODLE2, ROOT, cli_env, fake_study
from tests.waiting import wait_until, watchdog

SMALL = """
[[stages]]
name = "a"
trials = 6
survivors = 2
ecos = ["resize_critical", "buffer_fanout", "pin_swap"]

[[stages]]
name = "b"
trials = 4
survivors = 1
ecos = ["clone_driver", "resize_critical"]
"""


def wrapper(tmp: Path, body: str) -> list[str]:
    """A tool that runs `body` for ECO trials and the fake model for the base case."""
    script = tmp / "tool.sh"
    script.write_text(f"#!/bin/sh\nif [ \"$N2_ECO\" = \"noop\" ]; then exec {sys.executable} {FAKE / 'eco_model.py'}; fi\n"
                      f"{body}\n")
    script.chmod(0o755)
    return [str(script)]


def make(tmp: Path, stages: str = SMALL, **kw) -> tuple[Path, object]:
    study = load_study(fake_study(tmp, stages=stages, **kw))
    return new_study_dir(study, tmp / "studies"), study


async def drive(d: Path, study, requests: list[tuple[int, str]] = (), env: dict | None = None) -> Engine:
    """Run the engine; each (k, request) is sent as a control file once k more events are in."""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        eng = Engine(d, study, make_tool(study, d))
        sent = [0]

        async def operator() -> None:
            for k, what in requests:
                target = eng.state.seq + k
                # a paused study emits nothing once its running trials are done: act anyway
                while eng.state.seq < target and eng.stop_reason is None and not (eng.state.paused and not eng.state.running()):
                    await anyio.sleep(0.005)
                if eng.stop_reason is not None:
                    return
                # the operator cancels ECO trials; cancelling the base run blocks the study by design
                running = [t.case_id for t in eng.state.running() if t.stage >= 0]
                if what == "cancel" and not running:
                    continue
                send_control(d, what, running[0] if what == "cancel" else "")
                sent[0] += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            # a hang fails the test; a slow machine keeps making progress and never trips it
            tg.start_soon(watchdog, lambda: (eng.state.seq, sent[0], len(eng.state.controls)), "the engine")
            await eng.run()
            tg.cancel_scope.cancel()
        return eng
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def finished(d: Path, study) -> Engine:
    """Resume until the study ends (a stop in the sequence interrupts it)."""
    for _ in range(10):
        eng = anyio.run(drive, d, open_for_resume(d), [], {"N2_FAKE_DELAY": "0.01"})
        if eng.state.status != "interrupted":
            return eng
    raise AssertionError("the study never finished")


def outcome(d: Path) -> dict:
    s = recover(d).state
    return {"status": s.status, "survivors": [st.survivors for st in s.stages],
            "metrics": {c: t.metrics for c, t in s.trials.items() if t.status == "done"}}


# --- 2. stop and pause never hang ----------------------------------------------------------------

def test_pause_twice_then_resume_finishes(tmp_path):
    d, study = make(tmp_path)
    eng = anyio.run(drive, d, study, [(3, "pause"), (1, "pause"), (1, "resume")], {"N2_FAKE_DELAY": "0.02"})
    assert eng.state.status == "complete"
    acks = [c["request"] for c in eng.state.controls]
    assert acks == ["pause", "pause", "resume"]


REF: dict[str, dict] = {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 8), st.sampled_from(["pause", "resume", "stop", "cancel"])), max_size=6))
def test_any_control_sequence_ends_and_the_result_is_right(tmp_path_factory, seq):
    tmp = tmp_path_factory.mktemp("ctl")
    if "ref" not in REF:
        rd, rstudy = make(tmp_path_factory.mktemp("ref"))
        anyio.run(drive, rd, rstudy, [], {"N2_FAKE_DELAY": "0.01"})
        REF["ref"] = outcome(rd)
    d, study = make(tmp)
    anyio.run(drive, d, study, [*seq, (1, "resume")], {"N2_FAKE_DELAY": "0.01"})  # an operator ends paused runs
    if recover(d).state.status == "interrupted":
        finished(d, study)
    got = outcome(d)
    assert got["status"] == "complete"
    s = recover(d).state
    evs = read_events(d / JOURNAL).events
    cancelled = {e.case_id for e in evs if isinstance(e, ev.TrialCancelled)}
    for c in cancelled:  # a cancelled trial stays cancelled: never started again
        starts = [e.seq for e in evs if isinstance(e, ev.TrialStarted) and e.case_id == c]
        stop = next(e.seq for e in evs if isinstance(e, ev.TrialCancelled) and e.case_id == c)
        assert max(starts) < stop and s.trials[c].status == "cancelled"
    if not cancelled:
        assert got == REF["ref"]
    else:  # survivors are still the engine's ranking of what finished
        for st_ in s.stages:
            ok = [t for t in s.stage_trials(st_.index) if t.status == "done"]
            sel = select_survivors([Candidate(t.case_id, t.metrics) for t in ok], Ranking(), st_.survivor_count, None, None)
            assert st_.survivors == sel.survivors


# --- 5. hostile control files ----------------------------------------------------------------------

def test_malformed_and_hostile_control_files_are_refused_and_the_study_finishes(tmp_path):
    d, study = make(tmp_path)
    c = d / "control"
    c.mkdir()
    for name, body in [("a.json", b"[1,2]"), ("b.json", b'"stop"'), ("c.json", b"5"), ("d.json", b"null"),
                       ("e.json", b'{"request": "explode"}'), ("f.json", b"{not json"), ("g.json", b"x" * 10000)]:
        (c / name).write_bytes(body)
        os.utime(c / name, (os.path.getmtime(c / name) - 5,) * 2)  # long written: not one being filled now
    os.mkfifo(c / "fifo.json")
    os.symlink("/dev/zero", c / "zero.json")
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"request": "stop"}')
    os.symlink(outside, c / "link.json")
    eng = anyio.run(drive, d, study, [], {"N2_FAKE_DELAY": "0.01"})
    assert eng.state.status == "complete"
    logs = [e.msg for e in read_events(d / JOURNAL).events if isinstance(e, ev.Log) and e.level == "warning"]
    refused = {m.split()[2] for m in logs if "refused" in m}
    assert refused == {"a.json", "b.json", "c.json", "d.json", "e.json", "f.json", "g.json", "fifo.json",
                       "zero.json", "link.json"}
    assert outside.read_bytes() == b'{"request": "stop"}'  # the link was removed, its target untouched
    assert not eng.state.controls  # nothing was obeyed


def test_symlinked_lock_and_control_dir_are_refused_untouched(tmp_path):
    d, study = make(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, d / ".lock")
    with pytest.raises(N2Error) as ei:
        anyio.run(Engine(d, study, make_tool(study, d)).run)
    assert ei.value.codes == ["N2-E210"] and victim.read_text() == "precious"
    os.unlink(d / ".lock")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "important.json").write_text("{}")
    os.symlink(keep, d / "control")
    with pytest.raises(N2Error) as ei:
        anyio.run(Engine(d, study, make_tool(study, d)).run)
    assert ei.value.codes == ["N2-E210"] and (keep / "important.json").exists()


def test_a_symlinked_trial_dir_is_replaced_not_followed(tmp_path):
    d, study = make(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (d / "trials").mkdir()
    os.symlink(outside, d / "trials" / "fake_0_0")
    eng = anyio.run(drive, d, study)
    assert eng.state.status == "complete" and (outside / "keep.txt").read_text() == "keep"
    assert not (d / "trials" / "fake_0_0").is_symlink()


# --- 6. no silent wrong result -----------------------------------------------------------------------

@pytest.mark.parametrize("metrics, why", [("true", "mapping"), ("{}", "missing metric(s) wns_ps"),
                                          ('{"wns_ps": 1e32, "tns_ps": 0}', "plausible range"),
                                          ('{"wns_ps": true, "tns_ps": 0}', "must be a number"),
                                          ('{"wns_ps": "-5", "tns_ps": 0}', "must be a number")])
def test_implausible_metrics_are_parse_failures_and_never_win(tmp_path, metrics, why):
    body = (f'if [ "$N2_CASE_ID" = "fake_0_1" ]; then echo \'{metrics}\' > metrics.json; exit 0; fi\n'
            f"exec {sys.executable} {FAKE / 'eco_model.py'}")
    d, study = make(tmp_path, command=wrapper(tmp_path, body))
    eng = anyio.run(drive, d, study)
    t = eng.state.trials["fake_0_1"]
    assert t.status == "failed" and t.failure["type"] == "parse_failure" and why in t.failure["reason"]
    assert "fake_0_1" not in eng.state.stages[0].survivors


def test_huge_metrics_file_is_refused_without_reading_it(tmp_path):
    body = ('if [ "$N2_CASE_ID" = "fake_0_0" ]; then head -c 3000000 /dev/zero > metrics.json; exit 0; fi\n'
            f"exec {sys.executable} {FAKE / 'eco_model.py'}")
    d, study = make(tmp_path, command=wrapper(tmp_path, body))
    eng = anyio.run(drive, d, study)
    t = eng.state.trials["fake_0_0"]
    assert t.failure["type"] == "parse_failure" and "limit 1048576" in t.failure["reason"]
    assert len((d / JOURNAL).read_bytes()) < 200_000


def test_a_missing_survivor_netlist_stops_the_study_and_charges_no_eco(tmp_path):
    d, study = make(tmp_path)
    eng = Engine(d, study, make_tool(study, d))

    def sabotage(e, s):
        if isinstance(e, ev.SurvivorsChosen) and e.stage == 0:
            p = d / "trials" / e.survivors[0] / "design.json"
            os.chmod(p.parent, 0o755)
            p.unlink()

    eng.listeners.append(sabotage)
    assert anyio.run(eng.run) == "interrupted"
    assert eng.fault is not None and eng.fault.problem.code == "N2-E209" and "design.json is missing" in str(eng.fault)
    assert not [t for t in eng.state.trials.values() if t.status == "failed"]
    with pytest.raises(N2Error) as ei:
        open_for_resume(d)
    assert "N2-E202" in ei.value.codes and "design.json is missing" in str(ei.value)


def test_journal_with_unknown_case_is_a_coded_error_in_every_command(tmp_path):
    d, study = make(tmp_path)
    anyio.run(drive, d, study)
    lines = (d / JOURNAL).read_bytes().splitlines(keepends=True)
    lines.insert(5, ev.encode(ev.TrialStarted(case_id="ghost_9_9", seq=9999)))
    (d / JOURNAL).write_bytes(b"".join(lines))
    (d / "checkpoint.json").unlink()
    n = 6
    for cmd in (["status", str(d)], ["resume", str(d)], ["watch", str(d)]):
        r = subprocess.run([*NOODLE2, *cmd], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert "N2-E205" in r.stderr and f"line {n}" in r.stderr and "Traceback" not in r.stderr


# --- 7. bounded resources, contained processes -------------------------------------------------------

def test_a_flooding_tool_is_killed_at_the_log_cap(tmp_path):
    body = ('if [ "$N2_CASE_ID" = "fake_0_0" ]; then yes "flood flood flood flood" ; fi\n'
            f"exec {sys.executable} {FAKE / 'eco_model.py'}")
    d, study = make(tmp_path, command=wrapper(tmp_path, body), extra="max_log_mb = 1")
    eng = anyio.run(drive, d, study)
    t = eng.state.trials["fake_0_0"]
    assert t.failure["type"] == "output_flood"
    assert (d / "trials" / "fake_0_0" / "stdout.log").stat().st_size == 1 << 20
    assert eng.state.status == "complete"


@pytest.mark.parametrize("containment", ["cgroup", "environment marker"])
def test_children_that_call_setsid_die_with_their_trial(tmp_path, monkeypatch, containment):
    if containment == "environment marker":
        monkeypatch.setenv("NOODLE2_NO_CGROUP", "1")
    pids = tmp_path / "pids"
    pids.mkdir()
    body = (f'setsid sh -c \'echo $$ > {pids}/$N2_CASE_ID; exec sleep 300\' &\n'
            f'while [ ! -s {pids}/$N2_CASE_ID ]; do sleep 0.01; done\n'
            f"exec {sys.executable} {FAKE / 'eco_model.py'}")
    d, study = make(tmp_path, command=wrapper(tmp_path, body),
                    stages='[[stages]]\nname = "one"\ntrials = 3\nsurvivors = 1\necos = ["pin_swap"]\n')
    eng = Engine(d, study, make_tool(study, d))
    if containment == "cgroup" and eng.executor.cgroups is None:
        pytest.skip("no cgroup v2 can be created here")
    assert eng.executor.containment.split(", ")[0] == containment  # ", read-only mounts" where allowed
    assert anyio.run(eng.run) == "complete"
    escaped = [int((pids / f).read_text()) for f in os.listdir(pids)]
    assert len(escaped) == 3

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    wait_until(lambda: all(gone(p) for p in escaped), "the setsid children to be killed", timeout=10)


def test_stale_checkpoint_tmp_files_are_removed(tmp_path):
    d, study = make(tmp_path)
    (d / ".checkpoint.json.4242.tmp").write_bytes(b"half")
    anyio.run(drive, d, study)
    assert not list(d.glob(".*.tmp"))


def test_resuming_a_finished_study_says_so_and_exits_0(tmp_path):
    d, study = make(tmp_path)
    anyio.run(drive, d, study)
    r = subprocess.run([*NOODLE2, "resume", str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0 and "already finished (complete)" in r.stdout and "nothing to resume" in r.stdout


# --- 5. bad input: coded errors before anything is created --------------------------------------------

@pytest.mark.parametrize("command, needle", [('["echo", "{foo}"]', "{foo}"), ('["echo", "{"]', "literal braces"),
                                             ('["echo", "{trial_dir}"]', None)])
def test_command_placeholders_are_checked_at_validate(tmp_path, command, needle):
    path = fake_study(tmp_path)
    path.write_text(path.read_text().replace(f'command = ["{sys.executable}", "{FAKE / "eco_model.py"}"]',
                                             f"command = {command}"))
    if needle is None:
        load_study(path)
        return
    with pytest.raises(N2Error) as ei:
        load_study(path)
    assert ei.value.codes == ["N2-E116"] and needle in str(ei.value)


@pytest.mark.parametrize("value", ['"/etc/passwd"', '"../x.json"', '"sub/m.json"'])
def test_metrics_file_must_be_a_name_in_the_trial_dir(tmp_path, value):
    path = fake_study(tmp_path)
    path.write_text(path.read_text().replace("[execution]", f"metrics_file = {value}\n\n[execution]"))
    with pytest.raises(N2Error) as ei:
        load_study(path)
    assert [p.path for p in ei.value.problems] == ["tool.metrics_file"]


@pytest.mark.parametrize("content, needle", [('{"a": 1}', "not a leaderboard"), ('[{"x": 1}]', "eco"),
                                             ('[{"eco": "pin_swap", "trials": -3}]', "trials"), ("nope", "")])
def test_bad_priors_import_is_refused_before_a_study_dir_exists(tmp_path, content, needle):
    sub = tmp_path / "here"
    sub.mkdir()
    (sub / "board.json").write_text(content)
    path = fake_study(sub, extra="\n[priors]\nimport_from = [\"board.json\"]")
    r = subprocess.run([*NOODLE2, "run", str(path), "--unattended", "--root", str(tmp_path / "studies")],
                       cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 2 and "N2-E207" in r.stderr and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "studies").exists()


def test_study_dir_naming_a_file_is_a_coded_error(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = subprocess.run([*NOODLE2, "run", str(fake_study(tmp_path)), "--unattended", "--study-dir", str(f)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("N2-E206") and f.read_text() == "x"


# --- 9. decisions shown are decisions made -------------------------------------------------------------

def test_noop_control_is_never_rated_or_skipped(tmp_path):
    stages = "".join(f'\n[[stages]]\nname = "n{i}"\ntrials = 4\nsurvivors = 1\necos = ["noop"]\n' for i in range(4))
    d, study = make(tmp_path, stages=stages, extra="\n[priors]\nmin_trials = 1")
    eng = anyio.run(drive, d, study)
    assert eng.state.status == "complete"
    assert not [x for x in eng.state.decisions if x["subject"] == "noop"]
    assert not [r for r in eng.state.eco_stats if r["eco"] == "noop"]


def test_leaderboard_and_trace_show_the_imported_priors_the_engine_used(tmp_path):
    sub = tmp_path / "s"
    sub.mkdir()
    board = [{"eco": "buffer_fanout", "trials": 10, "successes": 0, "failures": 9, "sum_dwns": -50.0,
              "sum_dtns": -100.0, "measured": 1}]
    (sub / "board.json").write_bytes(orjson.dumps(board))
    d, study = make(sub, extra="\n[priors]\nimport_from = [\"board.json\"]")
    eng = anyio.run(drive, d, study)
    s = eng.state
    assert any(x["action"] == "skip_eco" and x["subject"] == "buffer_fanout" for x in s.decisions)
    row = next(r for r in orjson.loads((d / "eco_leaderboard.json").read_bytes()) if r["eco"] == "buffer_fanout")
    assert row["trials"] == 10 and row["prior"] == "suspicious"  # the import, as the engine judged it
    trace = [orjson.loads(x) for x in (d / "safety_trace.jsonl").read_bytes().splitlines()]
    prior = [g for g in trace if g["gate"] == "prior" and g["subject"] == "buffer_fanout"]
    assert prior and prior[0]["result"] == "fail" and prior[0]["values"]["prior"] == "suspicious"
    prov = orjson.loads((d / "provenance.json").read_bytes())
    assert prov["priors_imported"][0]["from"] == str(sub / "board.json") and len(prov["priors_imported"][0]["sha256"]) == 64


def test_survivor_selection_runs_off_the_event_loop(tmp_path, monkeypatch):
    import threading

    import noodle2.engine.run.stages as runner

    seen = []
    real = runner.select_survivors

    def spy(*a, **kw):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*a, **kw)

    monkeypatch.setattr(runner, "select_survivors", spy)
    d, study = make(tmp_path)
    anyio.run(drive, d, study)
    assert seen == [False, False]


def test_read_only_mount_paths_reach_the_shell_as_data(tmp_path):
    """#23: a folder whose name is shell syntax is bound read-only by name; nothing in it runs."""
    import subprocess

    from noodle2.engine.executors.contain import contained_argv, mount_ns

    if mount_ns() is None:
        pytest.skip("this machine allows no mount namespace (not root, no unprivileged user namespaces)")
    odd = tmp_path / 'a"; touch pwned; echo "$(touch pwned2)'
    odd.mkdir()
    argv = contained_argv(["/bin/sh", "-c", 'echo x > "$0/f"', str(odd)], None, None, None, (str(odd),))
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r
    assert not (odd / "f").exists() and not list(tmp_path.glob("pwned*"))
    plain = subprocess.run(["/bin/sh", "-c", 'echo x > "$0/f"', str(odd)], capture_output=True)
    assert plain.returncode == 0 and (odd / "f").read_text() == "x\n"  # outside the namespace it is writable


TOUCH_EACH = 'for d; do if echo x > "$d/f"; then echo "wrote $d"; fi; done; cat; echo "stdin read"'


def test_a_trials_read_only_folders_are_bound_in_one_mount_whatever_their_names(tmp_path):
    """#20: as root the executor binds a trial's read-only folders with one `mount -a` reading an
    fstab from memory (a mount process per folder was most of a no-op trial).  Names with a
    space, tab, newline, backslash or shell syntax are data there too: every folder refuses the
    write, the tool reads an empty stdin, and nothing runs."""
    import os
    import subprocess

    from noodle2.engine.executors.base import Command
    from noodle2.engine.executors.contain import fstab, mount_ns
    from noodle2.engine.executors.process import run_command

    if mount_ns() is None or os.geteuid() != 0:
        pytest.skip("one mount for all folders needs root in a mount namespace")
    names = ["a b", "c\\d", "e\nf", "g\th", '"; touch pwned; echo "$(touch pwned2)', "\\040 plain"]
    ro = tuple(str(tmp_path / n) for n in names)
    for d in ro:
        os.mkdir(d)
    fd = fstab(ro)
    assert fd is not None
    try:
        table = os.read(fd, 4096).decode()
    finally:
        os.close(fd)
    assert len(table.splitlines()) == len(names) and "e\\012f" in table and "c\\134d" in table, table
    cmd = Command(["/bin/sh", "-c", TOUCH_EACH, "sh", *ro], tmp_path, tmp_path / "out", tmp_path / "err",
                  shared_read_only=ro[:2], read_only=ro[2:])
    result = run_command(cmd, mounts=True)
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert result.outcome.rc == 0 and out == "stdin read\n", (out, err)
    assert err.count("Read-only file system") == len(names), err
    assert not list(tmp_path.rglob("f")) and not list(tmp_path.glob("pwned*"))
    plain = subprocess.run(["/bin/sh", "-c", TOUCH_EACH, "sh", *ro], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert plain.stdout.count("wrote") == len(names)  # outside the namespace each is writable


def test_a_read_only_folder_that_is_already_a_mount_point_is_still_bound(tmp_path):
    """`mount -a` skips a folder that is already a mount point of the same source; the prologue
    binds that one on its own, so it refuses writes like the rest."""
    import os
    import subprocess
    import sys

    from noodle2.engine.executors.contain import mount_ns

    if mount_ns() is None or os.geteuid() != 0:
        pytest.skip("one mount for all folders needs root in a mount namespace")
    (tmp_path / "bound").mkdir()
    (tmp_path / "plain").mkdir()
    child = (
        "import sys\n"
        "from pathlib import Path\n"
        "from noodle2.engine.executors.base import Command\n"
        "from noodle2.engine.executors.process import run_command\n"
        "t = Path(sys.argv[1]); ro = (str(t / 'bound'), str(t / 'plain'))\n"
        f"cmd = Command(['/bin/sh', '-c', {TOUCH_EACH!r}, 'sh', *ro], t, t / 'out', t / 'err', read_only=ro)\n"
        "print(run_command(cmd, mounts=True).outcome.rc)\n")
    # the folder is a mount point (source = target) in the namespace the engine runs in
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                        'mount --bind -- "$1/bound" "$1/bound" && exec "$0" -c "$2" "$1"', sys.executable,
                        str(tmp_path), child], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "0", r
    err = (tmp_path / "err").read_text()
    assert err.count("Read-only file system") == 2 and not list(tmp_path.rglob("f")), err
