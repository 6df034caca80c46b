"""The study picker: every study under the root with its state, progress and best WNS."""
from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label

from console.follow import spawn_engine
from console.screens.modals import ChooseStudyFile, TextScreen
from engine.errors import N2Error
from engine.fsutil import lock_holder
from engine.journal import is_study_dir, recover
from engine.reports import best_vs_base, effective_status, progress
from engine.studydir import INPUTS

STATE_SYMBOL = {"running": "▶", "interrupted": "⏸", "complete": "✓", "blocked": "⛔", "failed": "✗", "new": "·"}


def find_studies(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir() and (is_study_dir(d) or (d / INPUTS / "study.toml").exists())),
                  key=lambda d: d.stat().st_mtime, reverse=True)


def ago(t: float | None, now: float) -> str:
    if t is None:
        return "—"
    s = int(now - t)
    return f"{s}s ago" if s < 120 else (f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago")


class PickerScreen(Screen):
    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("q", "app.quit", "quit"),
        Binding("enter", "open", "open"),
        Binding("r", "resume", "resume"),
        Binding("n", "new", "new run"),
        Binding("d", "legality", "legality report"),
        Binding("slash", "filter", "filter"),
        Binding("g", "refresh", "refresh"),
    ]

    def __init__(self, root: Path, samples: Path) -> None:
        super().__init__()
        self.root = root
        self.samples = samples
        self.filter = ""

    def compose(self) -> ComposeResult:
        yield Label(f"noodle2 — studies in {self.root}", id="picker-title")
        yield Input(placeholder="filter: name or state", id="filter")
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Label("", id="picker-empty")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        for label, key in [("study", "name"), ("state", "state"), ("progress", "progress"),
                           ("best WNS ns (vs base)", "best"), ("last active", "last")]:
            t.add_column(label, key=key)
        self.query_one("#filter").display = False
        self.action_refresh()
        self.set_interval(2.0, self.action_refresh)
        t.focus()

    def action_refresh(self) -> None:
        t = self.query_one(DataTable)
        now = self.app.clock()
        rows = []
        for d in find_studies(self.root):
            try:
                s = recover(d).state if is_study_dir(d) else None
            except N2Error:
                continue  # a damaged journal is reported by `noodle2 status`; keep the list usable
            holder = lock_holder(d)
            if s is None or not s.name:
                state = "running" if holder else "interrupted"
                rows.append((d.name, d.name, state, "starting" if holder else "not started", "—", "—"))
                continue
            state = effective_status(s, holder)
            rows.append((d.name, s.name, state, progress(s), best_vs_base(s), ago(s.last_event_at, now)))
        cursor = t.cursor_row
        t.clear()
        for key, _name, state, prog, best, last in rows:
            if self.filter and self.filter.lower() not in f"{key} {state}".lower():
                continue
            t.add_row(key, f"{STATE_SYMBOL.get(state, '?')} {state}", prog, best, last, key=key)
        if t.row_count:
            t.move_cursor(row=min(cursor, t.row_count - 1))
        empty = self.query_one("#picker-empty", Label)
        empty.display = not t.row_count
        empty.update(f"No studies under {self.root}. Press n to start one from {self.samples}.")

    def selected(self) -> Path | None:
        t = self.query_one(DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        return self.root / str(key)

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        d = self.selected()
        if d is not None:
            self.app.open_study(d)

    def action_resume(self) -> None:
        d = self.selected()
        if d is None:
            return
        if lock_holder(d) is not None:
            self.notify(f"{d.name} is already running", severity="warning")
        else:
            try:
                from engine.studydir import open_for_resume

                open_for_resume(d)
            except N2Error as e:
                self.app.push_screen(TextScreen(f"cannot resume {d.name}", e.render()))
                return
            spawn_engine(d)
            self.notify(f"resuming {d.name}")
        self.app.open_study(d)

    @work
    async def action_new(self) -> None:
        f = await self.app.push_screen_wait(ChooseStudyFile(self.samples, "start a new run from:"))
        if f is not None:
            self.app.start_study(f)

    @work
    async def action_legality(self) -> None:
        f = await self.app.push_screen_wait(ChooseStudyFile(self.samples, "legality report of:"))
        if f is None:
            return
        from engine.plan import format_plan
        from engine.spec import load_study

        try:
            text = format_plan(load_study(f))
        except N2Error as e:
            text = "Validation failed:\n\n" + e.render()
        self.app.push_screen(TextScreen(f"{f.name}: plan and legality report", text))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value
        self.action_refresh()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_help(self) -> None:
        self.app.show_help(self)

