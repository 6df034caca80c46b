"""The live study view.  It polls the journal at a fixed rate and redraws at most once per
tick, whatever the event rate: bursts of hundreds of events a second coalesce."""
from __future__ import annotations

import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, TabbedContent

from noodle2.console.follow import StudyFollower, send_control, spawn_engine
from noodle2.console.screens.detail import TrialDetail
from noodle2.console.screens.leaderboard import LeaderboardScreen
from noodle2.console.screens.modals import ConfirmScreen
from noodle2.console.view import active_stage, plural
from noodle2.console.widgets.header import StudyHeader
from noodle2.console.widgets.logs import LogPanes
from noodle2.console.widgets.side import StudySide
from noodle2.console.widgets.tables import StageTable, TrialTable
from noodle2.engine.errors import N2Error
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import freeze_loaded, thaw

TICK_S = 0.1
DRAW_SHARE = 0.2  # at most this share of the view's time goes to drawing: keys stay quick at 100k trials


class StudyScreen(Screen):
    HELP_TITLE = "the live study view"
    BINDINGS = [
        Binding("question_mark", "help", "help", tooltip="this help"),
        Binding("q", "app.quit", "quit", tooltip="quit the console; the engine goes on"),
        Binding("p", "pause", "pause", tooltip="pause: no new trial starts, running ones finish"),
        Binding("r", "resume", "resume", tooltip="resume a paused study, or start an engine for an interrupted one"),
        Binding("s", "stop", "stop", tooltip="stop gracefully (asks first): checkpoint, then exit 3"),
        Binding("c", "cancel_trial", "cancel", tooltip="cancel the selected running trial"),
        Binding("slash", "filter", "filter", tooltip="filter trials by ECO, status, failure type or case"),
        Binding("o", "sort", "sort", tooltip="sort by the next column (or click a header)"),
        Binding("f", "follow", "follow", show=False, tooltip="follow the logs on or off"),
        Binding("t", "log_tab", "output", show=False,
                tooltip="switch the log pane: the engine log, or the selected trial's output (stdout, stderr)"),
        Binding("l", "leaderboard", "ECOs", tooltip="the ECO leaderboard"),
        Binding("w", "report", "report", tooltip="write the report (summary.html, plots, change list) and say where"),
        Binding("escape", "back", "back", show=False, tooltip="clear the filter, or back to the picker"),
        Binding("left_square_bracket", "stage(-1)", "previous stage", show=False, tooltip="previous stage (base first)"),
        Binding("right_square_bracket", "stage(1)", "next stage", show=False, tooltip="next stage"),
    ]

    def __init__(self, study_dir: Path) -> None:
        super().__init__()
        self.dir = study_dir
        self.follower = StudyFollower(study_dir)
        self.stage = active_stage(self.follower.state)  # attaching shows the stage that runs
        self.redraws = 0
        self.next_draw = 0.0  # time.monotonic() before which a tick does not draw again
        self.last_report: Path | None = None
        self.reporting = False  # a report writer runs
        self.elapsed_shown = 0.0
        self.dirty = True
        self.changed: set[str] = set()  # case ids touched since the last redraw
        self.engine_alive = self.follower.engine_pid() is not None

    @property
    def state(self):
        return self.follower.state

    def compose(self) -> ComposeResult:
        yield StudyHeader(id="study-header")
        with Horizontal(id="study-top"):
            yield StageTable(id="stages")
            yield StudySide(id="study-side")
        with Vertical(id="study-right"):
            yield Input(placeholder="filter trials: eco, status, failure type, case", id="trial-filter")
            yield TrialTable(id="trials")
        yield LogPanes(self.dir, id="logs")
        yield Footer()

    def on_resize(self) -> None:
        footer = self.query_one(Footer)
        footer.compact = self.app.size.width < 120
        footer.show_command_palette = self.app.size.width >= 100
        self.show_header()  # its words depend on the width; a finished study has no tick to redraw it
        self.app.check_size()  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        freeze_loaded()
        self.on_resize()
        self.query_one("#trial-filter").display = False
        self.query_one(LogPanes).replay(self.follower.warnings, self.state)
        self.tick()
        self.set_interval(TICK_S, self.tick)
        self.query_one(TrialTable).focus()

    def on_unmount(self) -> None:
        thaw()

    # --- the one place that redraws ---------------------------------------------------------
    def tick(self) -> None:
        try:
            new = self.follower.poll()
        except N2Error as e:
            self.notify(e.render(), severity="error", timeout=10, markup=False)
            return
        alive = self.follower.engine_pid() is not None
        if alive != self.engine_alive:  # the engine started or went away: trials change meaning
            self.engine_alive, self.dirty, self.changed = alive, True, set(self.state.trials)
        if new:
            self.dirty = True
            self.changed.update(c for e in new if (c := getattr(e, "case_id", None)))
            self.query_one(LogPanes).add(new, self.state)
            if any(isinstance(e, ev.StageStarted) for e in new) and self.state.stages:
                if self.stage < 0 or self.state.stages[self.stage].status in ("done", "pending"):
                    self.stage = active_stage(self.state)
        self.query_one(LogPanes).follow_case()
        if self.dirty and time.monotonic() >= self.next_draw:
            self.redraw()
        elif self.state.status == "running":  # only the clock moved
            self.show_header()

    def redraw(self) -> None:
        """Draw now (a key asked), and pace the ticks' draws by what this one cost, Textual's
        render of it included (at 100k trials about 13 ms of ours and up to 40 ms of its)."""
        started = time.perf_counter()
        self._redraw()
        self.call_after_refresh(self._drawn, started)

    def _drawn(self, started: float) -> None:
        self.next_draw = time.monotonic() + (time.perf_counter() - started) * (1 / DRAW_SHARE - 1)

    def _redraw(self) -> None:
        s = self.state
        self.dirty = False
        self.redraws += 1
        changed, self.changed = self.changed, set()
        self.show_header()
        if not s.stages:
            return
        self.stage = min(self.stage, len(s.stages) - 1)
        self.query_one(StageTable).show(s, self.engine_alive)
        self.query_one(StudySide).show(s, self.engine_alive)
        table = self.query_one(TrialTable)
        table.show_nodes(s.cluster is not None)
        right = self.query_one("#study-right")
        if self.stage < 0:  # the base case, the reference every stage is measured against
            base = s.base()
            table.show([base] if base else [], {}, changed=changed, engine_alive=self.engine_alive)
            right.border_title = f"base case {s.base_case}  [ ] stage"
            return
        st = s.stages[self.stage]
        marks = {c: "★" for c in st.front} | {c: "◆" for c in st.survivors}
        table.show(s.stage_trials(self.stage), marks, changed=changed, engine_alive=self.engine_alive)
        paged = f"  first {len(st.cases) - table.hidden:,} shown (sorted)" if table.hidden else ""
        right.border_title = (f"{st.name}: {plural(len(st.cases), 'trial')}{paged}  ◆ survivor"
                              + ("  ★ front" if st.front else "") + "  [ ] stage  / filter  o sort")

    def header_text(self) -> str:
        pid = self.follower.engine_pid()
        e = StudyHeader.elapsed(self.state, pid is not None, self.app.clock())
        if e is not None:  # the clock ran to now; after a kill -9 only the last event counts: never go back
            self.elapsed_shown = e = max(e, self.elapsed_shown)
        return StudyHeader.text(self.state, self.dir.name, pid, self.app.clock(), self.app.size.width, e)

    def show_header(self) -> None:
        self.query_one(StudyHeader).update(self.header_text())

    # --- trials -------------------------------------------------------------------------
    def selected_case(self) -> str | None:
        t = self.query_one(TrialTable)
        if not t.row_count:
            return None
        return str(t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#trials")
    def trial_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(LogPanes).show_case(str(event.row_key.value) if event.row_key is not None else None)

    @on(DataTable.RowSelected, "#trials")
    def open_detail(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(TrialDetail(self.dir, self.state, str(event.row_key.value)))

    @on(DataTable.RowSelected, "#stages")
    def pick_stage(self, event: DataTable.RowSelected) -> None:
        self.stage = int(str(event.row_key.value))
        self.dirty = True
        self.redraw()

    @on(DataTable.HeaderSelected, "#trials")
    def header_sort(self, event: DataTable.HeaderSelected) -> None:
        t = self.query_one(TrialTable)
        key = str(event.column_key.value)
        t.reverse = not t.reverse if t.sort_by == key else key in ("wns", "tns")
        t.sort_by = key
        t.mark_sort()
        self.redraw()

    # --- actions ------------------------------------------------------------------------------
    def action_stage(self, step: int) -> None:
        if self.state.stages:  # -1 is the base case
            self.stage = (self.stage + 1 + step) % (len(self.state.stages) + 1) - 1
            self.redraw()

    def action_sort(self) -> None:
        t = self.query_one(TrialTable)
        keys = [k for _, k in TrialTable.COLUMNS]
        t.sort_by = keys[(keys.index(t.sort_by) + 1) % len(keys)]
        t.reverse = t.sort_by in ("wns", "tns")  # best first for slack columns
        t.mark_sort()
        self.redraw()

    def action_filter(self) -> None:
        box = self.query_one("#trial-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#trial-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.query_one(TrialTable).filter = event.value
        self.redraw()

    @on(Input.Submitted, "#trial-filter")
    def filter_done(self) -> None:
        self.query_one(TrialTable).focus()

    def action_back(self) -> None:
        box = self.query_one("#trial-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one(TrialTable).focus()
        elif len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_log_tab(self) -> None:
        tabs = self.query_one(LogPanes).query_one(TabbedContent)
        tabs.active = "tab-trial" if tabs.active == "tab-engine" else "tab-engine"

    def action_follow(self) -> None:
        self.notify("log follow " + ("on" if self.query_one(LogPanes).toggle_follow() else "off"), timeout=1.5)

    def finished(self) -> str | None:
        s = self.state
        return s.status if s.status in ("complete", "failed", "blocked") else None

    def action_pause(self) -> None:
        self.request("pause")

    def action_resume(self) -> None:
        if (status := self.finished()) is not None:
            self.notify(f"{self.state.name} is finished ({status}): nothing to resume", severity="warning", markup=False)
        elif self.follower.engine_pid() is None:
            spawn_engine(self.dir)
            self.notify("engine started: resuming the study", markup=False)
        else:
            self.request("resume")

    @work
    async def action_stop(self) -> None:
        if (status := self.finished()) is not None:
            self.notify(f"{self.state.name} is finished ({status}): nothing to stop", severity="warning", markup=False)
            return
        if self.follower.engine_pid() is None:
            self.notify("no engine runs this study (it is interrupted); r resumes it", severity="warning", markup=False)
            return
        if await self.app.push_screen_wait(ConfirmScreen(f"Stop {self.state.name} gracefully? A checkpoint is "
                                                         "written; `r` resumes it later.")):
            self.request("stop")

    def action_cancel_trial(self) -> None:
        case = self.selected_case()
        if case is None or self.state.trials[case].status != "running":
            self.notify("select a running trial to cancel", severity="warning", markup=False)
            return
        self.request("cancel", case)

    def request(self, what: str, target: str = "") -> None:
        if (status := self.finished()) is not None:
            self.notify(f"{self.state.name} is finished ({status}): nothing to {what}", severity="warning", markup=False)
            return
        if self.follower.engine_pid() is None:
            self.notify("no engine runs this study (it is interrupted); r resumes it", severity="warning", markup=False)
            return
        send_control(self.dir, what, target)
        self.notify(f"{what} {target} sent; the engine acknowledges it in the log".strip(), timeout=2, markup=False)

    def action_leaderboard(self) -> None:
        self.app.push_screen(LeaderboardScreen(self.state))

    LEGEND = [("◆", "survivor"), ("★", "Pareto front"), ("▶✓✗", "running done failed"), ("⊘", "cancelled"),
              ("⏸", "interrupted (r resumes)")]

    def action_report(self) -> None:
        if self.reporting:  # a thread cannot be cancelled: a second writer would race the first
            self.notify("the report is still being written…", timeout=3, markup=False)
            return
        self.reporting = True
        self.notify("writing the report…", timeout=3600, markup=False)  # until it is written
        self.write_report()

    @work(thread=True, group="report")
    def write_report(self) -> None:
        """Off the event loop: plots and Graphviz take seconds on a large study."""
        from noodle2.engine.reports import summary

        try:
            got = summary.write(self.dir, self.state)
        except OSError as e:
            self.app.call_from_thread(self._reported, f"report not written: {e}", "error")
            return
        out = Path(got["out"]) / "summary.html"
        note = f" ({'; '.join(got['notes'])})" if got["notes"] else ""
        self.app.call_from_thread(self._reported, f"report written: {out}{note}", "information", out)

    def _reported(self, text: str, severity: str, out: Path | None = None) -> None:
        """On the event loop: the report's path and its notification appear together."""
        if out is not None:
            self.last_report = out
        self.reporting = False
        self.app.clear_notifications()
        self.notify(text, severity=severity, timeout=12, markup=False)

    def action_help(self) -> None:
        self.app.show_help(self, self.LEGEND)
