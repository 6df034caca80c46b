"""Pause, resume, cancel and stop from the console against a real engine that another process
started; the console attaches, and the study outlives the console."""
from __future__ import annotations

import os
import subprocess

from noodle2.console.app import Noodle2App
from noodle2.console.screens.study import StudyScreen
from noodle2.console.widgets.tables import TrialTable
from noodle2.engine.fsutil import lock_holder
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study
from tests.waiting import journal_lines, settle, wait_until

STAGES = """
[[stages]]
name = "long"
trials = 12
survivors = 2
ecos = ["pin_swap", "resize_critical"]
"""


async def test_pause_resume_cancel_stop_then_resume_from_console(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("N2_FAKE_DELAY", "0.6")  # the spawned resume engine inherits it
    path = fake_study(tmp_path, stages=STAGES)
    root = tmp_path / "studies"
    d = root / "live"
    engine = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT,
                              env=cli_env(N2_FAKE_DELAY="0.6"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: (d / JOURNAL).exists(), "the study's journal")
    app = Noodle2App(root, theme="dark", open_study=d)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = pilot.app.screen
        assert isinstance(screen, StudyScreen)
        s = screen.state
        await settle(pilot, lambda: len(s.running()) == 2, "two running trials")  # attached: it sees the other process's
        assert "workers 2/2" in screen.header_text()

        await pilot.press("p")
        await settle(pilot, lambda: s.paused, "the pause to be acknowledged")
        ack_seq = s.controls[-1]["seq"]
        await settle(pilot, lambda: not s.running(), "the running trials to finish")  # running ones finish...
        await pilot.pause(0.5)  # a window for a wrongly started trial to show up; nothing waits on it
        started_after = [e for e in read_events(d / JOURNAL).events if isinstance(e, ev.TrialStarted) and e.seq > ack_seq]
        assert not started_after  # ...and no new trial starts while paused
        assert "[paused since " in screen.header_text() and "workers 0/2" in screen.header_text()

        await pilot.press("r")
        await settle(pilot, lambda: not s.paused and s.running(), "trials running again")
        table = screen.query_one(TrialTable)
        running = s.running()[0].case_id
        table.move_cursor(row=[str(k.value) for k in table.rows].index(running))
        await pilot.press("c")
        await settle(pilot, lambda: s.trials[running].status == "cancelled", "the cancelled trial")
        assert s.controls[-1]["request"] == "cancel" and s.controls[-1]["target"] == running

        await pilot.press("s")
        await settle(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmScreen", "the stop confirmation")
        await pilot.press("y")  # confirm the stop
        assert engine.wait(timeout=30) == 3
        await settle(pilot, lambda: s.status == "interrupted", "the study to show interrupted")
        assert "[interrupted]" in screen.header_text()

        await pilot.press("r")  # no engine now: the console starts one, detached
        await settle(pilot, lambda: lock_holder(d) is not None and s.status == "running", "a new engine")
        pid = lock_holder(d)
    # the console is gone; the engine it started keeps running and finishes the study
    assert os.getsid(pid) == pid  # its own session: SIGHUP from a lost terminal does not reach it
    wait_until(lambda: recover(d).state.status != "running", "the detached engine to finish the study",
               progress=lambda: journal_lines(d))
    final = recover(d).state
    assert final.status == "complete" and final.resumes == 1
    assert final.trials[running].status == "cancelled"  # a cancelled trial is not re-run on resume
