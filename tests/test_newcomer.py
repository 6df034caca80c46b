"""Issue #10, point by point: what a newcomer found broken, confusing or missing in the console
and the CLI.  Each test is named after what it checks; the point number is in its docstring."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from noodle2.console.app import Noodle2App
from noodle2.console.screens.study import StudyScreen
from noodle2.console.widgets.tables import StageTable, TrialTable
from noodle2.engine.fsutil import StudyLock
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study
from tests.console_fixtures import T0, running_study, synthetic_study
from tests.waiting import journal_lines, settle, wait_until


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NOODLE2_THEME", raising=False)


def sh(*args, cwd=ROOT, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*NOODLE2, *args], cwd=cwd, env=env or cli_env(), capture_output=True, text=True, **kw)


def cells(table, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def open_view(pilot, d: Path) -> StudyScreen:
    pilot.app.open_study(d)
    screen = await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen) and pilot.app.screen, "the study view")
    await settle(pilot, lambda: screen.redraws > 0 and screen.query_one(StageTable).row_count, "the first redraw")
    return screen


def app_at(root: Path, clock=lambda: T0 + 100) -> Noodle2App:
    return Noodle2App(root, theme="dark", clock=clock, samples=root)


# --- broken -------------------------------------------------------------------------------------------

def test_theme_option_works_after_the_command_too():
    """1. `console DIR --theme high-contrast` and `run FILE --theme light` are accepted."""
    env = cli_env(NOODLE2_CONSOLE_SMOKE="1")
    assert sh("console", "studies", "--theme", "high-contrast", env=env).returncode == 0
    assert sh("--theme", "light", "console", "studies", env=env).returncode == 0
    r = sh("run", "sample_studies/quickstart.toml", "--theme", "light", "--dry-run")
    assert r.returncode == 0 and "study quickstart" in r.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unknown_theme_is_a_usage_error_listing_the_themes(how):
    """2. --theme foo, or a stale NOODLE2_THEME=bogus: exit 2, the valid themes, no traceback."""
    env = cli_env(NOODLE2_CONSOLE_SMOKE="1", **({"NOODLE2_THEME": "bogus"} if how == "env" else {}))
    r = sh("console", "studies", *(["--theme", "foo"] if how == "flag" else []), env=env)
    assert r.returncode == 2 and "N2-E117" in r.stderr and "dark, light, high-contrast" in r.stderr
    assert "Traceback" not in r.stderr


def test_init_writes_a_study_file_that_validates_and_runs(tmp_path):
    """3. `noodle2 init` exists, its file validates and runs as it is, and N2-E101's hint names it."""
    r = sh("init", str(tmp_path / "mine.toml"))
    assert r.returncode == 0, r.stderr
    assert sh("validate", str(tmp_path / "mine.toml")).returncode == 0
    text = (tmp_path / "mine.toml").read_text()
    assert text.count("#") >= 15 and "[[stages]]" in text and "[verify]" in text  # commented, complete
    r = sh("run", str(tmp_path / "mine.toml"), "--unattended", "--root", str(tmp_path / "studies"), timeout=300)
    assert r.returncode == 0 and "complete" in r.stdout, r.stderr[-2000:]
    again = sh("init", str(tmp_path / "mine.toml"))
    assert again.returncode == 2 and "--force" in again.stderr  # an existing file is never overwritten
    broken = tmp_path / "broken.toml"
    broken.write_text("[study]\nname = \"b\"\n")
    assert "noodle2 init FILE" in sh("validate", str(broken)).stderr


@pytest.mark.parametrize("cmd", ["watch", "validate", "status"])
def test_a_closed_pipe_ends_quietly(cmd):
    """4. `noodle2 watch DIR | head`: no BrokenPipeError traceback."""
    d = ROOT / "tests" / "data" / "golden_v1" / "quickstart"
    args = {"watch": [str(d)], "validate": ["sample_studies/quickstart.toml"], "status": [str(d)]}[cmd]
    p = subprocess.Popen([*NOODLE2, cmd, *args], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # `head -1` leaves
    _, err = p.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err and p.returncode in (0, 1, 3)


async def test_after_a_stop_in_flight_trials_show_interrupted_and_no_worker(tmp_path):
    """5. The engine has gone: header interrupted, workers 0, stage run 0, trials interrupted."""
    d = running_study(tmp_path, interrupted=True)
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        screen = await open_view(pilot, d)
        assert "[interrupted]" in screen.header_text() and "workers 0/2" in screen.header_text()
        stage = screen.query_one(StageTable)
        refine = cells(stage, 2)
        assert refine[0].startswith("⏸ refine") and refine[3] == "0"
        statuses = [cells(screen.query_one(TrialTable), i)[1] for i in range(6)]
        assert statuses.count("⏸ interrupted") == 3 and "▶ running" not in statuses


async def test_workers_never_exceed_max_parallel(tmp_path):
    """6. Three trials are open (one reading its outputs) at max_parallel 2: workers 2/2."""
    d = running_study(tmp_path)
    lock = StudyLock(d)
    lock.acquire()  # the test process stands in for the engine
    try:
        async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
            screen = await open_view(pilot, d)
            assert len(screen.state.running()) == 3 and screen.state.in_flight() == 2  # not clamped: counted
            assert "workers 2/2" in screen.header_text()
            assert cells(screen.query_one(StageTable), 2)[3] == "2"
    finally:
        lock.release()


async def test_attaching_shows_the_stage_that_runs(tmp_path):
    """7. Opened while stage 1 runs: the trial table shows stage 1, not stage 0."""
    d = running_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(120, 36)) as pilot:
        screen = await open_view(pilot, d)
        assert screen.stage == 1 and screen.query_one(TrialTable).row_count == 6


async def test_running_best_and_counts_while_a_stage_runs_and_no_bar_without_metrics(tmp_path):
    """8. Best WNS and the funnel count finished trials before the stage ends; an empty study
    draws no sparkline."""
    d = running_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        screen = await open_view(pilot, d)
        refine = cells(screen.query_one(StageTable), 2)
        assert refine[8] == "-2.350" and refine[4] == "2"  # best so far, finished so far
        funnel = str(screen.query_one("#funnel").render())
        assert "2/6→0 -2.350" in funnel
        trend = str(screen.query_one("#trend").render()).splitlines()
        # #22.16: names, values and a bar for every stage, the first one's gain included (it was drawn empty)
        assert trend[0].split()[:2] == ["explore", "-2.530"] and trend[1].split()[:2] == ["refine", "-2.350"]
        bars = [ln.count("█") for ln in trend]
        assert 0 < bars[0] < bars[1] == 12
    empty = tmp_path / "empty"
    (empty / "inputs").mkdir(parents=True)
    (empty / "inputs" / "study.toml").write_text("")
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        pilot.app.open_study(empty)
        screen = await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen) and pilot.app.screen.redraws
                              and pilot.app.screen, "the empty study's view")
        assert str(screen.query_one("#trend").render()) == "—"


async def test_cancelled_trials_are_counted_and_named_whole(tmp_path):
    """10. A cancelled trial: counted in ⊘, shown as "⊘ cancelled", logged as cancelled."""
    d = running_study(tmp_path, cancelled=True)
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        screen = await open_view(pilot, d)
        assert cells(screen.query_one(StageTable), 2)[6] == "1"
        table = screen.query_one(TrialTable)
        row = [cells(table, i) for i in range(table.row_count) if "mac16_1_4" in cells(table, i)[0]][0]
        assert row[1] == "⊘ cancelled"
        log = "\n".join(screen.query_one("#engine-log").lines)
        assert "⊘ mac16_1_4" in log and "cancelled: cancelled by operator" in log and "✗ mac16_1_4" not in log


async def test_resume_and_stop_on_a_finished_study_say_it_is_finished(tmp_path):
    """11. r and s on a finished study: said plainly, no confirmation asked."""
    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(120, 36)) as pilot:
        screen = await open_view(pilot, d)
        seen = []
        screen.notify = lambda msg, **kw: seen.append(msg)
        await pilot.press("r")
        await pilot.press("s")
        await settle(pilot, lambda: len(seen) == 2, "two notifications")
        assert seen == ["synth is finished (complete): nothing to resume", "synth is finished (complete): nothing to stop"]
        assert isinstance(pilot.app.screen, StudyScreen)  # no ConfirmScreen


async def test_quitting_while_the_engine_runs_says_it_goes_on(tmp_path):
    """12. q while an engine runs: its PID and how to attach again."""
    d = running_study(tmp_path)
    lock = StudyLock(d)
    lock.acquire()
    try:
        app = app_at(tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await open_view(pilot, d)
            await pilot.press("q")  # the key, not the method: the screens are gone once the app exits
        text = app.goodbye
        assert f"the engine goes on (PID {os.getpid()})" in text and f"noodle2 watch {d}" in text
    finally:
        lock.release()


async def test_sort_shows_in_the_header(tmp_path):
    """13. o marks the sorted column in the trial table's header (not only in a toast)."""
    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        screen = await open_view(pilot, d)
        table = screen.query_one(TrialTable)
        assert str(table.columns["case"].label) == "case ▲"
        await pilot.press("o", "o")
        assert str(table.columns["wns"].label) == "WNS ns ▼" and str(table.columns["case"].label) == "case"


async def test_paused_shows_since_when_and_the_clock_keeps_running(tmp_path):
    """14. Paused: "paused since …" and the elapsed time is wall time, not frozen."""
    d = running_study(tmp_path, paused=True)
    now = [T0 + 100]
    lock = StudyLock(d)
    lock.acquire()
    try:
        async with app_at(tmp_path, clock=lambda: now[0]).run_test(size=(160, 48)) as pilot:
            screen = await open_view(pilot, d)
            assert "[paused since " in screen.header_text()
            first = screen.header_text().split("elapsed ")[1][:7]
            now[0] += 65
            second = screen.header_text().split("elapsed ")[1][:7]
            assert (first, second) == ("0:01:39", "0:02:44")  # started at T0 + 0.5 s
    finally:
        lock.release()


def test_units_people_read_are_ns_mw_and_um2(tmp_path):
    """16. The headless summary says ns, like the console (raw units stay in the files)."""
    r = sh("run", str(fake_study(tmp_path)), "--unattended", "--root", str(tmp_path / "s"))
    last = r.stdout.strip().splitlines()[-1]
    assert "WNS -" in last and " ns (base -2.000 ns)" in last and "wns_ps" not in last


def test_ctrl_c_prints_a_resume_command_that_can_be_pasted(tmp_path):
    """17. Run through the `noodle2` script: the resume hint names that script."""
    script = Path(sys.executable).with_name("noodle2")
    if not script.exists():
        pytest.skip("no noodle2 script in this environment (pip install -e . makes one)")
    d = tmp_path / "study"
    p = subprocess.Popen([str(script), "run", str(fake_study(tmp_path)), "--unattended", "--study-dir", str(d)],
                         cwd=ROOT, env=cli_env(N2_FAKE_DELAY="0.3"), stdout=subprocess.PIPE, text=True)
    wait_until(lambda: (d / "journal.jsonl").exists() and b"trial_finished" in (d / "journal.jsonl").read_bytes(),
               "a finished trial", progress=lambda: journal_lines(d))
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3 and f"resume with: {script} resume {d}" in out


async def test_survivors_are_marked_the_base_has_a_row_and_the_output_tab_names_its_trial(tmp_path):
    """21. ◆ on survivors, a base row in the stage table, the output tab names the trial."""
    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(160, 48)) as pilot:
        screen = await open_view(pilot, d)
        table = screen.query_one(TrialTable)
        marked = [cells(table, i)[0] for i in range(table.row_count) if cells(table, i)[0].startswith("◆")]
        assert marked == ["◆ " + c for c in screen.state.stages[2].survivors]
        assert cells(screen.query_one(StageTable), 0)[0] == "✓ base"
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        await settle(pilot, lambda: screen.stage == -1 and table.row_count == 1, "the base case's row")
        assert "mac16" in cells(table, 0)[0]
        tab = screen.query_one("TabbedContent").get_tab("tab-trial")
        await settle(pilot, lambda: str(tab.label) == "output: mac16", "the output tab's title")


def test_status_json_and_every_json_flag_has_help():
    """22. status --json; --json of watch and resume explained in --help."""
    d = ROOT / "tests" / "data" / "golden_v1" / "fake"
    r = sh("status", str(d), "--json")
    s = orjson.loads(r.stdout)
    assert s["name"] == "golden" and s["status"] == "complete" and s["trials"] == {"finished": 10, "planned": 10}
    assert [st["cancelled"] for st in s["stages"]] == [1, 0] and s["best"]["case"]
    for cmd in ("watch", "resume", "status", "run"):
        text = sh(cmd, "--help").stdout
        line = next(ln for ln in text.splitlines() if ln.strip().startswith("--json"))
        assert len(line.split("--json", 1)[1].strip()) > 10, (cmd, line)


def test_the_plan_names_liberty_files_when_they_replace_the_tech(tmp_path):
    """23. `tech osu018` is not shown when liberty = [...] overrides it."""
    lib = tmp_path / "mine.lib"
    shutil.copy("/usr/share/qflow/tech/osu018/osu018_stdcells.lib", lib)
    text = (ROOT / "sample_studies/quickstart.toml").read_text().replace('tech = "osu018"', f'liberty = ["{lib}"]')
    (tmp_path / "s.toml").write_text(text.replace("designs/", f"{ROOT}/sample_studies/designs/"))
    out = sh("validate", str(tmp_path / "s.toml")).stdout
    assert "liberty mine.lib" in out and "tech osu018" not in out


async def test_the_palette_offers_one_list_of_themes(tmp_path):
    """25. Ctrl+P lists noodle2's three themes, not Textual's twenty."""
    synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test() as pilot:
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        assert "Theme" not in titles
        assert [t for t in titles if t.startswith("Theme")] == ["Theme: dark", "Theme: light", "Theme: high-contrast"]


def test_plurals(tmp_path):
    """26. "1 survivor", "1 stage", "1 trial"."""
    stages = '[[stages]]\nname = "one"\ntrials = 1\nsurvivors = 1\necos = ["pin_swap"]\n'
    r = sh("run", str(fake_study(tmp_path, stages=stages)), "--unattended", "--root", str(tmp_path / "s"))
    out = r.stdout
    assert "1 stage, 1 trial + base case" in out and "1 trial from 1 parent" in out and "; survivor fake_0_0" in out
    assert "1 survivors" not in out and "1 stages" not in out


# --- missing: any study file from the console --------------------------------------------------------

async def test_new_run_from_any_study_file_with_path_completion(tmp_path, monkeypatch):
    """20. n opens a chooser: a typed path (tab completes it) of a study file outside the repo."""
    from noodle2.console.screens.choose import ChooseStudyFile

    elsewhere = tmp_path / "my designs" / "fresh"
    elsewhere.mkdir(parents=True)
    study = fake_study(elsewhere, name="mine", stages='[[stages]]\nname = "one"\ntrials = 1\nsurvivors = 1\n'
                                                      'ecos = ["pin_swap"]\n')
    root = tmp_path / "studies"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    async with Noodle2App(root, theme="dark").run_test(size=(120, 36)) as pilot:
        await pilot.press("n")
        chooser = await settle(pilot, lambda: isinstance(pilot.app.screen, ChooseStudyFile) and pilot.app.screen,
                               "the chooser")
        box = chooser.query_one("#choose-path")
        await pilot.press(*"my", "tab")
        await settle(pilot, lambda: box.value == "my designs/", "tab completion")
        await pilot.press(*"fr", "tab")
        await settle(pilot, lambda: box.value == "my designs/fresh/", "the next component")
        await pilot.press("m", "tab", "enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the new study's view")
        d = pilot.app.screen.dir
    wait_until(lambda: b"study_finished" in (d / "journal.jsonl").read_bytes(), "the spawned engine to finish",
               progress=lambda: journal_lines(d))
    assert d.parent == root and d.name.startswith("mine-") and str(study) in (d / "provenance.json").read_text()


async def test_follow_off_then_on_follows_the_engine_log_again(tmp_path):
    """#22.4: f (off), lines arrive, f (on): the pane is at the end and stays there as lines come."""
    from textual.widgets import Log

    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(120, 36)) as pilot:
        screen = await open_view(pilot, d)
        log = screen.query_one("#engine-log", Log)
        await pilot.press("f")
        log.write_lines([f"while off {i}" for i in range(200)])
        await pilot.pause()
        assert not log.is_vertical_scroll_end
        await pilot.press("f")
        await pilot.pause()
        log.write_lines([f"after on {i}" for i in range(50)])
        await settle(pilot, lambda: log.is_vertical_scroll_end and log.max_scroll_y > 0, "the log at its end")
        assert log.scroll_y == log.max_scroll_y


async def test_w_twice_writes_one_report_and_the_toast_stays_until_it_is_written(tmp_path, monkeypatch):
    """#22.18: two writers raced, and "writing the report…" vanished after 2 s while it was still written."""
    import threading

    from noodle2.engine.reports import summary

    gate, calls = threading.Event(), []

    def slow_write(d, s):
        calls.append(d)
        gate.wait(60)
        return {"out": str(d / "report"), "notes": []}

    monkeypatch.setattr(summary, "write", slow_write)
    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(120, 36)) as pilot:
        screen = await open_view(pilot, d)
        seen = []
        real = screen.notify
        screen.notify = lambda msg, **kw: (seen.append((msg, kw.get("timeout"))), real(msg, **kw))
        await pilot.press("w")
        await settle(pilot, lambda: calls, "the writer to start")
        await pilot.press("w")
        await pilot.pause()
        assert len(calls) == 1 and seen[1][0] == "the report is still being written…"
        assert seen[0] == ("writing the report…", 3600)
        gate.set()
        await settle(pilot, lambda: not screen.reporting, "the report written")
        assert seen[-1][0] == f"report written: {d / 'report' / 'summary.html'}"
        await pilot.press("w")  # once written, w writes again
        await settle(pilot, lambda: len(calls) == 2, "a second report")


async def test_the_header_widens_with_the_window_and_elapsed_never_goes_back(tmp_path):
    """#22.15: after 80 -> 160 columns the header stayed compact; after kill -9 elapsed went 0:00:04 -> 0:00:03."""
    from noodle2.console.widgets.header import StudyHeader, clock_text

    d = synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(80, 24)) as pilot:
        screen = await open_view(pilot, d)
        narrow = str(screen.query_one(StudyHeader).render())
        await pilot.resize_terminal(160, 48)
        await settle(pilot, lambda: str(screen.query_one(StudyHeader).render()) != narrow, "the header to redraw")
        assert "workers" in str(screen.query_one(StudyHeader).render()) and "workers" not in narrow
        s = screen.state
        screen.elapsed_shown = (s.last_event_at - s.started_at) + 1.0  # the clock had run past the last event
        shown = screen.elapsed_shown
        assert f"elapsed {clock_text(shown)}" in screen.header_text()  # not the shorter span to the last event
        assert screen.elapsed_shown == (s.last_event_at - s.started_at) + 1.0  # kept, not lowered


async def test_below_80x24_the_console_says_the_window_is_too_small(tmp_path):
    """#22.11: at 60x20 the picker showed `18/1` and `100/` and the header `WNS -2.6`: cut digits."""
    from noodle2.console.app import TooSmallScreen

    synthetic_study(tmp_path)
    async with app_at(tmp_path).run_test(size=(60, 20)) as pilot:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TooSmallScreen), "the too-small notice")
        text = str(pilot.app.screen.query_one("#too-small").render())
        assert "at least 80x24; this one is 60x20" in text
        await pilot.resize_terminal(100, 30)
        await settle(pilot, lambda: not isinstance(pilot.app.screen, TooSmallScreen), "the picker back")
        assert type(pilot.app.screen).__name__ == "PickerScreen"
        await pilot.resize_terminal(70, 30)
        await settle(pilot, lambda: isinstance(pilot.app.screen, TooSmallScreen), "the notice again on shrinking")


async def test_tab_with_nothing_to_complete_says_so_and_stays(tmp_path, monkeypatch):
    """#22.19: Tab left the path box silently when nothing matched; the prompt read `from  (type…`."""
    from noodle2.console.screens.choose import ChooseStudyFile

    (tmp_path / "studies").mkdir()
    monkeypatch.chdir(tmp_path)
    async with Noodle2App(tmp_path / "studies", theme="dark").run_test(size=(120, 36)) as pilot:
        await pilot.press("n")
        chooser = await settle(pilot, lambda: isinstance(pilot.app.screen, ChooseStudyFile) and pilot.app.screen,
                               "the chooser")
        assert str(chooser.query_one("#choose-title").render()).startswith("Start a new run from: a study file.")
        box = chooser.query_one("#choose-path")
        await pilot.press(*"zz", "tab")
        await pilot.pause()
        assert box.has_focus and box.value == "zz"
        assert "nothing to complete" in str(chooser.query_one("#choose-error").render())


async def test_long_log_lines_wrap_at_the_pane_width_and_again_on_resize(tmp_path):
    """#22.17: a long line was cut at the pane's edge; now it wraps (continuations indented), whole."""
    d = synthetic_study(tmp_path)
    long = "N2M " + " ".join(f"word{i:03d}" for i in range(60))  # 483 characters
    with open(d / "trials" / "mac16_0_0" / "stdout.log", "a") as f:
        f.write(long + "\nlast line without its newline")
    async with app_at(tmp_path).run_test(size=(80, 24)) as pilot:
        screen = await open_view(pilot, d)
        await pilot.press("left_square_bracket", "left_square_bracket")
        table = screen.query_one(TrialTable)
        await settle(pilot, lambda: table.row_count == 8, "stage 0's trials")
        table.move_cursor(row=[str(k.value) for k in table.rows].index("mac16_0_0"))
        log = screen.query_one("#trial-log")
        await pilot.press("t")
        await settle(pilot, lambda: any("without its newline" in x for x in log.lines) and log.size.width,
                     "the output tab shown, last line too")
        width = log.scrollable_content_region.width

        def whole(lines):
            text = "\n".join(lines)
            return text[text.index("N2M word000"):].split("\nlast line")[0].replace("\n  ", " ")

        assert max(len(x) for x in log.lines) < width and whole(log.lines) == long
        assert str(screen.query_one("TabbedContent").get_tab("tab-trial").label) == "output: mac16_0_0"
        assert "── stdout.log ──" in log.lines  # the file's name, not the case again under its own tab
        await pilot.resize_terminal(140, 30)
        await settle(pilot, lambda: log.scrollable_content_region.width > width + 40, "the wider pane")
        await settle(pilot, lambda: max(len(x) for x in log.lines) > width, "the lines wrapped again, wider")
        assert max(len(x) for x in log.lines) < log.scrollable_content_region.width and whole(log.lines) == long


def test_setup_leaves_the_tests_example_plugin_out_of_the_users_noodle2():
    """#22.22: `noodle2 ecos` listed the tests' example ECO and metric as if they were the product."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the user's shell, not the tests'
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "noodle2"), "ecos"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "resize_critical" in r.stdout, r.stderr
    assert "upsize_first_driver" not in r.stdout and "example" not in r.stdout
    with_tests = sh("ecos")  # the tests' environment has it on its path
    assert "upsize_first_driver" in with_tests.stdout


async def test_a_wide_report_scrolls_sideways_instead_of_wrapping_into_column_0(tmp_path):
    """#22.19: the plan's stage table wrapped into column 0 in the `d` dialog at 80x24."""
    from noodle2.console.screens.modals import TextScreen
    from noodle2.engine.study.load import load_study
    from noodle2.engine.study.plan import format_plan

    text = format_plan(load_study(ROOT / "sample_studies" / "quickstart.toml"))
    widest = max(len(line) for line in text.splitlines())
    async with Noodle2App(tmp_path, theme="dark").run_test(size=(80, 24)) as pilot:
        pilot.app.push_screen(TextScreen("plan", text))
        scroll = await settle(pilot, lambda: isinstance(pilot.app.screen, TextScreen)
                              and pilot.app.screen.query_one("#text-scroll"), "the report")
        body = pilot.app.screen.query_one("#text-body")
        await settle(pilot, lambda: body.size.width, "the report laid out")
        assert widest > 76 and body.size.width >= widest and body.size.height <= len(text.splitlines()) + 1  # no line wrapped
        assert scroll.max_scroll_x >= widest - scroll.size.width


def test_status_shows_local_time_with_its_zone(tmp_path):
    """#23: the journal keeps UTC seconds; people read local time, zone named."""
    import time

    d = synthetic_study(tmp_path)
    for tz, name, hours in (("UTC", "UTC", 0), ("Asia/Tokyo", "JST", 9)):
        r = subprocess.run([*NOODLE2, "status", str(d)], cwd=ROOT, env=cli_env(TZ=tz), capture_output=True, text=True,
                           timeout=60)
        want = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 + hours * 3600))
        assert r.returncode == 0 and f"started {want} {name}" in r.stdout, r.stdout
