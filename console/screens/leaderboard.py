"""The ECO leaderboard: the effectiveness the engine journaled at its last decision (imported
priors included), never recomputed here, so it shows what the engine actually used."""
from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from noodle2.console.view import ns
from noodle2.console.widgets.tables import SortableTable
from noodle2.engine.journal.state import StudyState
from noodle2.engine.policy.learn import lessons, recommendations, study_ranking

LEGEND = ("prior: trusted, mixed, unknown or suspicious (skipped in guarded and locked) · gained: trials that "
          "improved the ranking objective over their parent · ΔWNS/ΔTNS: change against the parent, ns")


class Board(SortableTable):
    COLUMNS = [("ECO", "eco"), ("prior", "prior"), ("trials", "trials"), ("gained", "successes"),
               ("failed", "failures"), ("mean ΔWNS ns", "mean_dwns"), ("best ΔWNS ns", "best_dwns"),
               ("mean ΔTNS ns", "mean_dtns")]


class LeaderboardScreen(Screen):
    HELP_TITLE = "the ECO leaderboard"
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back", tooltip="back to the study"),
                Binding("o", "sort", "sort", tooltip="sort by the next column (or click a header)"),
                Binding("question_mark", "help", "help", tooltip="this help")]

    def __init__(self, state: StudyState) -> None:
        super().__init__()
        self.s = state

    def compose(self) -> ComposeResult:
        yield Label("", id="detail-title", markup=False)
        yield Board(id="leaderboard", cursor_type="row", zebra_stripes=True)
        yield Label(LEGEND, classes="hint", id="board-legend")
        yield Label("", id="board-lessons", markup=False)
        yield Footer()

    def on_resize(self) -> None:
        self.app.check_size()  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        t = self.query_one(Board)
        t.add_sort_columns()
        t.sort_by, t.reverse = "rank", False
        self.fill()

    def title_text(self) -> str:
        t = self.query_one(Board)
        order = "the engine's order (prior, then mean ΔWNS)" if t.sort_by == "rank" else \
            next(label for label, k in Board.COLUMNS if k == t.sort_by) + (" ▼" if t.reverse else " ▲")
        stage = self.s.eco_stats_stage
        when = (f"as used to plan stage {self.s.stages[stage].name}" if stage is not None and stage < len(self.s.stages)
                else "at the end of the study")
        return f" ECO leaderboard — {self.s.name}, {when}; sorted by {order}"

    def fill(self) -> None:
        t = self.query_one(Board)
        t.clear()
        data: list[dict[str, Any]] = list(self.s.eco_stats)
        if t.sort_by != "rank":
            data.sort(key=lambda r: (r[t.sort_by] is None, r[t.sort_by] if r[t.sort_by] is not None else 0),
                      reverse=t.reverse)
        for r in data:
            t.add_row(*[ns(r[k]) if k in ("mean_dwns", "best_dwns", "mean_dtns") else
                        ("—" if r[k] is None else str(r[k])) for _, k in Board.COLUMNS], key=r["eco"])
        t.mark_sort()
        self.query_one("#detail-title", Label).update(self.title_text())
        obj, got = lessons(self.s, study_ranking(self.s))
        self.query_one("#board-lessons", Label).update(
            f"What the trials measured, for the next study ({obj}; `noodle2 suggest DIR` writes it):\n"
            + "\n".join(f"  {x}" for x in recommendations(obj, got)))
        if not data:
            self.query_one("#board-legend", Label).update("No ECO statistics yet: they are journaled when a stage "
                                                          "is planned.\n" + LEGEND)

    @on(DataTable.HeaderSelected)
    def header(self, event: DataTable.HeaderSelected) -> None:
        t = self.query_one(Board)
        key = str(event.column_key.value)
        t.reverse = not t.reverse if t.sort_by == key else key not in ("eco", "prior", "failures")
        t.sort_by = key
        self.fill()

    def action_sort(self) -> None:
        t = self.query_one(Board)
        keys = ["rank"] + [k for _, k in Board.COLUMNS]
        t.sort_by = keys[(keys.index(t.sort_by) + 1) % len(keys)]
        t.reverse = t.sort_by not in ("rank", "eco", "prior", "failures")
        self.fill()

    def action_help(self) -> None:
        self.app.show_help(self, [("columns", LEGEND)])
