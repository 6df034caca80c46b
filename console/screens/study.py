"""The live study view.  It polls the journal at a fixed rate and redraws at most once per
tick, whatever the event rate: bursts of hundreds of events a second coalesce."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Label,
    Log,
    Sparkline,
    TabbedContent,
    TabPane,
)

from console.follow import StudyFollower, send_control, spawn_engine
from console.headless import Printer, cluster_parts
from console.screens.detail import TrialDetail
from console.screens.leaderboard import LeaderboardScreen
from console.screens.modals import ConfirmScreen
from console.view import active_stage, ns, plural, running_best, study_best
from console.widgets.funnel import SurvivorFunnel
from console.widgets.tables import StageTable, TrialTable
from engine import events as ev
from engine.errors import N2Error
from engine.reports import agreement_line, effective_status

TICK_S = 0.1


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class StudyScreen(Screen):
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
        self.last_report: Path | None = None
        self.dirty = True
        self.changed: set[str] = set()  # case ids touched since the last redraw
        self.trial_log_case: str | None = None
        self.trial_log_offsets: dict[str, int] = {}
        self.printer = Printer()
        self.engine_alive = self.follower.engine_pid() is not None

    @property
    def state(self):
        return self.follower.state

    def compose(self) -> ComposeResult:
        yield Label("", id="study-header", markup=False)
        with Horizontal(id="study-top"):
            yield StageTable(id="stages")
            with Vertical(id="study-side"):
                yield SurvivorFunnel(id="funnel")
                yield Label("best WNS by stage", id="trend-label")
                yield Sparkline([], id="trend")
                yield Label("", id="agreement", markup=False)
                yield Label("", id="cluster", markup=False)
        with Vertical(id="study-right"):
            yield Input(placeholder="filter trials: eco, status, failure type, case", id="trial-filter")
            yield TrialTable(id="trials")
        with TabbedContent(id="logs"):
            with TabPane("engine log", id="tab-engine"):
                yield Log(id="engine-log", max_lines=5000)
            with TabPane("trial output", id="tab-trial"):
                yield Log(id="trial-log", max_lines=5000)
        yield Footer()

    def on_resize(self) -> None:
        footer = self.query_one(Footer)
        footer.compact = self.app.size.width < 120
        footer.show_command_palette = self.app.size.width >= 100

    def on_mount(self) -> None:
        self.on_resize()
        self.query_one("#trial-filter").display = False
        log = self.query_one("#engine-log", Log)
        for w in self.follower.warnings:
            log.write_line(f"! {w}")
        self.replay_log()
        self.tick()
        self.set_interval(TICK_S, self.tick)
        self.query_one(TrialTable).focus()

    def replay_log(self) -> None:
        """The engine log is the journal, formatted the way headless output is."""
        from engine.journal import JOURNAL, read_events
        from engine.state import StudyState, fold

        s = StudyState()
        lines: deque[str] = deque(maxlen=2000)
        for e in read_events(self.dir / JOURNAL, 0, final=False).events:  # fold all: lines need context
            fold(s, e)
            if (line := self.printer.line(e, s)) is not None:
                lines.append(line)
        self.query_one("#engine-log", Log).write_lines(list(lines))

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
            log = self.query_one("#engine-log", Log)
            lines = [line for e in new if (line := self.printer.line(e, self.state)) is not None]
            if lines:
                log.write_lines(lines)
            if any(isinstance(e, ev.StageStarted) for e in new) and self.state.stages:
                if self.stage < 0 or self.state.stages[self.stage].status in ("done", "pending"):
                    self.stage = active_stage(self.state)
        self.follow_trial_output()
        if self.dirty:
            self.redraw()
        elif self.state.status == "running":  # only the clock moved
            self.query_one("#study-header", Label).update(self.header_text())

    def redraw(self) -> None:
        s = self.state
        self.dirty = False
        self.redraws += 1
        changed, self.changed = self.changed, set()
        self.query_one("#study-header", Label).update(self.header_text())
        if not s.stages:
            return
        self.stage = min(self.stage, len(s.stages) - 1)
        self.query_one(StageTable).show(s, self.engine_alive)
        self.query_one(SurvivorFunnel).show(s)
        self.query_one(Sparkline).data = [b for st in s.stages if (b := running_best(s, st)) is not None]
        routed = [st for st in s.stages if st.agreement is not None]
        agreement = self.query_one("#agreement", Label)
        agreement.display = bool(routed)
        if routed:  # as journaled when the route stage chose its survivors
            agreement.update(f"{routed[-1].name}: {agreement_line(routed[-1].agreement)}")
        cluster = self.query_one("#cluster", Label)
        cluster.display = s.cluster is not None
        if s.cluster is not None:  # as the engine last journaled it
            seen = "" if self.engine_alive else " (when last seen)"
            cluster.update("\n".join(cluster_parts(s.cluster)) + seen)
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
        right.border_title = (f"{st.name}: {plural(len(st.cases), 'trial')}  ◆ survivor"
                              + ("  ★ front" if st.front else "") + "  [ ] stage  / filter  o sort")

    def header_text(self) -> str:
        s = self.state
        now = self.app.clock()
        status = effective_status(s, self.follower.engine_pid())
        since = s.paused_since() if status == "running" else None
        if since is not None:
            status = f"paused since {time.strftime('%H:%M:%S', time.localtime(since))}"
        busy = s.busy() if self.engine_alive else 0
        elapsed = ((now if s.status == "running" and self.engine_alive else s.last_event_at) - s.started_at
                   if s.started_at and s.last_event_at else None)
        done_ts = [t for t in s.trials.values() if t.stage >= 0 and t.resources and t.resources.get("wall_s")]
        done, total = s.counts()
        eta = None
        if done_ts and status == "running":
            mean = sum(t.resources["wall_s"] for t in done_ts) / len(done_ts)
            eta = mean * (total - done) / max(s.max_parallel, 1)
        base = s.base()
        bw = (base.metrics or {}).get("wns_ps") if base else None
        best, routed = study_best(s)
        wns = f"WNS {ns(bw)}→{ns(best)}" + (" routed" if routed else "")
        parts = [f" {s.name or self.dir.name} [{status}]", f"{done}/{plural(total, 'trial')}",
                 f"workers {busy}/{s.max_parallel}", f"elapsed {clock_text(elapsed)}", f"{wns} ns"]
        c = s.cluster or {}
        ray = f"ray {c.get('cpus_busy', 0):g}/{c.get('cpus', 0):g} CPU" if s.cluster and self.engine_alive else ""
        optional = [f"ETA {clock_text(eta)}" if eta is not None else "", ray, s.safety_domain or ""]
        text = " · ".join(parts[:4] + [o for o in optional if o] + parts[4:])
        if len(text) > self.app.size.width - 1:  # 80 columns: the essentials, shortest words
            text = " · ".join([parts[0], f"{done}/{total}", f"w {busy}/{s.max_parallel}"] + [ray] * bool(ray)
                              + [clock_text(elapsed), wns])
        return text

    # --- trial output pane -------------------------------------------------------------------
    def selected_case(self) -> str | None:
        t = self.query_one(TrialTable)
        if not t.row_count:
            return None
        return str(t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#trials")
    def trial_highlighted(self, event: DataTable.RowHighlighted) -> None:
        case = str(event.row_key.value) if event.row_key is not None else None
        if case != self.trial_log_case:
            self.trial_log_case = case
            self.trial_log_offsets = {}
            self.query_one("#trial-log", Log).clear()
            self.query_one(TabbedContent).get_tab("tab-trial").label = f"output: {case}" if case else "trial output"
            self.follow_trial_output()

    def follow_trial_output(self) -> None:
        """Append what the selected trial's stdout/stderr gained since the last tick."""
        case = self.trial_log_case
        if case is None:
            return
        log = self.query_one("#trial-log", Log)
        for name in ("stdout.log", "stderr.log"):
            p = self.dir / "trials" / case / name
            off = self.trial_log_offsets.get(name, 0)
            try:
                with open(p, "rb") as f:
                    f.seek(off)
                    data = f.read(256_000)
            except OSError:
                continue
            if data:
                if off == 0:
                    log.write_line(f"── {case}/{name} ──")
                self.trial_log_offsets[name] = off + len(data)
                log.write(data.decode(errors="replace"))

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

    def action_follow(self) -> None:
        for log in self.query(Log):
            log.auto_scroll = not log.auto_scroll
        self.notify("log follow " + ("on" if self.query_one("#engine-log", Log).auto_scroll else "off"), timeout=1.5)

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
        self.notify("writing the report…", timeout=2, markup=False)
        self.write_report()

    @work(thread=True, exclusive=True, group="report")
    def write_report(self) -> None:
        """Off the event loop: plots and Graphviz take seconds on a large study."""
        from engine import summary

        try:
            got = summary.write(self.dir, self.state)
        except OSError as e:
            self.app.call_from_thread(self.notify, f"report not written: {e}", severity="error")
            return
        self.last_report = Path(got["out"]) / "summary.html"
        note = f" ({'; '.join(got['notes'])})" if got["notes"] else ""
        self.app.call_from_thread(self.notify, f"report written: {self.last_report}{note}", timeout=12)

    def action_help(self) -> None:
        self.app.show_help(self, self.LEGEND)
