"""Stage and trial tables: DataTables fed from folded state; only changed rows are touched."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from engine.reports import fmt_ns
from engine.state import StageState, StudyState, TrialState

SYMBOL = {"done": "✓", "failed": "✗", "running": "▶", "planned": "·", "cancelled": "⊘", "aborted": "✗",
          "skipped": "⊘", "pending": "·", "timeout": "⏱"}
STATUS_CLASS = {"done": "success", "failed": "error", "running": "accent", "cancelled": "warning", "aborted": "error"}


def status_cell(status: str, detail: str = "", theme: Any = None) -> Text:
    """Symbol + word, so meaning never rests on colour; the colour comes from the theme."""
    sym = SYMBOL.get(status, "?")
    colour = getattr(theme, STATUS_CLASS.get(status, ""), None) if theme is not None else None
    return Text(f"{sym} {status}{(' ' + detail) if detail else ''}", style=colour or "")


def _dur(a: float | None, b: float | None) -> str:
    return f"{b - a:6.1f}s" if a is not None and b is not None else ""


class StageTable(DataTable):
    COLUMNS = [("#", "idx"), ("stage", "name"), ("mode", "mode"), ("budget", "budget"), ("run", "running"),
               ("done", "done"), ("fail", "failed"), ("surv", "survivors"), ("best WNS", "wns"),
               ("best TNS", "tns"), ("time", "time")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for label, key in self.COLUMNS:
            self.add_column(label, key=key)

    def show(self, s: StudyState) -> None:
        for st in s.stages:
            cells = self.row(s, st)
            key = str(st.index)
            if key in self.rows:
                for (_, col), v in zip(self.COLUMNS, cells):
                    self.update_cell(key, col, v)
            else:
                self.add_row(*cells, key=key)

    @staticmethod
    def row(s: StudyState, st: StageState) -> list[Any]:
        ts = [s.trials[c] for c in st.cases]
        best = s.trials[st.survivors[0]].metrics or {} if st.survivors else {}
        return [str(st.index), st.name, st.mode, str(st.budget), str(sum(t.status == "running" for t in ts)),
                str(sum(t.status == "done" for t in ts)), str(sum(t.status == "failed" for t in ts)),
                str(len(st.survivors)), fmt_ns(best.get("wns_ps")), fmt_ns(best.get("tns_ps")),
                Text(f"{SYMBOL.get(st.status, '?')} ") + Text(_dur(st.started_at, st.ended_at))]


class TrialTable(DataTable):
    COLUMNS = [("case", "case"), ("status", "status"), ("WNS ns", "wns"), ("TNS ns", "tns"), ("ECO", "eco"),
               ("parent", "parent"), ("power mW", "power"), ("area µm²", "area"), ("time", "time")]
    SORT_KEYS = {"case": lambda t: (t.stage, t.index), "wns": lambda t: _num(t, "wns_ps"),
                 "tns": lambda t: _num(t, "tns_ps"), "power": lambda t: _num(t, "power_total_w"),
                 "area": lambda t: _num(t, "area_um2"), "status": lambda t: t.status, "eco": lambda t: t.eco,
                 "parent": lambda t: t.parent or "", "time": lambda t: (t.resources or {}).get("wall_s") or 0.0}

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for label, key in self.COLUMNS:
            self.add_column(label, key=key)
        self.sort_by = "case"
        self.reverse = False
        self.filter = ""
        self.front: set[str] = set()

    def show(self, trials: list[TrialState], front: set[str] | None = None, rebuild: bool = False,
             changed: set[str] | None = None) -> None:
        """Rebuild only when the rows or their order changed; otherwise touch `changed` rows
        (all rows when `changed` is None)."""
        front = front or set()
        rebuild = rebuild or front != self.front
        self.front = front
        wanted = [t for t in trials if self.matches(t)]
        wanted.sort(key=self.SORT_KEYS[self.sort_by], reverse=self.reverse)
        order = [t.case_id for t in wanted]
        if rebuild or len(order) != self.row_count or [str(k.value) for k in self.rows] != order:
            cursor = self.cursor_row
            self.clear()
            for t in wanted:
                self.add_row(*self.row(t), key=t.case_id)
            if self.row_count:
                self.move_cursor(row=min(cursor, self.row_count - 1))
            return
        for t in wanted:
            if changed is None or t.case_id in changed:
                for (_, col), v in zip(self.COLUMNS, self.row(t)):
                    self.update_cell(t.case_id, col, v)

    def matches(self, t: TrialState) -> bool:
        if not self.filter:
            return True
        hay = f"{t.case_id} {t.eco} {t.status} {(t.failure or {}).get('type', '')} {t.parent or ''}".lower()
        return all(word in hay for word in self.filter.lower().split())

    def row(self, t: TrialState) -> list[Any]:
        m = t.metrics or {}
        params = ",".join(f"{v:g}" for v in t.params.values())  # names are in the detail view
        detail = (t.failure or {}).get("type", "") if t.status in ("failed", "cancelled") else ""
        mark = "★ " if t.case_id in self.front else ""
        return [mark + t.case_id, status_cell(t.status, detail, self.app.current_theme), fmt_ns(m.get("wns_ps")),
                fmt_ns(m.get("tns_ps")), f"{t.eco}({params})" if params else t.eco, t.parent or "—",
                f"{m['power_total_w'] * 1e3:.3f}" if "power_total_w" in m else "—",
                f"{m['area_um2']:.0f}" if "area_um2" in m else "—",
                _dur(t.started_at, t.ended_at) if t.ended_at else ("…" if t.status == "running" else "")]


def _num(t: TrialState, k: str) -> float:
    v = (t.metrics or {}).get(k)
    return v if isinstance(v, (int, float)) else float("-inf")
