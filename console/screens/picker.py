"""The study picker: every study under the root with its state, progress and best WNS."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label

from noodle2.console.follow import StudyFollower, spawn_engine
from noodle2.console.screens.choose import ChooseStudyFile
from noodle2.console.screens.modals import TextScreen
from noodle2.console.view import active_stage
from noodle2.console.widgets.tables import SortableTable
from noodle2.engine.errors import N2Error
from noodle2.engine.fmt import fmt_local, local_zone
from noodle2.engine.fsutil import lock_holder
from noodle2.engine.journal.state import StudyState
from noodle2.engine.journal.store import JOURNAL, is_study_dir
from noodle2.engine.reports.status import best_vs_base, effective_status
from noodle2.engine.run.studydir import INPUTS

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
    if s < 5:
        return "now"
    return f"{s}s ago" if s < 120 else (f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago")


@dataclass
class Row:
    key: str
    state: str
    stage: str
    done: int
    total: int
    best: str
    last: float | None
    created: float | None
    author: str
    tags: str

    def matches(self, text: str) -> bool:
        hay = f"{self.key} {self.state} {self.stage} {self.author} {self.tags}".lower()
        return all(w in hay for w in text.lower().split())


Followers = dict[Path, tuple[int, StudyFollower]]  # study dir -> (its journal's inode, follower)


def study_row(d: Path, followers: Followers | None = None) -> Row | None:
    """The picker's row for a study.  With `followers`, a refresh reads only what each journal
    gained since the last one (a 100k-trial study is folded once, not every 2 s)."""
    try:
        s = _followed(d, {} if followers is None else followers) if is_study_dir(d) else None
    except N2Error:
        if followers is not None:
            followers.pop(d, None)
        return None  # a damaged journal is reported by `noodle2 status`; keep the list usable
    holder = lock_holder(d)
    if s is None or not s.name:
        return Row(d.name, "running" if holder else "interrupted", "—", 0, 0, "—", None, None, "", "")
    meta = (s.spec or {}).get("study", {})
    stage = s.stages[active_stage(s)].name if s.stages else "—"
    return Row(d.name, effective_status(s, holder), stage, *s.counts(), best_vs_base(s), s.last_event_at,
               s.started_at, meta.get("author", ""), ", ".join(meta.get("tags", [])))


def _followed(d: Path, followers: Followers) -> StudyState:
    try:
        st = os.stat(d / JOURNAL)
        ino, size = st.st_ino, st.st_size
    except FileNotFoundError:
        ino, size = 0, 0
    got = followers.get(d)
    if got is None or got[0] != ino or size < got[1].offset:  # new, replaced or cut: fold it again
        f = StudyFollower(d)
        followers[d] = (ino, f)
    else:
        f = got[1]
        f.poll()
    return f.state


class StudyList(SortableTable):
    COLUMNS = [("study", "key"), ("state", "state"), ("stage", "stage"), ("trials", "done"),
               ("WNS ns (Δ base)", "best"), ("active", "last"), (f"created {local_zone()}", "created"), ("author", "author"),
               ("tags", "tags")]


class PickerScreen(Screen):
    HELP_TITLE = "the study picker"
    BINDINGS = [
        Binding("question_mark", "help", "help", tooltip="this help"),
        Binding("q", "app.quit", "quit", tooltip="quit the console; engines go on"),
        Binding("enter", "open", "open", tooltip="open the highlighted study"),
        Binding("r", "resume", "resume", tooltip="resume the highlighted study (starts an engine)"),
        Binding("n", "new", "new run", tooltip="start a new run from any study file"),
        Binding("d", "legality", "legality", tooltip="plan and legality report of any study file"),
        Binding("slash", "filter", "filter", tooltip="filter by name, state, stage, author or tags"),
        Binding("o", "sort", "sort", tooltip="sort by the next column (or click a header)"),
        Binding("g", "refresh", "refresh", show=False, tooltip="refresh now (it refreshes every 2 s)"),
    ]

    def __init__(self, root: Path, samples: Path) -> None:
        super().__init__()
        self.root = root
        self.samples = samples
        self.filter = ""
        self.followers: Followers = {}

    def compose(self) -> ComposeResult:
        yield Label(f"noodle2 — studies in {self.root}", id="picker-title", markup=False)
        yield Input(placeholder="filter: name, state, stage, author or tags", id="filter")
        yield StudyList(id="studies", cursor_type="row", zebra_stripes=True)
        yield Label("", id="picker-empty", markup=False)
        yield Footer()

    def on_resize(self) -> None:
        self.app.check_size()  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        t = self.query_one(StudyList)
        t.add_sort_columns()
        t.sort_by, t.reverse = "last", True  # most recently active first
        t.mark_sort()
        self.query_one("#filter").display = False
        self.action_refresh()
        self.set_interval(2.0, self.action_refresh)
        t.focus()

    def on_screen_resume(self) -> None:
        self.action_refresh()  # back from a study view: the list is as of now

    def action_refresh(self) -> None:
        if self.app.screen is not self:  # a study view is on top: nothing to draw, no journal to read
            return
        t = self.query_one(StudyList)
        now = self.app.clock()
        rows = [r for d in find_studies(self.root) if (r := study_row(d, self.followers)) is not None
                and r.matches(self.filter)]
        rows.sort(key=lambda r: _sort_key(r, t.sort_by), reverse=t.reverse)
        cursor = t.cursor_row
        t.clear()
        for r in rows:
            created = fmt_local(r.created, zone=False) if r.created else "—"
            t.add_row(r.key, f"{STATE_SYMBOL.get(r.state, '?')} {r.state}", r.stage, f"{r.done}/{r.total}", r.best,
                      ago(r.last, now), created, r.author or "—", r.tags or "—", key=r.key)
        if t.row_count:
            t.move_cursor(row=min(cursor, t.row_count - 1))
        empty = self.query_one("#picker-empty", Label)
        empty.display = not t.row_count
        empty.update(f"No studies under {self.root}. Press n to start one from any study file "
                     f"(`noodle2 init my.toml` writes one).")

    def selected(self) -> Path | None:
        t = self.query_one(StudyList)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        return self.root / str(key)

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected)
    def header(self, event: DataTable.HeaderSelected) -> None:
        t = self.query_one(StudyList)
        key = str(event.column_key.value)
        t.reverse = not t.reverse if t.sort_by == key else key in ("last", "created", "done")
        t.sort_by = key
        t.mark_sort()
        self.action_refresh()

    def action_sort(self) -> None:
        t = self.query_one(StudyList)
        keys = [k for _, k in StudyList.COLUMNS]
        t.sort_by = keys[(keys.index(t.sort_by) + 1) % len(keys)]
        t.reverse = t.sort_by in ("last", "created", "done")
        t.mark_sort()
        self.action_refresh()

    def action_open(self) -> None:
        d = self.selected()
        if d is not None:
            self.app.open_study(d)

    def action_resume(self) -> None:
        d = self.selected()
        if d is None:
            return
        if lock_holder(d) is not None:
            self.notify(f"{d.name} is already running", severity="warning", markup=False)
        else:
            try:
                s = _followed(d, self.followers) if is_study_dir(d) else None
            except N2Error as e:
                self.app.push_screen(TextScreen(f"cannot resume {d.name}", e.render()))
                return
            if s is not None and s.status in ("complete", "failed", "blocked"):
                self.notify(f"{d.name} is finished ({s.status}): nothing to resume", severity="warning", markup=False)
                self.app.open_study(d)
                return
            try:
                from noodle2.engine.run.studydir import open_for_resume

                open_for_resume(d)
            except N2Error as e:
                self.app.push_screen(TextScreen(f"cannot resume {d.name}", e.render()))
                return
            spawn_engine(d)
            self.notify(f"resuming {d.name}", markup=False)
        self.app.open_study(d)

    @work
    async def action_new(self) -> None:
        f = await self.app.push_screen_wait(ChooseStudyFile(Path.cwd(), "start a new run from"))
        if f is not None:
            self.app.start_study(f)

    @work
    async def action_legality(self) -> None:
        f = await self.app.push_screen_wait(ChooseStudyFile(Path.cwd(), "plan and legality report of"))
        if f is None:
            return
        from noodle2.engine.study.load import load_study
        from noodle2.engine.study.plan import format_plan

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
        self.query_one(StudyList).focus()

    def action_help(self) -> None:
        self.app.show_help(self)


def _sort_key(r: Row, key: str):
    v = getattr(r, key)
    return (v is None, v if v is not None else 0) if key in ("last", "created", "done") else str(v).lower()
