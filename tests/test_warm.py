"""Warm OpenSTA workers (executors/warm.py, tools/timing/worker.tcl): the same results as one
`sta` per trial, and the same containment when a trial goes wrong."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from noodle2.engine.executors.base import Command, Job, Warm
from noodle2.engine.executors.contain import MARKER, kill_marked, marked_pids
from noodle2.engine.executors.local import LocalExecutor
from noodle2.engine.executors.warm import WORKER_MARK, WarmLimits
from noodle2.engine.policy.failures import classify
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir
from noodle2.engine.study.load import load_study
from noodle2.engine.tools import make_tool
from noodle2.engine.tools.netlist import declare_wires
from tests.conftest import ROOT
from tests.waiting import wait_until

FAKE = (sys.executable, str(ROOT / "tests" / "fake_tools" / "warm_worker.py"))
REPORTS = ("sta.wns.rpt", "sta.timing.rpt", "sta.hold.rpt", "sta.electrical.rpt", "sta.power.rpt")


# --- the protocol's safety, with a fake worker (fault injection) ------------------------------------

def _job(trials: Path, name: str, do: str, soft: float = 30.0, hard: float = 40.0, cap: int | None = None) -> Job:
    d = trials / name

    def prepare() -> Command:
        d.mkdir(parents=True, exist_ok=True)
        (d / "do").write_text(do)
        return Command(list(FAKE), d, d / "stdout.log", d / "stderr.log", {**os.environ, MARKER: str(d)},
                       log_cap_bytes=cap, contain_key=name, warm=Warm("fake", FAKE))
    return Job(prepare, None, soft, hard)


def _pid(trials: Path, name: str) -> int:
    return int((trials / name / "stdout.log").read_text().split()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.anyio
async def test_trials_share_a_worker_and_every_fault_ends_it_and_is_classified_as_cold(tmp_path):
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits())
    try:
        got = {}
        for name, do, kw in [("a", "ok", {}), ("b", "rc3", {}), ("c", "ok", {}), ("d", "crash", {}), ("e", "ok", {}),
                             ("f", "hang", {"soft": 0.3, "hard": 30}), ("g", "ignore_term", {"soft": 0.3, "hard": 0.6}),
                             ("h", "flood", {"cap": 1 << 20}), ("i", "ok", {})]:
            res, _ = await ex.run(_job(trials, name, do, **kw))
            got[name] = classify(res.outcome, "")
        assert ex.warm is not None
        assert got["a"] is None and got["c"] is None and got["e"] is None and got["i"] is None
        assert got["b"]["type"] == "nonzero_exit" and "rc 3" in got["b"]["reason"]
        assert got["d"]["type"] == "tool_crash" and "SIGSEGV" in got["d"]["reason"]
        assert got["f"]["type"] == "timeout" and "SIGKILL" not in got["f"]["reason"]
        assert got["g"]["type"] == "timeout" and "then SIGKILL" in got["g"]["reason"]
        assert got["h"]["type"] == "output_flood"
        assert (trials / "h" / "stdout.log").stat().st_size <= 1 << 20
        # a, b, c on one worker; each fault's worker is gone and the next trial has a fresh one
        assert _pid(trials, "a") == _pid(trials, "b") == _pid(trials, "c") == _pid(trials, "d")
        assert _pid(trials, "e") == _pid(trials, "f")  # e passed: f runs on its worker
        assert len({_pid(trials, n) for n in "dfghi"}) == 5
        assert not any(_alive(_pid(trials, n)) for n in "dfgh")
        assert ex.warm.started == 5
    finally:
        ex.close()


@pytest.mark.anyio
async def test_a_worker_is_replaced_after_max_trials_and_when_a_trial_leaves_a_process(tmp_path):
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits(max_trials=2))
    try:
        for i in range(5):
            res, _ = await ex.run(_job(trials, f"t{i}", "ok"))
            assert res.outcome.rc == 0
        assert [_pid(trials, f"t{i}") for i in range(5)].count(_pid(trials, "t0")) == 2
        assert ex.warm is not None and ex.warm.started == 3
        res, _ = await ex.run(_job(trials, "s", "stray"))
        assert res.outcome.rc == 0
        assert not _alive(_pid(trials, "s"))  # retired, with the child it left
        assert not [p for p in marked_pids(set(), prefixes=(f"{trials}/{WORKER_MARK}",)) if _alive(p)]
    finally:
        ex.close()


@pytest.mark.anyio
async def test_a_worker_that_outgrows_its_memory_limit_is_replaced(tmp_path):
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits(max_rss_mb=64))
    try:
        rss = {}
        for name in ("a", "b", "big", "c", "d"):
            res, _ = await ex.run(_job(trials, name, "grow" if name == "big" else "ok"))
            assert res.outcome.rc == 0
            rss[name] = res.maxrss_kb
        assert rss["b"] < 64 << 10 < rss["big"], rss  # the limit lies between the two sizes
        pid = {n: _pid(trials, n) for n in rss}
        assert pid["a"] == pid["b"] == pid["big"]  # under the limit the worker stays
        assert not _alive(pid["big"])  # over it, retired once its trial is answered
        assert pid["c"] == pid["d"] != pid["big"]  # and the next trials share a fresh one
        assert ex.warm is not None and ex.warm.started == 2
    finally:
        ex.close()


@pytest.mark.anyio
async def test_a_worker_whose_trial_ends_after_the_pool_closed_is_ended(tmp_path):
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits())
    assert ex.warm is not None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ex.run, _job(trials, "w", "wait"))
            log = trials / "w" / "stdout.log"
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: log.is_file() and "ran wait" in log.read_text(),
                                                              what="the trial to start"))
            ex.warm.close()  # the engine shutting down while the trial runs
            (trials / "w" / "go").write_text("")
        assert not _alive(_pid(trials, "w")) and not ex.warm._idle
    finally:
        ex.close()


def test_a_ray_worker_process_ends_its_warm_workers_when_a_study_with_other_limits_comes(tmp_path):
    from noodle2.engine.executors import ray_exec
    from noodle2.engine.executors.process import Proc

    trials = tmp_path / "trials"
    try:
        first = ray_exec._warm_pool(WarmLimits(max_trials=5))
        assert first.run(_job(trials, "a", "ok").prepare(), Proc(), (30, 40)).outcome.rc == 0
        assert ray_exec._warm_pool(WarmLimits(max_trials=5)) is first  # the same study: kept warm
        assert _alive(_pid(trials, "a"))
        second = ray_exec._warm_pool(WarmLimits(max_trials=6))
        assert second is not first and not _alive(_pid(trials, "a"))
    finally:
        if ray_exec._POOL is not None:
            ray_exec._POOL.close()
        ray_exec._POOL = None


@pytest.mark.anyio
async def test_cancel_kills_the_worker_of_a_running_trial(tmp_path):
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits())
    try:
        async with anyio.create_task_group() as tg:
            async def run_it() -> None:
                await ex.run(_job(trials, "h", "hang"))

            tg.start_soon(run_it)
            log = trials / "h" / "stdout.log"
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: log.is_file() and "ran hang" in log.read_text(),
                                                              what="the hanging trial to start"))
            tg.cancel_scope.cancel()
        assert not _alive(_pid(trials, "h"))
    finally:
        ex.close()


def test_a_resume_finds_the_workers_a_dead_engine_left(tmp_path):
    """A worker's marker is under the trials folder, so the resume's sweep (by prefix) finds it."""
    trials = tmp_path / "trials"
    (trials / "x").mkdir(parents=True)
    (trials / "x" / "do").write_text("ok")
    mark = f"{trials}/{WORKER_MARK}999.1"
    p = subprocess.Popen(list(FAKE), stdin=subprocess.PIPE, env={**os.environ, MARKER: mark, "N2_REPLY_FD": "1"},
                         stdout=subprocess.PIPE, start_new_session=True, text=True)
    try:
        # Wait until the worker answers a trial: Popen returns as exec begins, before the kernel
        # has set up the new image's environment, and /proc/<pid>/environ may not show it yet.
        p.stdin.write(f"{trials / 'x'}\n")
        p.stdin.flush()
        assert p.stdout.readline() == "n2-ready\n"
        assert p.stdout.readline() == "n2-done 0\n"
        assert kill_marked({str(trials / "y")}) == []  # a trial's exact marker does not match it
        assert p.pid in kill_marked(set(), prefixes=(f"{trials}/{WORKER_MARK}",))
        assert p.wait(timeout=60) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()


# --- real OpenSTA: a warm trial is a cold trial ---------------------------------------------------

def _replay_cold(trial: Path) -> Path:
    """The trial's own run.tcl, run by a fresh `sta` in a sibling directory (same relative paths)."""
    cold = trial.with_name(trial.name + ".cold")
    cold.mkdir()
    shutil.copy(trial / "run.tcl", cold / "run.tcl")
    subprocess.run(["sta", "-no_init", "-no_splash", "run.tcl"], cwd=cold, stdin=subprocess.DEVNULL,
                   stdout=open(cold / "stdout.log", "wb"), stderr=open(cold / "stderr.log", "wb"), check=True)
    return cold


def _n2m(p: Path) -> list[str]:
    return [ln for ln in p.read_text().splitlines() if " phase_" not in ln]  # phases are clock times


def _warnings(d: Path) -> list[str]:
    return sorted(ln for f in ("stdout.log", "stderr.log") for ln in (d / f).read_text().splitlines()
                  if ln.startswith(("Warning:", "Error:")) and "Creating black box" not in ln)


@pytest.mark.parametrize("sample", ["quickstart", "gcd_sky130hd", "gcd_nangate45", "gcd_asap7"])
def test_warm_trials_equal_cold_ones_byte_for_byte(sample, tmp_path):
    """The study runs warm (the default); a trial of each ECO is replayed cold from its run.tcl:
    every metric line, report and netlist byte is the same, and so are sta's messages."""
    st = load_study(ROOT / "sample_studies" / f"{sample}.toml")
    assert st.spec.execution.warm
    d = new_study_dir(st, tmp_path / "studies")
    eng = Engine(d, st, make_tool(st, d))
    assert anyio.run(eng.run) == "complete", eng.state.reason
    assert eng.executor.warm is not None and 0 < eng.executor.warm.started < len(eng.state.trials)
    top = st.spec.design.top
    picked: dict[str, str] = {}
    for t in sorted(eng.state.trials.values(), key=lambda t: t.case_id, reverse=True):
        if t.status == "done" and t.stage >= 0 and t.eco != "resynth_cone":
            picked.setdefault(t.eco, t.case_id)  # the latest trial of each ECO: the longest warm history
    assert len(picked) >= 2
    for case in picked.values():
        warm = d / "trials" / case
        cold = _replay_cold(warm)
        assert _n2m(cold / "n2m.txt") == _n2m(warm / "n2m.txt"), case
        assert declare_wires((cold / f"{top}.raw.v").read_text()) == (warm / f"{top}.v").read_text(), case
        for r in REPORTS:
            assert (cold / r).is_file() == (warm / r).is_file(), (case, r)
            if (cold / r).is_file():
                assert (cold / r).read_bytes() == (warm / r).read_bytes(), (case, r)
        assert _warnings(cold) == _warnings(warm), case


def test_a_study_whose_warm_worker_cannot_start_runs_cold_and_measures_the_same(tmp_path, monkeypatch):
    """An installation whose worker program fails to load (here: a worker.tcl that errors) is not
    the ECOs' fault: every trial runs cold and measures what a `warm = false` study measures,
    each says why in its resources, and the study's log says so once."""
    from noodle2.engine.journal.events import Log
    from noodle2.engine.journal.store import JOURNAL, read_events
    from noodle2.engine.study.load import parse_study
    from noodle2.engine.tools.timing import WORKER_ARGV, opensta

    path = ROOT / "sample_studies" / "quickstart.toml"
    text = path.read_text()
    text = text[:text.index("[[stages]]", text.index("[[stages]]") + 1)].replace("trials = 8", "trials = 4")
    bad = tmp_path / "worker.tcl"
    bad.write_text('error "no such OpenSTA command"\n')

    def run(name: str, text: str) -> tuple[Engine, dict]:
        st = parse_study(text, path)
        d = new_study_dir(st, tmp_path / name)
        eng = Engine(d, st, make_tool(st, d))
        assert anyio.run(eng.run) == "complete", eng.state.reason
        return eng, {c: t.metrics for c, t in eng.state.trials.items()}

    cold, cold_metrics = run("cold", text.replace("[execution]", "[execution]\nwarm = false"))
    monkeypatch.setattr(opensta, "WORKER_ARGV", (*WORKER_ARGV[:-1], str(bad)))
    eng, metrics = run("broken", text)
    assert metrics == cold_metrics and len(metrics) == 5  # the base and four trials, every metric equal
    trials = eng.state.trials.values()
    assert all(t.status == "done" and "no such OpenSTA command" in t.resources["warm_refused"] for t in trials)
    assert not any("warm_trial" in t.resources for t in trials)
    assert eng.executor.warm.started == 1  # one worker tried; every other trial went cold at once
    said = [e.msg for e in read_events(eng.dir / JOURNAL).events if isinstance(e, Log) and "warm worker" in e.msg]
    assert len(said) == 1 and "could not start" in said[0] and "no such OpenSTA command" in said[0], said


def test_warm_false_runs_one_process_per_trial(tmp_path):
    from noodle2.engine.run.engine import make_executor
    from noodle2.engine.study.load import parse_study

    path = ROOT / "sample_studies" / "quickstart.toml"
    text = path.read_text()
    text = text.replace("[execution]", "[execution]\nwarm = false") if "[execution]" in text else text + "\n[execution]\nwarm = false\n"
    st = parse_study(text, path)
    ex = make_executor(st, tmp_path, 1)
    try:
        assert ex.warm is None
    finally:
        ex.close()
    ex = make_executor(load_study(path), tmp_path, 1)
    try:
        assert ex.warm is not None and ex.warm.limits == WarmLimits(200, 2048)
    finally:
        ex.close()
    ex = make_executor(parse_study(text.replace("warm = false", "warm_max_trials = 3\nwarm_max_mb = 100"), path), tmp_path, 1)
    try:
        assert ex.warm is not None and ex.warm.limits == WarmLimits(max_trials=3, max_rss_mb=100)
    finally:
        ex.close()


def test_a_real_sta_worker_that_hangs_times_out_and_the_next_trial_gets_a_fresh_one(bench):
    """The fault paths above with the real worker.tcl: a trial stuck in Tcl is a timeout, its
    worker is killed, and the next trial (a fresh worker) measures what a cold run measures."""
    from noodle2.engine.executors.process import Proc
    from noodle2.engine.tools.base import TrialContext

    b = bench("mac16")
    base, _ = b.base()
    tdir = b.dir / "trials" / "hangs"
    tdir.mkdir(parents=True)
    ctx = TrialContext(b.dir, "hangs", tdir, b.dir / "snapshot", None, "noop", {}, "sta", 1, 2, None)
    cmd = b.tool.prepare(ctx)
    assert cmd.warm is not None
    with open(tdir / "run.tcl", "a") as f:
        f.write("\nwhile {1} {}\n")  # after the whole trial: the worker is warm and busy when the timeout comes
    proc = Proc()
    res = b.pool.run(cmd, proc, (1.0, 2.0))
    fail = classify(res.outcome, "")
    assert fail is not None and fail["type"] == "timeout", res.outcome
    assert res.warm_trial >= 1 and not _alive(proc.pid)  # the worker that ran it is gone
    after = b.pool.started
    again, _ = b.trial("after_hang", "noop", mode="sta_power")
    assert b.pool.started == after + 1  # a fresh worker
    assert again["wns_ps"] == base["wns_ps"] and again["tns_ps"] == base["tns_ps"]


def test_a_real_sta_worker_over_its_memory_limit_is_replaced_and_the_next_measures_the_same(bench):
    """warm_max_mb with the real worker.tcl: the memory read is sta's own (its Liberty loaded);
    under a limit below it each trial gets a fresh worker, above it one worker serves them all,
    and every trial measures what the design's base run measured.  Three pools in one process:
    each worker's marker is its own, so ending one sweeps no other."""
    from noodle2.engine.executors.warm import WarmPool

    b = bench("mac16")
    base, _ = b.base()
    own = [w.pid for ws in b.pool._idle.values() for w in ws]  # the bench's worker, beside the pools below
    roomy, tight = WarmPool(WarmLimits(), None), None
    try:
        for i in range(2):
            m, _ = b.trial(f"roomy_{i}", "noop", mode="sta", pool=roomy)
            assert (m["wns_ps"], m["tns_ps"]) == (base["wns_ps"], base["tns_ps"])
        [w] = [w for ws in roomy._idle.values() for w in ws]
        assert roomy.started == 1 and w.trials == 2
        assert open(f"/proc/{w.pid}/comm").read().strip() == "sta"  # no wrapper between: its RSS is sta's
        rss_mb = w.rss_kb() >> 10
        assert rss_mb >= 8  # the Liberty and the design loaded
        tight = WarmPool(WarmLimits(max_rss_mb=rss_mb // 2), None)
        started = []
        for i in range(3):
            m, _ = b.trial(f"tight_{i}", "noop", mode="sta", pool=tight)
            assert (m["wns_ps"], m["tns_ps"]) == (base["wns_ps"], base["tns_ps"])
            assert not any(tight._idle.values())  # over the limit: ended, never kept
            started.append(tight.started)
        assert started == [1, 2, 3]  # one more worker for every trial
        assert own and all(_alive(p) for p in own)  # ending another pool's workers never swept it
    finally:
        roomy.close()
        if tight is not None:
            tight.close()


def test_a_worker_program_that_fails_before_serving_never_reads_a_trial_as_tcl_and_runs_cold(tmp_path):
    """Should worker.tcl fail before it serves (a different OpenSTA, a broken install), sta must
    not fall to its prompt, where each trial directory sent on stdin would run as a Tcl command
    (a bracket in a folder name would be substituted).  With the worker's argv it exits before
    saying n2-ready: the installation's fault, not the trial's, so the trial runs cold (real
    sta), says why, and later trials of its kind go cold without starting another worker."""
    from noodle2.engine.executors.process import Proc
    from noodle2.engine.executors.warm import WarmPool
    from noodle2.engine.tools.timing import WORKER_ARGV

    bad = tmp_path / "worker.tcl"
    bad.write_text('error "this OpenSTA lacks a command the worker renames"\n')
    pool = WarmPool(WarmLimits(), None)
    got = []
    try:
        for name in ("t[file mkdir injected]", "next"):
            d = tmp_path / "trials" / name
            d.mkdir(parents=True)
            (d / "run.tcl").write_text('puts "cold [expr {6 * 7}]"\n')
            cmd = Command([*WORKER_ARGV[:-1], "run.tcl"], d, d / "stdout.log", d / "stderr.log",
                          {**os.environ, MARKER: str(d)}, contain_key="t", warm=Warm("broken", (*WORKER_ARGV[:-1], str(bad))))
            got.append((pool.run(cmd, Proc(), (120.0, 130.0)), d))
    finally:
        pool.close()
    for res, d in got:
        assert not res.outcome.timed_out and res.outcome.rc == 0, res.outcome
        assert (d / "stdout.log").read_text() == "cold 42\n"  # the trial's own script, cold
        assert res.warm_trial == 0 and "lacks a command the worker renames" in res.warm_refused, res
        assert res.resources()["warm_refused"] == res.warm_refused
    assert pool.started == 1  # the second trial started no worker
    assert not any(p.name == "injected" for p in tmp_path.rglob("*")), sorted(tmp_path.rglob("*"))


def test_a_ready_line_and_an_answer_in_one_read_are_both_taken(tmp_path):
    """A worker's lines may reach the pipe together (a loaded machine): the answer behind
    n2-ready is read from what was already taken off the pipe, not waited for."""
    from noodle2.engine.executors.process import Proc
    from noodle2.engine.executors.warm import WarmPool

    both = (sys.executable, "-c", "import os, sys\nr = os.fdopen(int(os.environ['N2_REPLY_FD']), 'w')\n"
            "sys.stdin.readline()\nr.write('n2-ready\\nn2-done 5\\n')\nr.flush()\nsys.stdin.readline()\n")
    d = tmp_path / "t"
    d.mkdir()
    cmd = Command(list(FAKE), d, d / "stdout.log", d / "stderr.log", {**os.environ, MARKER: str(d)}, contain_key="t",
                  warm=Warm("both", both))
    pool = WarmPool(WarmLimits(), None)
    try:
        res = pool.run(cmd, Proc(), (60.0, 70.0))
    finally:
        pool.close()
    assert res.outcome.rc == 5 and not res.outcome.timed_out and res.warm_trial == 1 and not res.warm_refused, res


@pytest.mark.anyio
async def test_a_worker_that_started_and_crashes_on_its_first_trial_is_the_trials_crash(tmp_path):
    """The other side of the line: once a worker said n2-ready, its death is the trial's, as a
    cold run's would be; nothing runs again cold."""
    trials = tmp_path / "trials"
    ex = LocalExecutor(1, WarmLimits())
    try:
        res, _ = await ex.run(_job(trials, "a", "crash"))
        fail = classify(res.outcome, "")
        assert fail is not None and fail["type"] == "tool_crash" and "SIGSEGV" in fail["reason"], res.outcome
        assert res.warm_trial == 1 and not res.warm_refused
        assert ex.warm is not None and not ex.warm.refused
        assert (trials / "a" / "stdout.log").read_text().count("ran crash") == 1  # ran once, warm
        res, _ = await ex.run(_job(trials, "b", "ok"))
        assert res.outcome.rc == 0 and res.warm_trial == 1 and ex.warm.started == 2
    finally:
        ex.close()
