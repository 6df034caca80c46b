"""Stage and trial tables: DataTables fed from folded state; only changed rows are touched."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from noodle2.console.view import mw, ns, running_best, stage_counts, trial_status, um2
from noodle2.engine.fmt import fmt_seconds
from noodle2.engine.journal.state import StageState, StudyState, TrialState
from noodle2.engine.reports.status import trial_seconds

SYMBOL = {"done": "✓", "failed": "✗", "running": "▶", "planned": "·", "cancelled": "⊘", "aborted": "✗",
          "skipped": "⊘", "pending": "·", "timeout": "⏱", "interrupted": "⏸"}
PAGE = 500  # trial rows a table holds at once; DataTable costs ~0.5 ms a row to build
STATUS_CLASS = {"done": "success", "failed": "error", "running": "accent", "cancelled": "warning", "aborted": "error",
                "interrupted": "warning"}


def status_cell(status: str, detail: str = "", theme: Any = None) -> Text:
    """Symbol + word, so meaning never rests on colour; the colour comes from the theme."""
    sym = SYMBOL.get(status, "?")
    colour = getattr(theme, STATUS_CLASS.get(status, ""), None) if theme is not None else None
    return Text(f"{sym} {status}{(' ' + detail) if detail else ''}", style=colour or "")


def _dur(a: float | None, b: float | None) -> str:
    return fmt_seconds(b - a) if a is not None and b is not None else ""


def plain(cell: Any) -> Any:
    """A str cell as Text: what a study or a tool wrote ([/], [bold]) is shown, never parsed as markup."""
    return Text(cell) if isinstance(cell, str) else cell


class PlainTable(DataTable):
    """A DataTable whose str cells are plain text (DataTable reads str cells as markup)."""

    def add_row(self, *cells: Any, **kw: Any) -> Any:
        return super().add_row(*map(plain, cells), **kw)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        """update_width only when the cell outgrows its column: Textual re-measures the whole
        column whenever a cell gets narrower, every row for every cell (seconds per redraw at
        500 trial events a second).  Columns grow, never shrink, while a study runs."""
        cell = plain(value)
        if update_width and isinstance(cell, Text) and (col := self.columns.get(column_key)) is not None:  # type: ignore[call-overload]
            update_width = cell.cell_len > col.content_width
        super().update_cell(row_key, column_key, cell, update_width=update_width)


class SortableTable(PlainTable):
    """A DataTable whose sorted column shows ▲ or ▼ in its header."""

    COLUMNS: list[tuple[str, str]] = []
    sort_by: str = ""
    reverse: bool = False

    def add_sort_columns(self) -> None:
        self.cols = list(self.COLUMNS)
        for label, key in self.cols:
            self.add_column(label, key=key)

    def mark_sort(self) -> None:
        for label, key in self.cols:
            arrow = (" ▼" if self.reverse else " ▲") if key == self.sort_by else ""
            col = self.columns.get(key)  # type: ignore[call-overload]
            if col is not None:
                col.label = Text(label + arrow)
        self.refresh()


class StageTable(PlainTable):
    COLUMNS = [("stage", "name"), ("mode", "mode"), ("trials", "budget"), ("run", "running"), ("ok", "done"),
               ("✗", "failed"), ("⊘", "cancelled"), ("surv", "survivors"), ("best WNS", "wns"), ("best TNS", "tns"),
               ("time", "time")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for label, key in self.COLUMNS:
            self.add_column(label, key=key)

    def show(self, s: StudyState, engine_alive: bool) -> None:
        rows = [("-1", self.base_row(s, engine_alive))] if s.base() else []
        rows += [(str(st.index), self.row(s, st, engine_alive)) for st in s.stages]
        for key, cells in rows:
            if key in self.rows:
                for (_, col), v in zip(self.COLUMNS, cells):
                    self.update_cell(key, col, v, update_width=True)  # "5.5s" never shows as "5"
            else:
                self.add_row(*cells, key=key)

    @staticmethod
    def base_row(s: StudyState, engine_alive: bool) -> list[Any]:
        b = s.base()
        assert b is not None
        status = trial_status(b, engine_alive)
        m = b.metrics or {}
        return [Text(f"{SYMBOL.get(status, '?')} ") + Text("base"), "noop", "1", "1" if status == "running" else "0",
                str(int(b.status == "done")), str(int(b.status == "failed")), "0", "", ns(m.get("wns_ps")),
                ns(m.get("tns_ps")), _dur(b.started_at, b.ended_at)]

    @staticmethod
    def row(s: StudyState, st: StageState, engine_alive: bool) -> list[Any]:
        n = stage_counts(s, st)
        running = 0
        if n["running"]:  # only a stage with running trials is walked
            running = sum(1 for c in st.cases if s.trials[c].status == "running" and not s.trials[c].tool_done)
        running = min(running, s.max_parallel or running)  # beyond it, trials wait in a cluster's queue
        status = st.status if engine_alive or st.status != "running" else "interrupted"
        return [Text(f"{SYMBOL.get(status, '?')} ") + Text(st.name), st.mode, str(st.budget),
                str(running if engine_alive else 0), str(n["done"]), str(n["failed"]), str(n["cancelled"]),
                str(len(st.survivors)), ns(running_best(s, st)), ns(running_best(s, st, "tns_ps")),
                _dur(st.started_at, st.ended_at)]


class TrialTable(SortableTable):
    COLUMNS = [("case", "case"), ("status", "status"), ("WNS ns", "wns"), ("TNS ns", "tns"), ("ECO", "eco"),
               ("parent", "parent"), ("power mW", "power"), ("area µm²", "area"), ("time", "time")]
    SORT_KEYS = {"case": lambda t: (t.stage, t.index), "wns": lambda t: _num(t, "wns_ps"),
                 "tns": lambda t: _num(t, "tns_ps"), "power": lambda t: _num(t, "power_total_w"),
                 "area": lambda t: _num(t, "area_um2"), "status": lambda t: t.status, "eco": lambda t: t.eco,
                 "parent": lambda t: t.parent or "", "time": lambda t: (t.resources or {}).get("wall_s") or 0.0,
                 "node": lambda t: str((t.resources or {}).get("node", ""))}

    def show_nodes(self, on: bool) -> None:
        """A node column for trials that ran on a cluster (added once, when one appears)."""
        if on and ("node", "node") not in self.cols:
            self.cols.append(("node", "node"))
            self.add_column("node", key="node")
            self.stale = True  # the next show() rebuilds every row with its node

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_sort_columns()
        self.sort_by = "case"
        self.reverse = False
        self.filter = ""
        self.marks: dict[str, str] = {}
        self.stale = False
        self.engine_alive = True
        self.hidden = 0  # rows beyond the page: sort or filter to reach them
        self.mark_sort()

    def show(self, trials: list[TrialState], marks: dict[str, str] | None = None, rebuild: bool = False,
             changed: set[str] | None = None, engine_alive: bool = True) -> None:
        """Rebuild only when the rows or their order changed; otherwise touch `changed` rows
        (all rows when `changed` is None).  `marks`: case -> a symbol (◆ survivor, ★ front)."""
        marks = marks or {}
        rebuild = rebuild or marks != self.marks or engine_alive != self.engine_alive or self.stale
        self.stale = False
        self.marks, self.engine_alive = marks, engine_alive
        wanted = [t for t in trials if self.matches(t)] if self.filter else list(trials)
        if self.sort_by != "case":
            wanted.sort(key=self.SORT_KEYS[self.sort_by], reverse=self.reverse)
        elif self.reverse:  # a stage's trials come in plan order, which is case order
            wanted.reverse()
        shown = len(wanted)
        if shown > PAGE:  # a 10k-trial stage: its first page, plus the marked and running ones
            wanted = wanted[:PAGE] + [t for t in wanted[PAGE:] if t.case_id in marks or t.status == "running"]
        self.hidden = shown - len(wanted)
        order = [t.case_id for t in wanted]
        have = {str(r.key.value) for r in self.ordered_rows}
        gone, new = have.difference(order), [t for t in wanted if t.case_id not in have]
        if rebuild or len(gone) + len(new) > len(order) // 2:  # mostly new rows: one rebuild is cheaper
            cursor = self.cursor_row
            self.clear()
            for t in wanted:
                self.add_row(*self.row(t), key=t.case_id)
            if self.row_count:
                self.move_cursor(row=min(cursor, self.row_count - 1))
            return
        # a few rows come and go each tick while a 10k-trial stage runs: move those, measure only those
        for c in gone:
            self.remove_row(c)
        for t in wanted:
            if t.case_id not in have:
                self.add_row(*self.row(t), key=t.case_id)
            elif changed is None or t.case_id in changed:
                cells = self.get_row(t.case_id)
                for (_, col), v, old in zip(self.cols, self.row(t), cells):
                    if plain(v) != old:  # each update makes Textual render the visible rows again
                        self.update_cell(t.case_id, col, v, update_width=True)  # "⊘ cancelled", not "⊘ cancell"
        if [str(r.key.value) for r in self.ordered_rows] != order:
            pos = {c: k for k, c in enumerate(order)}
            self.sort("case", key=lambda cell: pos[cell.plain[2:]])  # the case cell: "<mark> <case id>"

    def matches(self, t: TrialState) -> bool:
        if not self.filter:
            return True
        hay = f"{t.case_id} {t.eco} {t.status} {(t.failure or {}).get('type', '')} {t.parent or ''}".lower()
        return all(word in hay for word in self.filter.lower().split())

    def row(self, t: TrialState) -> list[Any]:
        m = t.metrics or {}
        params = ",".join(f"{v:g}" for v in t.params.values())  # names are in the detail view
        status = trial_status(t, self.engine_alive)
        detail = (t.failure or {}).get("type", "") if status == "failed" else ""
        mark = self.marks.get(t.case_id, " ")
        return [f"{mark} {t.case_id}", status_cell(status, detail, self.app.current_theme), ns(m.get("wns_ps")),
                ns(m.get("tns_ps")), f"{t.eco}({params})" if params else t.eco, t.parent or "—",
                mw(m.get("power_total_w")), um2(m.get("area_um2")),
                fmt_seconds(trial_seconds(t)) if t.ended_at else ("…" if status == "running" else ""),
                *([str((t.resources or {}).get("node", ""))] if len(self.cols) > len(self.COLUMNS) else [])]


def _num(t: TrialState, k: str) -> float:
    v = (t.metrics or {}).get(k)
    return v if isinstance(v, (int, float)) else float("-inf")
