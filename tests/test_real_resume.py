"""Real OpenSTA: kill -9 mid-study and resume equals an uninterrupted run at another
concurrency; the console then shows a real trial's paths and Tcl."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from noodle2.console.app import Noodle2App
from noodle2.console.screens.detail import TrialDetail
from noodle2.console.widgets.tables import TrialTable
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from tests.conftest import NOODLE2, ROOT, cli_env
from tests.waiting import journal_lines, settle, wait_until

pytestmark = pytest.mark.skipif(shutil.which("sta") is None, reason="needs OpenSTA")


def study_with(tmp, workers: int):
    text = (ROOT / "sample_studies/quickstart.toml").read_text().replace("[execution]", f"[execution]\nmax_parallel = {workers}")
    d = tmp / f"q{workers}"
    shutil.copytree(ROOT / "sample_studies/designs", d / "designs")
    (d / "quickstart.toml").write_text(text)
    return d / "quickstart.toml"


def outcome(d):
    s = recover(d).state
    return s.status, [st.survivors for st in s.stages], {
        c: {k: v for k, v in (t.metrics or {}).items()} for c, t in sorted(s.trials.items())}


async def test_sigkill_mid_study_then_resume_matches_uninterrupted_real_sta(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ref = tmp_path / "ref"
    subprocess.run([*NOODLE2, "run", str(study_with(tmp_path, 1)), "--unattended", "--study-dir", str(ref)], cwd=ROOT,
                   env=cli_env(), check=True, capture_output=True)
    d = tmp_path / "killed"
    p = subprocess.Popen([*NOODLE2, "run", str(study_with(tmp_path, 2)), "--unattended", "--study-dir", str(d)],
                         cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def mid_stage_1() -> bool:
        if not (d / JOURNAL).exists():
            return False
        s = recover(d).state
        return len(s.stages) > 1 and any(t.status == "done" for t in s.stage_trials(1)) and s.stages[1].status == "running"

    wait_until(lambda: mid_stage_1() or p.poll() is not None, "stage 1 to have finished trials", every=0.005,
               progress=lambda: journal_lines(d))
    assert p.poll() is None, "the study ended before the kill; it should take seconds"
    p.kill()
    p.wait()
    before = {c for c, t in recover(d).state.trials.items() if t.status == "done"}
    assert before and recover(d).state.status == "running"
    r = subprocess.run([*NOODLE2, "resume", str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, b = outcome(ref), outcome(d)
    assert a[0] == b[0] == "complete"
    assert a[1] == b[1]  # same survivors at 1 and 2 workers, interrupted or not
    assert a[2] == b[2]  # same metrics from the real tool
    starts_after = [e for e in read_events(d / JOURNAL).events if isinstance(e, ev.TrialStarted)]
    resumed_at = next(e.seq for e in read_events(d / JOURNAL).events if isinstance(e, ev.StudyResumed))
    assert not {e.case_id for e in starts_after if e.seq > resumed_at} & before  # nothing finished ran twice

    app = Noodle2App(d.parent, theme="dark", open_study=d)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await settle(pilot, lambda: pilot.app.screen.query_one(TrialTable), "the study view")
        await settle(pilot, lambda: table.row_count == 4, "the last stage's trials (attach shows the active stage)")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, TrialDetail), "the trial detail")
        paths = pilot.app.screen.query_one("#detail-paths")
        assert paths.row_count == 5 and float(str(paths.get_row_at(0)[0])) < 0  # real violating paths
        tcl = str(pilot.app.screen.query_one("#detail-tcl").render())
        assert "read_verilog" in tcl and "n2_eco_" in tcl and "ECO library" in tcl
        arts = str(pilot.app.screen.query_one("#detail-artifacts").render())
        assert "child netlist" in arts and "mac16.v" in arts
