"""The console through Pilot: picker → open → filter → detail → back, help, themes, sorting."""
from __future__ import annotations

import gc

import pytest

from noodle2.console.app import Noodle2App
from noodle2.console.screens.detail import TrialDetail
from noodle2.console.screens.modals import HelpScreen
from noodle2.console.screens.picker import PickerScreen
from noodle2.console.screens.study import StudyScreen
from noodle2.console.widgets.tables import TrialTable
from tests.console_fixtures import T0, running_study, synthetic_study
from tests.waiting import settle


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NOODLE2_THEME", raising=False)


def app_for(root, **kw):
    return Noodle2App(root, clock=lambda: T0 + 100, samples=root, **kw)


def cells(table, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def test_picker_lists_studies_with_state_progress_best_and_age(tmp_path):
    synthetic_study(tmp_path)
    synthetic_study(tmp_path, "synth-20270115-100000", finish_stages=1)
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 30)) as pilot:
        table = pilot.app.screen.query_one("#studies")
        await settle(pilot, lambda: table.row_count == 2, "both studies listed")
        rows = {cells(table, i)[0]: cells(table, i) for i in range(table.row_count)}
        done = rows["synth-20270115-090000"]  # stages by name, as everywhere else (#10.9)
        assert done[1:4] == ["✓ complete", "polish", "18/18"] and done[4].startswith("-2.") and "(+" in done[4]
        assert done[5].endswith("s ago") and done[6].startswith("2027-01-15") and done[7:] == ["ana", "mac16, demo"]
        part = rows["synth-20270115-100000"]
        assert part[1:4] == ["⏸ interrupted", "refine", "8/18"]


async def test_a_study_s_own_text_is_shown_never_parsed_as_markup(tmp_path):
    """author = "[/]" once crashed the picker for every study in its folder (#17.10)."""
    synthetic_study(tmp_path, meta={"author": "[/]", "tags": ["[bold]x", "[link=y]"]})
    synthetic_study(tmp_path, "synth-20270115-100000")
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 30)) as pilot:
        table = pilot.app.screen.query_one("#studies")
        await settle(pilot, lambda: table.row_count == 2, "both studies listed")
        rows = {cells(table, i)[0]: cells(table, i) for i in range(table.row_count)}
        assert rows["synth-20270115-090000"][7:] == ["[/]", "[bold]x, [link=y]"]
        await pilot.press("enter")
        await settle(pilot, lambda: type(pilot.app.screen).__name__ == "StudyScreen", "the study view")


async def test_open_filter_detail_back(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(160, 48)) as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        trials = pilot.app.screen.query_one(TrialTable)
        assert pilot.app.screen.stage == 2  # attaching shows the active (here: the last) stage
        assert gc.get_freeze_count() > 0  # the shown study is kept from the collector (#20)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot, lambda: trials.row_count == 8, "stage 0's trials")
        await pilot.press("slash", *"tool_crash", "enter")
        await settle(pilot, lambda: trials.row_count == 1, "the filter")
        assert "mac16_0_3" in cells(trials, 0)[0] and "tool_crash" in cells(trials, 0)[1]
        await pilot.press("escape")  # clears the filter
        await settle(pilot, lambda: trials.row_count == 8, "the filter to clear")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, TrialDetail), "the trial detail")
        metrics = pilot.app.screen.query_one("#detail-metrics")
        wns_row = cells(metrics, 0)
        assert wns_row[0] == "WNS ns" and wns_row[2] == wns_row[3]  # parent is the base case
        assert "read_liberty" in str(pilot.app.screen.query_one("#detail-tcl").render())
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "back to the study")
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PickerScreen), "back to the picker")
        await settle(pilot, lambda: gc.get_freeze_count() == 0, "the closed view to let go of it")


async def test_sorting_stage_switch_and_trial_output(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(160, 48)) as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        screen = pilot.app.screen
        trials = screen.query_one(TrialTable)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot, lambda: trials.row_count == 8, "stage 0's trials")
        await pilot.press("o", "o")  # case -> status -> wns (best first)
        assert trials.sort_by == "wns"
        await settle(pilot, lambda: cells(trials, 0)[2] == "-2.471", "the table sorted by WNS, best first")
        wns = [float(cells(trials, i)[2]) for i in range(trials.row_count) if cells(trials, i)[2] != "—"]
        assert wns == sorted(wns, reverse=True)
        await pilot.press("right_square_bracket")
        await settle(pilot, lambda: screen.stage == 1 and trials.row_count == 6, "stage 1's trials")
        await pilot.press("left_square_bracket")
        await settle(pilot, lambda: screen.stage == 0 and trials.row_count == 8, "stage 0 again")
        trials.move_cursor(row=[str(k.value) for k in trials.rows].index("mac16_0_0"))
        await settle(pilot, lambda: "N2ARTIFACTS" in "\n".join(screen.query_one("#trial-log").lines),
                     "the selected trial's output")
        assert any("study synth complete" in line for line in screen.query_one("#engine-log").lines)


async def test_help_lists_every_binding_of_the_screen(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")
        table = pilot.app.screen.query_one("#help-table")
        keys = {cells(table, i)[0] for i in range(table.row_count)}
        assert {"p", "r", "s", "c", "/", "o", "f", "l", "esc", "?", "q", "[", "]", "t"} <= keys
        assert str(pilot.app.screen.query_one("#help-title").render()).startswith("Keys — the live study view")
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, StudyScreen)
        tabs = pilot.app.screen.query_one("TabbedContent")
        assert tabs.active == "tab-engine"
        await pilot.press("t")  # #22.20: the output tab has a key, and the help names it
        assert tabs.active == "tab-trial"


async def test_theme_choice_order_and_memory(tmp_path, monkeypatch):
    synthetic_study(tmp_path)
    async with app_for(tmp_path).run_test() as pilot:
        assert pilot.app.theme == "noodle2-dark"
        pilot.app.theme = "noodle2-high-contrast"  # as the palette's Theme command does
    async with app_for(tmp_path).run_test() as pilot:
        assert pilot.app.theme == "noodle2-high-contrast"  # remembered
    monkeypatch.setenv("NOODLE2_THEME", "light")
    async with app_for(tmp_path).run_test() as pilot:
        assert pilot.app.theme == "noodle2-light"
    async with app_for(tmp_path, theme="dark").run_test() as pilot:
        assert pilot.app.theme == "noodle2-dark"  # --theme wins, and is not remembered
    from noodle2.console.themes import remembered
    assert remembered() == "noodle2-high-contrast"  # env and --theme choices are not remembered


async def test_palette_offers_actions_and_themes(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test() as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        assert {"Theme: dark", "Theme: light", "Theme: high-contrast", "Study: pause", "Study: stop"} <= set(titles)


async def test_leaderboard_is_a_sortable_table(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(160, 40)) as pilot:
        await pilot.press("enter", "l")
        t = await settle(pilot, lambda: pilot.app.screen.query_one("#leaderboard"), "the leaderboard")
        await settle(pilot, lambda: t.row_count == 1, "the journaled table")
        # the table the engine journaled when it planned the last stage (polish: pin_swap only), as it was
        assert [cells(t, i)[:3] for i in range(t.row_count)] == [["pin_swap", "mixed", "4"]]
        assert "as used to plan stage polish" in str(pilot.app.screen.query_one("#detail-title").render())
        await pilot.press("o", "o", "o")  # rank -> eco -> prior -> trials (desc)
        assert str(t.columns["trials"].label) == "trials ▼"
        assert "sorted by trials ▼" in str(pilot.app.screen.query_one("#detail-title").render())
        assert "gained: trials that improved" in str(pilot.app.screen.query_one("#board-legend").render())
        # #21: what the trials measured, as the next study would use it
        from noodle2.engine.policy.learn import lessons, recommendations, study_ranking

        learned = str(pilot.app.screen.query_one("#board-lessons").render())
        state = pilot.app.screen.s
        assert "`noodle2 suggest DIR` writes it" in learned
        assert all(line in learned for line in recommendations(*lessons(state, study_ranking(state))))
        await pilot.press("escape")
        assert type(pilot.app.screen).__name__ == "StudyScreen"


async def test_damaged_journal_shows_a_coded_error_not_a_crash(tmp_path):
    d = synthetic_study(tmp_path)
    lines = (d / "journal.jsonl").read_bytes().split(b"\n")
    lines[3] = b'{"type": "trial_fin'
    (d / "journal.jsonl").write_bytes(b"\n".join(lines))
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 30)) as pilot:
        pilot.app.open_study(d)
        body = await settle(pilot, lambda: pilot.app.screen.query_one("#text-body"), "the error screen")
        assert "N2-E205" in str(body.render())


@pytest.mark.parametrize("tail_bytes", [None, 200_000])
async def test_opens_a_study_longer_than_the_log_replay_window(tmp_path, monkeypatch, tail_bytes):
    """A 3,000-trial stage: the table holds its first page (#20: it says so, and the filter
    reaches the rest); the log keeps its last 2,000 lines.  With a journal over TAIL_BYTES the
    log reads only the journal's tail and says where it starts."""
    from noodle2.console.widgets import logs
    from noodle2.console.widgets.tables import PAGE
    from noodle2.engine.journal import events as ev

    if tail_bytes is not None:
        monkeypatch.setattr(logs, "TAIL_BYTES", tail_bytes)
    d = tmp_path / "big"
    (d / "inputs").mkdir(parents=True)
    (d / "inputs" / "study.toml").write_text("")
    n = 3000  # 6,000+ events: more than the 2,000 log lines the view keeps
    evs = [ev.StudyStarted(name="big", spec_hash="h", spec={}, base_case="b", max_parallel=2, safety_domain="guarded",
                           stages=[{"name": "s", "mode": "sta", "trials": n, "survivors": 1, "after": []}]),
           ev.TrialFinished(case_id="b", metrics={"wns_ps": -9.0}, resources={}),
           ev.StageStarted(stage=0, parents=["b"], plan=[{"case_id": f"b_0_{i}", "index": i, "parent": "b",
                                                         "eco": "noop", "params": {}} for i in range(n)])]
    for i in range(n):
        evs += [ev.TrialStarted(case_id=f"b_0_{i}"),
                ev.TrialFinished(case_id=f"b_0_{i}", metrics={"wns_ps": -float(i)}, resources={})]
    for k, e in enumerate(evs, 1):
        e.seq, e.t = k, T0 + k
    (d / "journal.jsonl").write_bytes(b"".join(ev.encode(e) for e in evs))
    assert (tail_bytes or logs.TAIL_BYTES) < (d / "journal.jsonl").stat().st_size or tail_bytes is None
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 40)) as pilot:
        pilot.app.open_study(d)
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        screen = pilot.app.screen
        await settle(pilot, lambda: screen.query_one(TrialTable).row_count == PAGE, "the table's first page")
        table = screen.query_one(TrialTable)
        assert table.hidden == n - PAGE
        assert f"first {PAGE:,} shown" in str(screen.query_one("#study-right").border_title)
        log = screen.query_one("#engine-log").lines
        assert len(log) <= 2000 and "b_0_2999" in log[-1]
        assert ("not shown here" in log[0]) == (tail_bytes is not None)
        await pilot.press("slash", *"b_0_2999", "enter")  # past the page: the filter finds it
        await settle(pilot, lambda: table.row_count == 1, "the filtered trial")
        assert str(table.coordinate_to_cell_key((0, 0)).row_key.value) == "b_0_2999" and table.hidden == 0


async def test_trial_detail_draws_heatmaps_and_cycles_maps_and_layers(tmp_path, monkeypatch):
    from noodle2.console.widgets.heatmap import Heatmap
    from tests.console_fixtures import synthetic_maps

    monkeypatch.setenv("COLORTERM", "truecolor")
    synthetic_study(tmp_path)
    synthetic_maps(tmp_path / "synth-20270115-090000" / "trials" / "mac16_2_2")
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 50)) as pilot:
        await pilot.press("enter")
        table = pilot.app.screen.query_one("#trials")
        await settle(pilot, lambda: table.row_count == 4, "the last stage's trials")
        row = next(i for i in range(table.row_count) if "mac16_2_2" in cells(table, i)[0])
        table.move_cursor(row=row)
        await pilot.press("enter")
        h = await settle(pilot, lambda: pilot.app.screen.query_one(Heatmap), "the heatmap")
        seen = [h.current.title]
        for key in ("m", "m", "y", "y", "y", "m"):
            await pilot.press(key)
            seen.append(h.current.title)
        assert seen == ["density", "rudy", "congestion metal1", "congestion metal2", "congestion metal3",
                        "congestion metal1", "density"]
        text = str(h.render())
        assert "density: placed cell area / bin area" in text and "▀" in text and "m map · y layer" in text
        await pilot.press("m", "m", "y")
        assert "routed wire length / track capacity" in str(h.render())


@pytest.mark.parametrize("theme,term,colorterm,plain", [
    ("high-contrast", "xterm-256color", "truecolor", True),  # the theme: glyphs whatever the terminal
    ("dark", "xterm", None, True),  # 16 colours over plain SSH
    ("dark", "xterm-256color", None, False),  # 256 colours: half-blocks, Rich picks the nearest colours
])
async def test_heatmap_degrades_to_glyphs_in_high_contrast_and_16_colours(tmp_path, monkeypatch, theme, term,
                                                                          colorterm, plain):
    from noodle2.console.widgets.heatmap import RAMP, Heatmap
    from tests.console_fixtures import synthetic_maps

    monkeypatch.setenv("TERM", term)
    if colorterm:
        monkeypatch.setenv("COLORTERM", colorterm)
    else:
        monkeypatch.delenv("COLORTERM", raising=False)
    synthetic_study(tmp_path)
    synthetic_maps(tmp_path / "synth-20270115-090000" / "trials" / "mac16_2_2")
    async with app_for(tmp_path, theme=theme).run_test(size=(120, 50)) as pilot:
        await pilot.press("enter")
        table = pilot.app.screen.query_one("#trials")
        await settle(pilot, lambda: table.row_count == 4, "the last stage's trials")
        table.move_cursor(row=next(i for i in range(table.row_count) if "mac16_2_2" in cells(table, i)[0]))
        await pilot.press("enter", "m", "m", "y", "y")  # congestion metal3: hot top-right corner
        h = await settle(pilot, lambda: pilot.app.screen.query_one(Heatmap), "the heatmap")
        assert h.plain() is plain
        if not plain:
            assert pilot.app.console.color_system == "256" and "▀" in str(h.render())
            return
        assert "▀" not in str(h.render())
        rows = str(h.render()).splitlines()[1:11]
        assert rows[0].endswith(RAMP[-1] * 6) and rows[-1].startswith(RAMP[1] * 2)  # 0.95 of 0.95; 0.3 of 0.95 is the second glyph


async def test_w_writes_the_report_and_says_where(tmp_path):
    synthetic_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        screen = await settle(pilot, lambda: pilot.app.screen if type(pilot.app.screen).__name__ == "StudyScreen"
                              else None, "the study view")
        await pilot.press("w")
        report = tmp_path / "synth-20270115-090000" / "report" / "summary.html"
        # the notification is a message the app handles after the report is written: wait for it
        await settle(pilot, lambda: any(f"report written: {report}" in str(n.message)
                                        for n in pilot.app._notifications), "the report's notification")
        assert screen.last_report == report and report.is_file()
        assert "mac16_2_0" in (tmp_path / "synth-20270115-090000" / "report" / "trials.csv").read_text()


async def test_a_ray_study_shows_its_cluster_and_the_node_of_every_trial(tmp_path, monkeypatch):
    import os

    from noodle2.console.follow import StudyFollower

    running_study(tmp_path, cluster=True)
    monkeypatch.setattr(StudyFollower, "engine_pid", lambda self: os.getpid())  # an engine holds the study
    async with app_for(tmp_path, theme="dark").run_test(size=(160, 48)) as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        screen = pilot.app.screen
        label = screen.query_one("#cluster")
        await settle(pilot, lambda: "10.0.0.1:6379" in str(label.render()), "the cluster panel")
        text = str(label.render())
        assert text.splitlines()[:3] == ["Ray 10.0.0.1:6379: 3 nodes, 46.5 GB", "CPUs 2/2 busy; trials running 2, queued 4",
                                         "dashboard http://10.0.0.1:8265"]
        assert "10.0.0.7/a1b2c3d4 1 CPU" in text and "last seen" not in text
        assert "ray 2/2 CPU" in str(screen.query_one("#study-header").render())
        trials = screen.query_one(TrialTable)
        await pilot.press("left_square_bracket")
        await settle(pilot, lambda: screen.stage == 0 and trials.row_count == 8, "stage 0's trials")
        assert [label for label, _ in trials.cols][-1] == "node"
        nodes = [cells(trials, i)[-1] for i in range(trials.row_count)]
        assert nodes.count("10.0.0.7:a1b2c3d4") == 4 and nodes.count("10.0.0.8:e5f6a7b8") == 4


async def test_a_local_study_has_no_cluster_panel_and_no_node_column(tmp_path):
    running_study(tmp_path)
    async with app_for(tmp_path, theme="dark").run_test(size=(160, 48)) as pilot:
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, StudyScreen), "the study view")
        trials = pilot.app.screen.query_one(TrialTable)
        await settle(pilot, lambda: trials.row_count > 0, "the trials")
        assert not pilot.app.screen.query_one("#cluster").display
        assert "ray" not in str(pilot.app.screen.query_one("#study-header").render())
        assert "node" not in [label for label, _ in trials.cols]


async def test_cells_that_grow_widen_their_column_never_cut_digits():
    """#22.9: a stage's time was drawn `5` for 5.5 s and a trial `⊘ cancell`: the first rows set
    the width (empty time, `▶ running`) and updates kept it."""
    from textual.app import App

    from noodle2.console.widgets.tables import StageTable
    from noodle2.engine.journal import events as ev
    from noodle2.engine.journal.state import StudyState, fold

    s = StudyState()
    for e in [ev.StudyStarted(name="w", spec_hash="0" * 64, spec={}, base_case="b", max_parallel=1, safety_domain="guarded",
                              stages=[{"name": "s", "mode": "sta", "trials": 1, "survivors": 1, "after": []}]),
              ev.TrialStarted(case_id="b"), ev.TrialFinished(case_id="b", metrics={"wns_ps": -1.0}, resources={}),
              ev.StageStarted(stage=0, parents=["b"], plan=[{"case_id": "b_0_0", "index": 0, "parent": "b",
                                                              "eco": "noop", "params": {}}]),
              ev.TrialStarted(case_id="b_0_0")]:
        fold(s, e)

    class Tables(App):
        def compose(self):
            yield StageTable(id="st")
            yield TrialTable(id="tt")

    async with Tables().run_test(size=(160, 20)) as pilot:
        st, tt = pilot.app.query_one(StageTable), pilot.app.query_one(TrialTable)
        st.show(s, True)
        tt.show(list(s.trials.values()))
        await pilot.pause()
        fold(s, ev.TrialCancelled(case_id="b_0_0", reason="operator"))
        t = s.trials["b_0_0"]
        t.started_at, t.ended_at = 100.0, 105.5
        s.stages[0].started_at, s.stages[0].ended_at = 100.0, 129.5
        st.show(s, True)
        tt.show(list(s.trials.values()))
        await pilot.pause()
        assert tt.get_cell("b_0_0", "status").plain == "⊘ cancelled"
        assert tt.columns["status"].get_render_width(tt) - 2 * tt.cell_padding >= len("⊘ cancelled")
        assert tt.columns["time"].get_render_width(tt) - 2 * tt.cell_padding >= len("5.5s")
        assert str(st.get_cell("0", "time")) == "29.5s"
        assert st.columns["time"].get_render_width(st) - 2 * st.cell_padding >= len("29.5s")


async def test_a_big_stage_moves_a_few_rows_without_measuring_or_rebuilding_the_rest(monkeypatch):
    """#20 at 100k trials: a running trial past the first page joins the table and leaves it,
    a trial that finishes is re-sorted into place, and neither rebuilds the page nor makes
    Textual measure a whole column again (a narrower cell did: seconds per redraw)."""
    from textual.app import App
    from textual.widgets import _data_table

    from noodle2.console.widgets.tables import PAGE
    from noodle2.engine.journal import events as ev
    from noodle2.engine.journal.state import StudyState, fold

    n = PAGE * 3
    s = StudyState()
    for e in [ev.StudyStarted(name="w", spec_hash="0" * 64, spec={}, base_case="b", max_parallel=8, safety_domain="guarded",
                              stages=[{"name": "s", "mode": "sta", "trials": n, "survivors": 1, "after": []}]),
              ev.TrialStarted(case_id="b"), ev.TrialFinished(case_id="b", metrics={"wns_ps": -1.0}, resources={}),
              ev.StageStarted(stage=0, parents=["b"], plan=[{"case_id": f"b_0_{i}", "index": i, "parent": "b",
                                                              "eco": "noop", "params": {}} for i in range(n)])]:
        fold(s, e)
    for i in range(PAGE):
        fold(s, ev.TrialStarted(case_id=f"b_0_{i}"))
        fold(s, ev.TrialFinished(case_id=f"b_0_{i}", metrics={"wns_ps": -1000.0 - i}, resources={}))
    fold(s, ev.TrialStarted(case_id="b_0_7"))  # a retry: "… running" is wider than what it will be

    class One(App):
        def compose(self):
            yield TrialTable(id="tt")

    def shown(tt):
        return [str(r.key.value) for r in tt.ordered_rows]

    measured, cleared = [], []
    real_measure = _data_table.measure
    monkeypatch.setattr(_data_table, "measure", lambda *a, **k: (measured.append(1), real_measure(*a, **k))[1])
    async with One().run_test(size=(160, 30)) as pilot:
        tt = pilot.app.query_one(TrialTable)
        tt.show(s.stage_trials(0))
        await pilot.pause()
        real_clear = tt.clear
        monkeypatch.setattr(tt, "clear", lambda *a, **k: (cleared.append(1), real_clear(*a, **k))[1])
        measured.clear()
        fold(s, ev.TrialStarted(case_id=f"b_0_{n - 1}"))  # past the page, but running: shown
        fold(s, ev.TrialFinished(case_id="b_0_7", metrics={"wns_ps": -1.0}, resources={}))
        tt.show(s.stage_trials(0), changed={f"b_0_{n - 1}", "b_0_7"})
        await pilot.pause()
        assert shown(tt) == [f"b_0_{i}" for i in range(PAGE)] + [f"b_0_{n - 1}"] and tt.hidden == n - PAGE - 1
        assert tt.get_cell("b_0_7", "status").plain == "✓ done" and not cleared
        assert len(measured) < 3 * len(tt.columns), len(measured)  # the new row's cells, not a column of 500
        fold(s, ev.TrialFinished(case_id=f"b_0_{n - 1}", metrics={"wns_ps": -2.0}, resources={}))
        tt.show(s.stage_trials(0), changed={f"b_0_{n - 1}"})
        await pilot.pause()
        assert shown(tt) == [f"b_0_{i}" for i in range(PAGE)] and not cleared  # done past the page: it leaves
        tt.sort_by, tt.reverse = "wns", True
        tt.show(s.stage_trials(0), rebuild=True)
        cleared.clear()
        fold(s, ev.TrialStarted(case_id="b_0_9"))
        fold(s, ev.TrialFinished(case_id="b_0_9", metrics={"wns_ps": -1.5}, resources={}))
        tt.show(s.stage_trials(0), changed={"b_0_9"})
        await pilot.pause()
        assert shown(tt)[:4] == ["b_0_7", "b_0_9", f"b_0_{n - 1}", "b_0_0"] and not cleared  # sorted in place


def test_header_picker_and_status_show_the_same_best_wns(tmp_path):
    """#22.8: status showed `—`, the picker the base and the header a running trial's WNS for
    one study: all three now read the best survivor the journal records."""
    import re

    from noodle2.console.view import ns
    from noodle2.console.widgets.header import StudyHeader
    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports.status import best_case, best_vs_base, status_text

    d = running_study(tmp_path, interrupted=True)
    s = recover(d).state
    best = best_case(s)
    assert best is not None and s.stages[1].status == "running"
    want = ns(best.metrics["wns_ps"])
    header = StudyHeader.text(s, d.name, None, T0 + 60, 160)
    assert re.search(r"→(\S+)", header).group(1) == want
    assert best_vs_base(s).startswith(want)
    text = status_text(s, None, now=T0 + 60)
    assert f"WNS {want} ns" in text and " interrupted " in text and " running " not in text


def test_eta_goes_by_the_running_stages_own_mode():
    """#22.14: a route stage showed ETA 0:00:00 while its 29 s trials ran (the mean was the sta trials')."""
    from noodle2.console.widgets.header import _eta
    from noodle2.engine.journal import events as ev
    from noodle2.engine.journal.state import StudyState, fold

    s = StudyState()
    evs = [ev.StudyStarted(name="r", spec_hash="0" * 64, spec={}, base_case="b", max_parallel=2, safety_domain="guarded",
                           stages=[{"name": "t", "mode": "sta", "trials": 2, "survivors": 1, "after": []},
                                   {"name": "r", "mode": "route", "trials": 3, "survivors": 1, "after": [0]}]),
           ev.TrialStarted(case_id="b"), ev.TrialFinished(case_id="b", metrics={"wns_ps": -1.0}, resources={"wall_s": 0.2}),
           ev.StageStarted(stage=0, parents=["b"], plan=[{"case_id": f"b_0_{i}", "index": i, "parent": "b", "eco": "noop",
                                                          "params": {}} for i in range(2)])]
    evs += [x for i in range(2) for x in (ev.TrialStarted(case_id=f"b_0_{i}"),
                                           ev.TrialFinished(case_id=f"b_0_{i}", metrics={"wns_ps": -1.0},
                                                            resources={"wall_s": 0.2}))]
    evs += [ev.SurvivorsChosen(stage=0, survivors=["b_0_0"], ranking=["b_0_0", "b_0_1"]),
            ev.StageFinished(stage=0, status="done"),
            ev.StageStarted(stage=1, parents=["b_0_0"], plan=[{"case_id": f"b_1_{i}", "index": i, "parent": "b_0_0",
                                                               "eco": "noop", "params": {}} for i in range(3)]),
            ev.TrialStarted(case_id="b_1_0"), ev.TrialStarted(case_id="b_1_1")]
    for e in evs:
        fold(s, e)
    assert _eta(s) is None  # no route trial has finished: unknown, not 0
    fold(s, ev.TrialFinished(case_id="b_1_0", metrics={"wns_ps": -1.0}, resources={"wall_s": 29.0}))
    assert _eta(s) == 2 * 29.0 / 2  # two route trials left, two workers


async def test_a_trials_time_reads_the_same_in_the_table_and_the_log(tmp_path):
    """#22.17: one trial showed 1.7 s in the table and 1.60 s in the log (two different clocks)."""
    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports.status import trial_line

    d = running_study(tmp_path)
    s = recover(d).state
    t = next(t for t in s.trials.values() if t.status == "done" and t.stage == 0)
    t.started_at, t.ended_at = 100.0, 101.66
    t.resources = {**(t.resources or {}), "wall_s": 1.6}
    async with app_for(tmp_path).run_test(size=(160, 48)) as pilot:
        table = pilot.app.screen.mount(TrialTable())
        await table
        tt = pilot.app.screen.query_one(TrialTable)
        tt.show([t])
        await pilot.pause()
        assert str(tt.get_cell(t.case_id, "time")) == "1.7s"
    assert trial_line(t).endswith("  1.7s")
