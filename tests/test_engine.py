"""Engine behaviour with real subprocesses: the deterministic fake ECO tool, and fault
injection tools that crash, hang, fail or eat memory."""
from __future__ import annotations

import gc
import os
import signal
import sys
import time
from pathlib import Path

import orjson
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.fsutil import StudyLock
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState, fold
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir, open_for_resume
from noodle2.engine.study.load import load_study
from noodle2.engine.tools import make_tool
from tests.conftest import FAKE, fake_study


async def run(path: Path, root: Path, **env: str) -> tuple[str, Engine]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        study = load_study(path)
        d = new_study_dir(study, root)
        eng = Engine(d, study, make_tool(study, d))
        status = await eng.run()
        return status, eng
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def outcome(eng: Engine) -> dict:
    s = eng.state
    return {"survivors": [st.survivors for st in s.stages],
            "metrics": {c: t.metrics for c, t in sorted(s.trials.items())},
            "plan": {c: (t.parent, t.eco, t.params) for c, t in sorted(s.trials.items())}}


async def test_decisions_do_not_depend_on_concurrency_or_finish_order(tmp_path):
    a_status, a = await run(fake_study(tmp_path, name="serial", max_parallel=1), tmp_path / "a")
    # parallel, with per-trial delays that scramble the order trials finish in
    b_status, b = await run(fake_study(tmp_path, name="par", max_parallel=4), tmp_path / "b", N2_FAKE_DELAY="0.02")
    assert a_status == b_status == "complete"
    assert outcome(a) == outcome(b)
    folded = StudyState()  # the local executor never has more tools open than max_parallel
    for e in read_events(b.dir / JOURNAL).events:
        fold(folded, e)
        assert folded.in_flight() <= 4, e
    order_b = [e.case_id for e in read_events(b.dir / JOURNAL).events if isinstance(e, ev.TrialFinished)]
    assert order_b != sorted(order_b, key=lambda c: (len(c), c))  # finish order really was scrambled
    # ranking is by the objective, ties by case id
    st0 = a.state.stages[0]
    wns = [a.state.trials[c].metrics["wns_ps"] for c in st0.ranking]
    assert wns == sorted(wns, reverse=True)
    # stages 1 and 2 both hang off stage 0's survivors and ran concurrently in b
    assert b.state.stages[1].parents == b.state.stages[2].parents == b.state.stages[0].survivors
    starts = {e.stage: e.seq for e in read_events(b.dir / JOURNAL).events if isinstance(e, ev.StageStarted)}
    ends = {e.stage: e.seq for e in read_events(b.dir / JOURNAL).events if isinstance(e, ev.StageFinished)}
    assert starts[2] < ends[1] and starts[1] < ends[2]


async def test_case_ids_lineage_and_parent_artifacts_read_only(tmp_path):
    status, eng = await run(fake_study(tmp_path), tmp_path / "s")
    assert status == "complete"
    s = eng.state
    assert s.stages[1].cases == [f"fake_1_{i}" for i in range(4)]
    for c in s.stages[1].cases:
        assert s.trials[c].parent in s.stages[0].survivors
    parent_file = eng.dir / "trials" / s.stages[0].survivors[0] / "design.json"
    assert not os.stat(parent_file).st_mode & 0o222  # no write bits
    assert (eng.dir / "inputs" / "fake.toml").exists() is False and (eng.dir / "inputs" / "study.toml").exists()


async def test_a_running_engine_keeps_its_study_from_the_collector_and_lets_go_at_the_end(tmp_path, monkeypatch):
    """#20: at 100k trials each full collection walked the folded study for 0.1-0.2 s.  The
    engine freezes what it loaded while it runs, and thaws when it ends (a frozen object is
    never collected: a second study in the process would leak the first's cycles)."""
    during = []
    real = Engine._run

    async def spy(self, *a, **k):
        during.append(gc.get_freeze_count())
        return await real(self, *a, **k)

    monkeypatch.setattr(Engine, "_run", spy)
    status, eng = await run(fake_study(tmp_path), tmp_path / "s")
    assert status == "complete" and during and during[0] > 0 and gc.get_freeze_count() == 0


@pytest.mark.parametrize("tool,kind,needle", [
    ([str(FAKE / "segfault.sh")], "tool_crash", "SIGSEGV"),
    ([str(FAKE / "fail.sh")], "nonzero_exit", "rc 7"),
    (["/nonexistent/sta"], "tool_missing", "cannot start"),
    (["true"], "missing_output", "metrics.json"),
])
async def test_failures_are_classified_and_base_failure_blocks(tmp_path, tool, kind, needle):
    status, eng = await run(fake_study(tmp_path, command=tool), tmp_path / "s")
    assert status == "blocked"
    base = eng.state.base()
    assert base.failure["type"] == kind and needle in base.failure["reason"]
    assert base.failure["severity"] in {"error", "critical"}
    assert not any(t.status != "planned" for t in eng.state.trials.values() if t.stage >= 0)
    assert all(st.status == "pending" for st in eng.state.stages)  # no ECO trial ran
    if kind == "nonzero_exit":
        assert "cannot read liberty" in base.failure["excerpt"]


def _wrapper(tmp: Path, body: str) -> list[str]:
    """A tool that behaves like the fake ECO tool for the base case and faults on ECO trials."""
    script = tmp / "wrapper.sh"
    script.write_text(f"""#!/bin/sh
if [ "$N2_ECO" = "noop" ]; then exec {sys.executable} {FAKE / 'eco_model.py'}; fi
{body}
""")
    script.chmod(0o755)
    return [str(script)]


async def test_timeout_kills_whole_process_group(tmp_path):
    path = fake_study(tmp_path, command=_wrapper(tmp_path, f"exec {FAKE / 'hang.sh'}"),
                      stages='[[stages]]\nname = "one"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\n')
    path.write_text(path.read_text().replace("soft_timeout_s = 20", "soft_timeout_s = 0.5\nhard_timeout_s = 1.5"))
    status, eng = await run(path, tmp_path / "s")
    assert status == "failed"
    trials = eng.state.stage_trials(0)
    assert {t.failure["type"] for t in trials} == {"timeout"}
    assert "every trial of stage one failed (timeout×2)" in eng.state.reason
    for t in trials:  # the backgrounded `sleep` child died with the group
        child = int((eng.dir / "trials" / t.case_id / "stdout.log").read_text().split()[1])
        assert _dead(child)


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (a zombie runs nothing)."""
    for _ in range(50):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


async def test_memory_limit_is_classified_oom(tmp_path):
    path = fake_study(tmp_path, command=_wrapper(tmp_path, f"exec {sys.executable} {FAKE / 'eat_memory.py'}"),
                      stages='[[stages]]\nname = "one"\ntrials = 1\nsurvivors = 1\necos = ["pin_swap"]\n')
    path.write_text(path.read_text().replace("soft_timeout_s = 20", "soft_timeout_s = 20\nmemory_limit_mb = 256"))
    status, eng = await run(path, tmp_path / "s")
    [t] = eng.state.stage_trials(0)
    assert t.failure["type"] == "oom" and "MemoryError" in t.failure["excerpt"]


async def test_failed_trial_never_stops_the_stage(tmp_path):
    body = f'case "$N2_CASE_ID" in *_0_1|*_0_3) kill -SEGV $$;; esac\nexec {sys.executable} {FAKE / "eco_model.py"}'
    path = fake_study(tmp_path, command=_wrapper(tmp_path, body))
    status, eng = await run(path, tmp_path / "s")
    assert status == "complete"
    st0 = eng.state.stage_trials(0)
    assert [t.status for t in st0] == ["done", "failed", "done", "failed", "done", "done"]
    assert not set(eng.state.stages[0].survivors) & {"fake_0_1", "fake_0_3"}


async def test_retries_rerun_retryable_failures(tmp_path):
    marker = tmp_path / "crashed_once"
    body = (f'if [ ! -e {marker}_$N2_CASE_ID ]; then touch {marker}_$N2_CASE_ID; kill -SEGV $$; fi\n'
            f'exec {sys.executable} {FAKE / "eco_model.py"}')
    path = fake_study(tmp_path, command=_wrapper(tmp_path, body),
                      stages='[[stages]]\nname = "one"\ntrials = 3\nsurvivors = 1\necos = ["pin_swap"]\n')
    path.write_text(path.read_text().replace("soft_timeout_s = 20", "soft_timeout_s = 20\nretries = 1"))
    status, eng = await run(path, tmp_path / "s")
    assert status == "complete"
    assert [t.attempt for t in eng.state.stage_trials(0)] == [2, 2, 2]
    evs = read_events(eng.dir / JOURNAL).events
    assert sum(isinstance(e, ev.TrialFailed) and e.retry for e in evs) == 3


async def test_a_retry_backs_off_as_journaled_and_a_resume_keeps_the_schedule(tmp_path):
    """#21: a retry waits its backoff (exponential, capped, seeded jitter), journaled as the time
    it may start; a resume from a journal cut right after the failure waits for that time too."""
    from noodle2.engine.policy.failures import backoff_s

    assert [backoff_s(1, "c", a, 1.0, 5.0) for a in (1, 2, 3, 4, 5)] == \
        [backoff_s(1, "c", a, 1.0, 5.0) for a in (1, 2, 3, 4, 5)]  # the same schedule every time
    waits = [backoff_s(1, "c", a, 1.0, 5.0) for a in (1, 2, 3, 4, 5)]
    assert all(lo <= w <= hi for w, (lo, hi) in zip(waits, [(0.5, 1), (1, 2), (2, 4), (2.5, 5), (2.5, 5)])), waits
    marker = tmp_path / "crashed_once"
    body = (f'if [ ! -e {marker}_$N2_CASE_ID ]; then touch {marker}_$N2_CASE_ID; kill -SEGV $$; fi\n'
            f'exec {sys.executable} {FAKE / "eco_model.py"}')
    path = fake_study(tmp_path, command=_wrapper(tmp_path, body),
                      stages='[[stages]]\nname = "one"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\n')
    path.write_text(path.read_text().replace("soft_timeout_s = 20", "soft_timeout_s = 20\nretries = 1\n"
                                             "retry_backoff_s = 0.3"))
    status, eng = await run(path, tmp_path / "s")
    assert status == "complete"
    evs = read_events(eng.dir / JOURNAL).events
    failed = {e.case_id: e for e in evs if isinstance(e, ev.TrialFailed) and e.retry}
    again = {e.case_id: e for e in evs if isinstance(e, ev.TrialStarted) and e.attempt == 2}
    assert set(failed) == set(again) and len(failed) == 2
    for c, f in failed.items():
        assert f.retry_at - f.t == pytest.approx(backoff_s(11, c, 1, 0.3, 30.0), abs=0.05)
        assert again[c].t >= f.retry_at  # not before its journaled time
    # cut the journal right after the first retryable failure: the resume keeps its start time
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(eng.dir, cut)
    lines = (cut / JOURNAL).read_bytes().splitlines(keepends=True)
    at = next(i for i, x in enumerate(lines) if b'"retry":true' in x)
    (cut / JOURNAL).write_bytes(b"".join(lines[:at + 1]))
    (cut / "checkpoint.json").unlink()
    first = read_events(cut / JOURNAL).events[-1]
    assert isinstance(first, ev.TrialFailed) and first.retry_at
    eng2 = Engine(cut, open_for_resume(cut), make_tool(load_study(cut / "inputs" / "study.toml", stored=True), cut))
    assert await eng2.run() == "complete"
    restarted = [e for e in read_events(cut / JOURNAL).events
                 if isinstance(e, ev.TrialStarted) and e.case_id == first.case_id and e.seq > first.seq]
    assert restarted and restarted[0].t >= first.retry_at


async def test_second_engine_is_refused_naming_pid(tmp_path):
    study = load_study(fake_study(tmp_path))
    d = new_study_dir(study, tmp_path / "s")
    lock = StudyLock(d)
    lock.acquire()
    try:
        with pytest.raises(N2Error) as ei:
            await Engine(d, study, make_tool(study, d)).run()
        assert ei.value.codes == ["N2-E201"] and f"PID {os.getpid()}" in str(ei.value)
    finally:
        lock.release()


async def test_resume_refuses_changed_study_file_naming_the_change(tmp_path):
    path = fake_study(tmp_path)
    status, eng = await run(path, tmp_path / "s")
    path.write_text(path.read_text().replace("trials = 4", "trials = 5"))
    with pytest.raises(N2Error) as ei:
        open_for_resume(eng.dir)
    assert ei.value.codes == ["N2-E202"]
    assert "stages[1].trials: 4 → 5" in str(ei.value)


async def test_graceful_stop_checkpoints_and_resume_finishes(tmp_path):
    path = fake_study(tmp_path, max_parallel=2)
    study = load_study(path)
    d = new_study_dir(study, tmp_path / "s")
    os.environ["N2_FAKE_DELAY"] = "0.3"
    try:
        eng = Engine(d, study, make_tool(study, d))
        import anyio

        async def stopper():
            while len([t for t in eng.state.trials.values() if t.status == "done"]) < 3:
                await anyio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper)
            status = await eng.run()
        assert status == "interrupted"
    finally:
        os.environ.pop("N2_FAKE_DELAY")
    rec = recover(d)
    assert rec.from_checkpoint and rec.state.status == "interrupted"
    assert "SIGTERM" in rec.state.reason
    done_before = {c for c, t in rec.state.trials.items() if t.status == "done"}
    t0 = time.time()
    eng2 = Engine(d, open_for_resume(d), make_tool(study, d))
    assert await eng2.run() == "complete"
    evs = read_events(d / JOURNAL).events
    restarted = {e.case_id for e in evs if isinstance(e, ev.TrialStarted) and e.t >= t0}
    assert not restarted & done_before


async def test_stale_control_requests_expire_instead_of_stopping_a_resume(tmp_path):
    from noodle2.console.follow import send_control

    study = load_study(fake_study(tmp_path))
    d = new_study_dir(study, tmp_path / "s")
    req = send_control(d, "stop")
    os.utime(req, (time.time() - 60, time.time() - 60))  # sent a minute before this engine
    eng = Engine(d, study, make_tool(study, d))
    assert await eng.run() == "complete"
    [ack] = eng.state.controls
    assert (ack["request"], ack["accepted"]) == ("stop", False) and ack["detail"].startswith("expired")


async def test_keep_parents_never_loses_ground(tmp_path):
    """Every trial of stage two makes things worse; with keep_parents its survivor is the parent."""
    body = (f'if [ "$N2_CASE_ID" = "fake_1_0" ] || [ "$N2_CASE_ID" = "fake_1_1" ]; then '
            f'echo \'{{"wns_ps": -99999, "tns_ps": -99999}}\' > metrics.json; echo x > design.json; exit 0; fi\n'
            f'exec {sys.executable} {FAKE / "eco_model.py"}')
    stages = """
[[stages]]
name = "one"
trials = 3
survivors = 1
ecos = ["pin_swap"]

[[stages]]
name = "two"
trials = 2
survivors = 1
keep_parents = true
ecos = ["pin_swap"]
"""
    path = fake_study(tmp_path, command=_wrapper(tmp_path, body), stages=stages)
    status, eng = await run(path, tmp_path / "s")
    assert status == "complete"
    s = eng.state
    assert s.stages[1].survivors == s.stages[0].survivors  # the parent survived its own children


def test_rails_on_any_metric_and_a_stage_left_without_survivors(tmp_path):
    """[rails] max/min hold survivors to any metric; when every trial breaks them the stage ends
    with no survivor, said plainly (this crashed the headless printer once), and the stages after
    it are skipped."""
    import subprocess

    from tests.conftest import ROOT, cli_env

    stages = """
[[stages]]
name = "one"
trials = 3
survivors = 2
ecos = ["pin_swap"]

[[stages]]
name = "two"
trials = 2
survivors = 1
ecos = ["pin_swap"]
"""
    path = fake_study(tmp_path, stages=stages, extra="[rails]\nmax = { area_um2 = 100 }\nmin = { wns_ps = -5000 }\n")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended",
                        "--study-dir", str(tmp_path / "s")], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert "■ stage one: 3/3 ok, 0 failed; no survivor (3 trials excluded by the rails: area_um2 = " in r.stdout
    assert "is above the rail max 100" in r.stdout and "stage two skipped" in r.stdout
    gates = [orjson.loads(x) for x in (tmp_path / "s" / "safety_trace.jsonl").read_bytes().splitlines()]
    assert {g["gate"] for g in gates} >= {"rail_area_um2", "rail_wns_ps"}


async def test_the_study_ends_when_its_goal_is_met_and_says_what_it_saved(tmp_path):
    """#21: [study] goal = { wns_ps = … }: met by a stage's survivor, the study ends there; the
    decision is journaled with the case and the trials not run."""
    _, ref = await run(fake_study(tmp_path, name="all"), tmp_path / "ref")
    first = ref.state.trials[ref.state.stages[0].survivors[0]].metrics["wns_ps"]
    goal = f'[study]\nname = "goal"\nseed = 11\ngoal = {{ wns_ps = {first - 1:g} }}'
    f = fake_study(tmp_path, name="goal")
    f.write_text(f.read_text().replace('[study]\nname = "goal"\nseed = 11', goal, 1))
    status, eng = await run(f, tmp_path / "goal")
    s = eng.state
    assert status == "complete" and s.stages[0].status == "done"
    assert [st.status for st in s.stages[1:]] == ["skipped", "skipped"]
    [d] = [d for d in s.decisions if d["action"] == "goal_met"]
    saved = sum(st.budget for st in s.stages[1:])
    assert d["subject"] == ref.state.stages[0].survivors[0] and f"{saved} trial(s) of 2 stage(s) not run" in d["reason"]
    assert s.reason == d["reason"] and len(s.trials) == 1 + s.stages[0].budget  # nothing later ran
    from noodle2.engine.reports import summary

    summary.write(eng.dir, s)
    md = (eng.dir / "report" / "summary.md").read_text()
    assert f"study ends early: goal met by {d['subject']}" in md and f"{saved} were not run" in md
    # a goal no case meets changes nothing
    f.write_text(f.read_text().replace(f"wns_ps = {first - 1:g}", "wns_ps = 1000000"))
    _, far = await run(f, tmp_path / "far")
    assert not [d for d in far.state.decisions if d["action"] == "goal_met"] and len(far.state.trials) == len(ref.state.trials)


async def test_a_stage_stops_early_once_timing_is_met_and_flat_whatever_the_concurrency(tmp_path):
    """#21: timing met (WNS 0) and the objective flat for 3 trials in plan order: the stage runs no
    more trials, journals why and how many it saved, and chooses the same survivors at any
    concurrency (a trial past the stop that finished anyway never counts)."""
    stages = '''
[[stages]]
name = "explore"
trials = 10
survivors = 2
stop_when_flat = 3
ecos = ["resize_critical", "buffer_fanout"]

[[stages]]
name = "refine"
trials = 4
survivors = 1
ecos = ["pin_swap"]
'''
    got = []
    for n, delay in ((1, "0"), (4, "0.02")):
        _, eng = await run(fake_study(tmp_path, name=f"flat{n}", stages=stages, max_parallel=n), tmp_path / f"p{n}",
                           N2_FAKE_BASE_WNS="100", N2_FAKE_DELAY=delay)
        s = eng.state
        [d] = [d for d in s.decisions if d["action"] == "stop_early"]
        not_run = [c for c in s.stages[0].cases if s.trials[c].status == "cancelled"]
        got.append((s.stages[0].survivors, d["reason"], s.stages[1].survivors, s.status))
        assert "timing met and wns_ps flat for 3 trials" in d["reason"] and "the 6 later trials of 10" in d["reason"]
        # the tools already running when the stop was decided finish, uncounted (the pipeline: one per slot)
        assert 6 - n - 1 <= len(not_run) <= 6 and all("stopped early" in s.trials[c].failure["reason"] for c in not_run)
        assert all(s.trials[c].index < 4 for c in s.stages[0].survivors) and s.status == "complete"
    assert got[0] == got[1]
    # a resume from the journal as it stood just after the stop: the same survivors, and no trial
    # past the stop runs on the resume
    import shutil

    d = next((tmp_path / "p4").iterdir())
    cut = tmp_path / "cut"
    shutil.copytree(d, cut)
    lines = (cut / JOURNAL).read_bytes().splitlines(keepends=True)
    at = next(i for i, x in enumerate(lines) if b'"stop_early"' in x)
    (cut / JOURNAL).write_bytes(b"".join(lines[:at + 1]))
    (cut / "checkpoint.json").unlink()
    before = recover(cut).state
    t0 = time.time()
    os.environ["N2_FAKE_BASE_WNS"] = "100"
    try:
        eng = Engine(cut, open_for_resume(cut), make_tool(load_study(cut / "inputs" / "study.toml", stored=True), cut))
        assert await eng.run() == "complete"
    finally:
        os.environ.pop("N2_FAKE_BASE_WNS")
    ran = {e.case_id for e in read_events(cut / JOURNAL).events if isinstance(e, ev.TrialStarted) and e.t >= t0}
    stop = int(next(d for d in eng.state.decisions if d["action"] == "stop_early")["reason"].split(" to ")[1]
               .split(")")[0].rsplit("_", 1)[1]) + 1
    assert not {c for c in ran if eng.state.trials[c].stage == 0 and eng.state.trials[c].index >= stop}
    assert (eng.state.stages[0].survivors, eng.state.stages[1].survivors) == (got[1][0], got[1][2])
    assert len([d for d in eng.state.decisions if d["action"] == "stop_early"]) == 1 and before.status == "running"


async def test_tool_env_reaches_every_trial_and_noodle2s_own_variables_are_refused(tmp_path):
    """#21: [tool] env: names and values checked; noodle2's own variables refused; locked names it."""
    body = f'echo "$MY_LICENSE|$N2_TRIAL_DIR" > seen.txt\nexec {sys.executable} {FAKE / "eco_model.py"}'
    path = fake_study(tmp_path, command=_wrapper(tmp_path, body),
                      stages='[[stages]]\nname = "one"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\n')
    text = path.read_text().replace("[execution]", '[tool.env]\nMY_LICENSE = "27000@lic"\n\n[execution]', 1)
    for bad, why in (('N2_TRIAL_DIR = "x"', "N2_TRIAL_DIR is noodle2's own variable"),
                     ('GOOD = "a\\u0007b"', "control character")):
        path.write_text(text.replace('MY_LICENSE = "27000@lic"', bad))
        with pytest.raises(N2Error) as ei:
            load_study(path)
        assert any(p.code == "N2-E127" and why in p.message for p in ei.value.problems), ei.value.render()
    path.write_text(text.replace("seed = 11", 'seed = 11\nsafety_domain = "locked"'))
    with pytest.raises(N2Error) as ei:
        load_study(path)
    assert any(p.code == "N2-E122" and "tool_env" in p.render() for p in ei.value.problems)
    path.write_text(text)
    status, eng = await run(path, tmp_path / "s")
    assert status == "complete"
    for c in eng.state.stages[0].cases:
        assert (eng.dir / "trials" / c / "seen.txt").read_text().startswith("27000@lic|")


async def test_a_risk_budget_per_eco_class_keeps_over_budget_cases_out_and_is_in_the_legality_report(tmp_path):
    """#21: [rails.eco_class.X]: area one trial may add, and area the class may add along a
    lineage; a case over either cannot survive, with the reason journaled."""
    _, ref = await run(fake_study(tmp_path, name="free"), tmp_path / "free")
    s0 = ref.state

    def added(c):
        t = s0.trials[c]
        return t.metrics["area_um2"] - s0.trials[t.parent].metrics["area_um2"]

    explore = [c for c in s0.stages[0].cases if s0.trials[c].status == "done"]
    cap = sorted(added(c) for c in explore)[len(explore) // 2]  # about half the trials are over it
    f = fake_study(tmp_path, name="budget")
    f.write_text(f.read_text().replace("[execution]", "[rails.eco_class.topology_neutral]\n"
                                       f"max_area_added_um2 = {cap:g}\n\n"
                                       "[rails.eco_class.placement_local]\n"
                                       f"max_area_added_um2 = {cap:g}\nstudy_max_area_added_um2 = {2 * cap:g}\n\n"
                                       "[execution]", 1))
    status, eng = await run(f, tmp_path / "b")
    s = eng.state
    assert status == "complete"
    assert f"topology_neutral budget: per trial at most area added µm² {cap:g}" in \
        (eng.dir / "legality_report.md").read_text()
    over = {c for c in s.stages[0].cases if s.trials[c].status == "done"
            and s.trials[c].metrics["area_um2"] - s.trials[s.trials[c].parent].metrics["area_um2"] > cap}
    assert over and set(s.stages[0].excluded) == over and not over & set(s.stages[0].survivors)
    assert all("budget: max_area_added_um2" in s.stages[0].excluded[c] for c in over)
    for st in s.stages:  # no survivor spent more than the placement_local lineage budget
        for c in st.survivors:
            t, total = s.trials[c], 0.0
            while t.parent:
                if t.eco in ("buffer_fanout", "clone_driver"):
                    total += t.metrics["area_um2"] - s.trials[t.parent].metrics["area_um2"]
                t = s.trials[t.parent]
            assert total <= 2 * cap


async def test_a_trial_identical_to_a_finished_one_reuses_its_result_and_says_so(tmp_path):
    """#21: same parent, ECO, parameters and mode: the same netlist, so the tool does not run
    again; the result, files included, is the twin's, journaled as reused, with the metrics every
    trial gets when each runs.  A copy is the same design: it never survives beside its twin
    (this fake tool's runs write their case into the design, so without reuse they differ)."""
    stages = '''
[[stages]]
name = "grid"
trials = 6
survivors = 2
sweep = "grid"
ecos = ["pin_swap"]
[stages.params.pin_swap]
paths = 5
max_swaps = 8
'''
    got = {}
    for reuse in (True, False):
        f = fake_study(tmp_path, name=f"r{reuse}", stages=stages, max_parallel=1)
        f.write_text(f.read_text().replace("[execution]", f"[execution]\nreuse = {str(reuse).lower()}", 1))
        log = tmp_path / f"runs{reuse}.log"
        _, eng = await run(f, tmp_path / f"d{reuse}", N2_FAKE_RUNLOG=str(log))
        s = eng.state
        ran = [x for x in log.read_text().split() if x != s.base_case]
        reused = {c: s.trials[c].resources["reused_from"] for c in s.stages[0].cases
                  if (s.trials[c].resources or {}).get("reused_from")}
        got[reuse] = (s.stages[0].survivors, {c: t.metrics for c, t in s.trials.items()}, ran, reused, eng)
    survivors, metrics, ran, reused, eng = got[True]
    assert reused and len(ran) == 6 - len(reused) and len(got[False][2]) == 6  # the tool ran fewer times
    assert metrics == got[False][1]  # every trial measured the same
    assert survivors == ["fake_0_0"] and len(got[False][0]) == 2
    assert {c: eng.state.stages[0].excluded.get(c) for c in reused} == {c: "same result as fake_0_0" for c in reused}
    for c, twin in reused.items():
        a, b = eng.dir / "trials" / c / "design.json", eng.dir / "trials" / twin / "design.json"
        assert a.read_bytes() == b.read_bytes() and not a.stat().st_mode & 0o222
        assert eng.state.trials[c].outputs == eng.state.trials[twin].outputs
    from noodle2.engine.reports.status import trial_line

    assert any(f"↺ as {twin}" in trial_line(eng.state.trials[c]) for c, twin in reused.items())
