"""Locked means locked (#17, points 4-14): no pattern, signal, notification or odd file hangs
the engine; checkpoint and journal are checked, never trusted; symlinks are never followed
where the engine writes; small inputs that gave tracebacks give coded errors."""
from __future__ import annotations

import http.server
import os
import random
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import orjson
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import CHECKPOINT, JOURNAL, read_events, recover
from noodle2.engine.run.control import ControlInbox
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import INPUTS, new_study_dir, open_for_resume
from noodle2.engine.study.load import load_study
from noodle2.engine.tools import make_tool
from noodle2.engine.tools.custom_metrics import user_pattern
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study
from tests.waiting import wait_until

ONE = '[[stages]]\nname = "one"\ntrials = 3\nsurvivors = 1\necos = ["resize_critical", "buffer_fanout"]\n'
TWO = ONE + '\n[[stages]]\nname = "two"\ntrials = 3\nsurvivors = 1\necos = ["clone_driver", "pin_swap"]\n'


def cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*NOODLE2, *args], cwd=ROOT, env=env or cli_env(), capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


def bounded_cpu(seconds: int):
    """preexec_fn: a process that burns more CPU than this is killed (SIGXCPU).  A bound on work
    done, not on the clock: a loaded machine does not trip it."""
    return lambda: resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))


def complete_study(tmp_path: Path, stages: str = TWO, **kw) -> Path:
    path = fake_study(tmp_path, stages=stages, **kw)
    d = tmp_path / "d"
    r = cli("run", str(path), "--unattended", "--study-dir", str(d))
    assert r.returncode == 0, r.stderr
    return d


# --- 4. a user's pattern cannot hang the engine; a resume takes a corrected file ------------------

def test_a_catastrophic_pattern_matches_in_linear_time(tmp_path):
    (tmp_path / "out.txt").write_text("a" * 40 + "!\n" + "a" * 100_000 + "!\n")
    code = ("import sys; from pathlib import Path; from noodle2.engine.tools.custom_metrics import extract_custom, ExtractError\n"
            "from noodle2.engine.study.models import CustomMetric\n"
            "m = CustomMetric(name='x', source='out.txt', regex='^(a|a)*b', direction='max')\n"
            "try:\n    extract_custom([m], Path(sys.argv[1]))\nexcept ExtractError as e:\n    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True, preexec_fn=bounded_cpu(20), timeout=600)
    assert r.returncode == 0 and "matches nothing" in r.stdout, (r.returncode, r.stderr[-500:])


def test_validate_refuses_what_the_linear_engine_cannot_do_with_a_coded_error(tmp_path):
    for regex, needle in (("(a)\\1 (\\d+)", "back-references"), ("(?<=x)(\\d+)", "look-around"),
                          ("(\\d+)(\\d+)", "exactly one group")):
        path = fake_study(tmp_path, extra=f"[[custom.metrics]]\nname = \"m\"\nsource = \"x\"\nregex = '{regex}'\n"
                                          "direction = \"max\"\n")
        with pytest.raises(N2Error) as ei:
            load_study(path)
        assert ei.value.codes == ["N2-E121"] and needle in ei.value.render()
    assert user_pattern(r"^\s*(\S+)\s+data arrival time").search("x\n  1.5  data arrival time").group(1) == "1.5"


def _interrupted(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    """A fake study stopped by the operator once its first stage is done: (study file, dir)."""
    path = fake_study(tmp_path, stages=TWO, extra=extra)
    study = load_study(path)
    d = new_study_dir(study, tmp_path / "studies")

    def stop_after_stage(e, s):  # the operator's stop as the inbox hands it over, at once: a
        if isinstance(e, ev.StageFinished) and e.stage == 0:  # control file raced the fast second stage
            eng.controls.handle("stop", "")
    eng = Engine(d, study, make_tool(study, d), listeners=[stop_after_stage])
    assert anyio.run(eng.run) == "interrupted"
    return path, d


def test_a_resume_takes_a_corrected_study_file_only_for_what_leaves_results_as_they_are(tmp_path):
    path, d = _interrupted(tmp_path)
    before = {c: t.metrics for c, t in recover(d).state.trials.items() if t.status == "done"}
    path.write_text(path.read_text().replace("soft_timeout_s = 20", "soft_timeout_s = 25")
                    .replace('name = "fake"', 'name = "fake"\ndescription = "fixed"'))
    r = cli("resume", str(d))
    assert r.returncode == 2 and "N2-E202" in r.stderr and f"--amend {path}" in r.stderr, r.stderr
    bad = path.read_text().replace("trials = 3\nsurvivors = 1\necos = [\"clone", "trials = 4\nsurvivors = 1\necos = [\"clone")
    (tmp_path / "bad.toml").write_text(bad)
    r = cli("resume", str(d), "--amend", str(tmp_path / "bad.toml"))
    assert r.returncode == 2 and "stages[1].trials: 3 → 4" in r.stderr and "start a new study" in r.stderr
    r = cli("resume", str(d), "--amend", str(path))
    assert r.returncode == 0, r.stderr
    assert "took the corrected study file: execution.soft_timeout_s: 20.0 → 25.0" in r.stdout
    s = recover(d).state
    assert s.status == "complete" and s.spec["execution"]["soft_timeout_s"] == 25.0
    assert [a["changes"] for a in s.amendments] == [["execution.soft_timeout_s: 20.0 → 25.0",
                                                     "study.description: '' → 'fixed'"]]
    assert all(s.trials[c].metrics == m for c, m in before.items())
    open_for_resume(d)  # the copy, the original and the journal agree again
    assert load_study(d / INPUTS / "study.toml", stored=True).spec.study.description == "fixed"


def test_a_custom_metric_is_amendable_until_a_trial_records_it(tmp_path):
    metric = '[[custom.metrics]]\nname = "extra"\nsource = "metrics.json"\njson_pointer = "/wns_ps"\ndirection = "max"\n'
    path, d = _interrupted(tmp_path, extra=metric)
    path.write_text(path.read_text().replace('json_pointer = "/wns_ps"', 'json_pointer = "/tns_ps"'))
    r = cli("resume", str(d), "--amend", str(path))
    assert r.returncode == 2 and "custom metric(s) extra already recorded on finished trials" in r.stderr
    path.write_text(path.read_text().replace(metric.replace("/wns_ps", "/tns_ps"), "").rstrip() + "\n" +
                    metric.replace("extra", "later"))
    r = cli("resume", str(d), "--amend", str(path))
    assert r.returncode == 2 and "extra" in r.stderr  # removing a recorded metric changes results too


# --- 5. stop means stop: notifications never hold a stopped engine open ----------------------------

class Failing(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        Failing.hits.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))["trigger"])
        self.send_response(503)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_a_stop_cuts_notification_retries_short_and_journals_them_unsent(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Failing.hits = []
    try:
        hook = f"http://127.0.0.1:{httpd.server_port}/h"
        path = fake_study(tmp_path, stages=ONE, extra=f'[notify]\nwebhook = "{hook}"\nretries = 10\nbackoff_s = 600\n'
                                                        "report = false\n")
        d = tmp_path / "d"
        p = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT,
                             env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: Failing.hits == ["complete"], "the first webhook attempt")  # now it waits 600 s to retry
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)  # the retries alone would take days
        assert p.returncode == 0, err  # the study completed before the signal: its exit code stands
        sent = [e for e in read_events(d / JOURNAL).events if isinstance(e, ev.NotificationSent)]
        assert [(e.attempt, e.ok, e.detail) for e in sent] == [
            (1, False, "HTTP 503 Service Unavailable"), (2, False, "not sent: the engine stopped before this retry")]
        assert Failing.hits == ["complete"]
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- 6. every file the engine reads is a regular file, read with a cap ----------------------------

@pytest.mark.parametrize("name", [JOURNAL, CHECKPOINT, "provenance.json", "inputs/study.toml"])
@pytest.mark.parametrize("kind", ["fifo", "devzero", "directory"])
def test_odd_files_in_a_study_never_hang_status_or_resume(tmp_path, name, kind):
    d = complete_study(tmp_path, stages=ONE)
    with open(d / JOURNAL, "rb+") as f:  # an interrupted study: resume gets as far as reading everything
        f.truncate(sum(len(x) + 1 for x in (d / JOURNAL).read_bytes().split(b"\n")[:-3]))
    (d / CHECKPOINT).unlink()
    target = d / name
    target.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "devzero":
        target.symlink_to("/dev/zero")
    else:
        target.mkdir()
    for args in (("status", str(d)), ("resume", str(d))):
        r = cli(*args, preexec_fn=bounded_cpu(60), timeout=600)
        assert "Traceback" not in r.stderr, r.stderr
        if name == JOURNAL or (name == "inputs/study.toml" and args[0] == "resume"):
            code = "N2-E212"  # nothing the engine would trust: a coded error that names the file
        elif kind == "directory" and args[0] == "resume":
            code = "N2-E210"  # a folder where the engine writes a file: refused before anything runs
        else:  # the checkpoint falls back to the journal; provenance informs; status reads no study.toml
            assert r.returncode == 0, (args, r.stderr)
            continue
        assert r.returncode == 2 and code in r.stderr and name in r.stderr, (args, r.stderr)


# --- 7 and 8. checkpoint and journal are checked, never trusted ------------------------------------

def test_no_single_bit_flip_of_the_checkpoint_is_accepted(tmp_path):
    d = complete_study(tmp_path)
    good = (d / CHECKPOINT).read_bytes()
    journal_only = recover_without_checkpoint(d)
    rng = random.Random(17)
    for _ in range(30):
        bad = bytearray(good)
        k = rng.randrange(len(bad))
        bad[k] ^= 1 << rng.randrange(8)
        (d / CHECKPOINT).write_bytes(bytes(bad))
        rec = recover(d)
        assert not rec.from_checkpoint and "replaying the whole journal" in rec.warnings[0]
        assert orjson.dumps(rec.state) == journal_only
    (d / CHECKPOINT).write_bytes(good)
    assert recover(d).from_checkpoint


def recover_without_checkpoint(d: Path) -> bytes:
    cp = (d / CHECKPOINT).read_bytes()
    (d / CHECKPOINT).unlink()
    try:
        return orjson.dumps(recover(d).state)
    finally:
        (d / CHECKPOINT).write_bytes(cp)


def _lines(d: Path) -> list[bytes]:
    return (d / JOURNAL).read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("damage", ["emptied", "deleted", "truncated"])
def test_a_journal_shorter_than_its_checkpoint_is_refused_not_rerun(tmp_path, damage):
    d = complete_study(tmp_path)
    lines = _lines(d)
    if damage == "deleted":
        (d / JOURNAL).unlink()
    else:
        (d / JOURNAL).write_bytes(b"" if damage == "emptied" else b"".join(lines[:len(lines) // 2]))
    with pytest.raises(N2Error) as ei:
        recover(d)
    assert ei.value.codes == ["N2-E213"] and "restore journal.jsonl from a backup" in ei.value.render()
    r = cli("resume", str(d))
    assert r.returncode == 2 and "N2-E213" in r.stderr


def test_a_duplicated_line_a_line_without_its_checksum_and_a_flipped_covered_bit_are_caught(tmp_path):
    d = complete_study(tmp_path)
    lines = _lines(d)
    (d / JOURNAL).write_bytes(b"".join(lines + [lines[-1]]))  # a valid line, twice
    with pytest.raises(N2Error) as ei:
        recover(d)
    assert ei.value.codes == ["N2-E205"] and "does not follow" in str(ei.value) and "truncate -s" in ei.value.render()
    legacy = orjson.loads(lines[-1])
    legacy.pop("crc")
    legacy.pop("v")
    legacy["seq"] += 1
    (d / JOURNAL).write_bytes(b"".join(lines) + orjson.dumps(legacy) + b"\n" + lines[-1])  # a forged format-1 line
    with pytest.raises(N2Error) as ei:
        recover(d)
    assert "no checksum, after lines that carry one" in str(ei.value)
    flipped = bytearray(b"".join(lines))
    k = len(lines[0]) + 5  # inside line 2, which the checkpoint covers
    flipped[k] ^= 4
    (d / JOURNAL).write_bytes(bytes(flipped))
    with pytest.raises(N2Error) as ei:
        recover(d)
    assert ei.value.codes == ["N2-E205"] and "line 2" in str(ei.value)


# --- 9. a control request written in two steps is read once it is whole ---------------------------

def test_an_empty_then_filled_control_request_is_honoured_not_dropped(tmp_path):
    box = ControlInbox(tmp_path, quiet_s=1.0)
    r = tmp_path / "r.json"
    r.write_bytes(b"")
    os.utime(r, (100.0, 100.0))
    assert box.poll(100.2) == [] and r.exists()  # just created: it may still be filled
    r.write_bytes(b'{"request": "stop"}')
    os.utime(r, (100.5, 100.5))
    [(name, req, _, why)] = box.poll(100.6)
    assert req is not None and req.request == "stop" and not why
    s = tmp_path / "s.json"
    s.write_bytes(b'{"request": "st')  # never finished
    os.utime(s, (200.0, 200.0))
    assert box.poll(200.5) == [] and s.exists()
    [(name, req, _, why)] = box.poll(201.5)
    assert req is None and "not a control request" in why and not s.exists()


def test_a_stop_written_in_two_steps_stops_the_engine(tmp_path):
    path = fake_study(tmp_path, stages=TWO, extra="", max_parallel=1)
    study = load_study(path)
    d = new_study_dir(study, tmp_path / "studies")
    os.environ["N2_FAKE_DELAY"] = "0.05"
    done = []

    def writer(e, s):
        if isinstance(e, ev.TrialFinished) and not done:
            done.append(1)
            (d / "control").mkdir(exist_ok=True)
            f = d / "control" / "late.json"
            f.write_bytes(b"")  # created now, filled a moment later: a non-atomic writer

            def fill():
                wait_until(lambda: s.seq > e.seq + 2, "a few more events")
                f.write_bytes(b'{"request": "stop"}')
            threading.Thread(target=fill, daemon=True).start()
    try:
        eng = Engine(d, study, make_tool(study, d), listeners=[writer])
        assert anyio.run(eng.run) == "interrupted"
    finally:
        os.environ.pop("N2_FAKE_DELAY")
    assert any(c["request"] == "stop" and c["accepted"] for c in eng.state.controls)


# --- 11. a reader that goes away never stops the study -----------------------------------------

@pytest.mark.parametrize("flags", [["--unattended"], ["--json"]])
def test_a_closed_pipe_leaves_the_study_running_to_its_end(tmp_path, flags):
    path = fake_study(tmp_path, stages=TWO)
    d = tmp_path / "d"
    cmd = " ".join([*NOODLE2, "run", str(path), *flags, "--study-dir", str(d)])
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert recover(d).state.status == "complete"


# --- 12. a full disk while the study directory is made leaves nothing half made ----------------------

def test_a_full_disk_while_the_study_dir_is_made_is_N2_E208_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from noodle2.engine.errors import EnvironmentFault
    from noodle2.engine.run import studydir

    study = load_study(fake_study(tmp_path, extra='[priors]\nimport_from = []\n'))
    calls = []

    def full(*a, **k):
        calls.append(a)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(studydir, "atomic_write", full)
    (tmp_path / "studies").mkdir()
    with pytest.raises(EnvironmentFault) as ei:
        new_study_dir(study, tmp_path / "studies")
    assert calls and ei.value.problem.code == "N2-E208"
    assert list((tmp_path / "studies").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_real_full_disk_at_creation_is_N2_E208_with_nothing_left(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        big = tmp_path / "big.v"
        big.write_text("module fake; endmodule\n" + "// pad\n" * 40_000)
        path = fake_study(tmp_path, extra="")
        path.write_text(path.read_text().replace('top = "fake"', f'top = "fake"\nnetlist = "{big}"'))
        r = cli("run", str(path), "--unattended", "--study-dir", str(mnt / "s"))
        assert r.returncode == 2 and "N2-E208" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (mnt / "s").exists() or not any((mnt / "s").iterdir())
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


# --- 13. symlinks where the engine writes are refused or replaced -----------------------------------

def test_a_control_dir_swapped_for_a_symlink_mid_run_deletes_nothing_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.json").write_text("{}")
    path = fake_study(tmp_path, stages=TWO, max_parallel=1)
    study = load_study(path)
    d = new_study_dir(study, tmp_path / "studies")
    swapped = []

    def swap(e, s):
        if isinstance(e, ev.TrialFinished) and not swapped:
            swapped.append(1)
            (d / "control").rmdir()
            (d / "control").symlink_to(victim)
    eng = Engine(d, study, make_tool(study, d), listeners=[swap])
    os.environ["N2_FAKE_DELAY"] = "0.05"
    try:
        assert anyio.run(eng.run) == "complete"
    finally:
        os.environ.pop("N2_FAKE_DELAY")
    assert (victim / "keep.json").exists()
    assert any("control" in (e.msg if isinstance(e, ev.Log) else "") and "symlink" in e.msg
               for e in read_events(d / JOURNAL).events if isinstance(e, ev.Log))


def test_report_and_stage_folders_that_are_symlinks_are_refused_and_engine_log_replaced(tmp_path):
    from noodle2.console.follow import spawn_engine
    from noodle2.engine.reports import summary

    d = complete_study(tmp_path, stages=ONE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (d / "report").symlink_to(outside)
    with pytest.raises(N2Error) as ei:
        summary.write(d, recover(d).state)
    assert ei.value.codes == ["N2-E210"] and not list(outside.iterdir())
    r = cli("report", str(d))
    assert r.returncode == 2 and "N2-E210" in r.stderr
    log = tmp_path / "elsewhere.log"
    log.write_text("mine\n")
    (d / "engine.log").symlink_to(log)
    pid = spawn_engine(d)  # resumes a finished study: it says so and exits
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
               "the engine to exit")
    assert log.read_text() == "mine\n" and not (d / "engine.log").is_symlink()


# --- 14. smaller: tracebacks that are now coded errors --------------------------------------------

def test_absurd_study_files_are_coded_errors_without_tracebacks(tmp_path):
    base = fake_study(tmp_path).read_text()
    for text, code in ((base + "x = " + "[" * 1500 + "]" * 1500 + "\n", "N2-E100"),
                       (base + "[" + ".".join(f"a{i}" for i in range(100_000)) + "]\nx = 1\n", "N2-E100"),
                       (base.replace('top = "fake"', 'top = "fake"\ntech = "' + "t" * 300 + '"'), "N2-E103")):
        (tmp_path / "a.toml").write_text(text)
        r = cli("validate", str(tmp_path / "a.toml"), preexec_fn=bounded_cpu(30))
        assert r.returncode == 2 and code in r.stderr and "Traceback" not in r.stderr, r.stderr[-800:]


def test_unwritable_output_paths_are_coded_errors(tmp_path):
    d = complete_study(tmp_path, stages=ONE)
    for args in (("report", str(d), "--out", "/proc/nope"), ("init", "/proc/x.toml")):
        r = cli(*args)
        assert r.returncode == 2 and "N2-E214" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_signal_after_the_study_ended_keeps_its_exit_code(tmp_path):
    """The engine blocks SIGTERM once the study has ended; the CLI absorbs it after the engine."""
    path = fake_study(tmp_path, stages=ONE, extra='[notify]\ncommand = ["sh", "-c", "kill -TERM $PPID; sleep 1"]\n'
                                                  "report = false\n")
    r = cli("run", str(path), "--unattended", "--study-dir", str(tmp_path / "d"))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert recover(tmp_path / "d").state.status == "complete"


def test_inputs_from_outside_keep_their_permissions(tmp_path):
    secret = tmp_path / "outside" / "secret.sdc"
    secret.parent.mkdir()
    secret.write_text("create_clock -period 4 [get_ports clk]\n")
    secret.chmod(0o600)
    path = fake_study(tmp_path)
    path.write_text(path.read_text().replace('top = "fake"', f'top = "fake"\nsdc = "{secret}"'))
    d = new_study_dir(load_study(path), tmp_path / "studies")
    [copy] = [p for p in (d / INPUTS / "external").rglob("*") if p.is_file()]
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
