"""The ECO leaderboard of one study, live: the engine's effectiveness over the folded state."""
from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from engine.policy import priors
from engine.spec import Priors
from engine.state import StudyState

COLUMNS = [("ECO", "eco"), ("prior", "prior"), ("trials", "trials"), ("ok↑", "successes"), ("failed", "failures"),
           ("mean ΔWNS ps", "mean_dwns"), ("best ΔWNS ps", "best_dwns"), ("mean ΔTNS ps", "mean_dtns")]


def rows(s: StudyState) -> list[dict[str, Any]]:
    cfg = Priors.model_validate(s.spec.get("priors", {})) if s.spec else Priors()
    return priors.leaderboard(priors.effectiveness(s, s.trials.values(), cfg))


class LeaderboardScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back"), Binding("o", "sort", "sort"),
                Binding("question_mark", "help", "help")]

    def __init__(self, state: StudyState) -> None:
        super().__init__()
        self.s = state
        self.sort_by, self.reverse = "rank", False

    def compose(self) -> ComposeResult:
        yield Label(f" ECO leaderboard — {self.s.name}: ranked by prior, then mean ΔWNS  (o / click: sort)",
                    id="detail-title", markup=False)
        yield DataTable(id="leaderboard", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        for label, key in COLUMNS:
            t.add_column(label, key=key)
        self.fill()

    def fill(self) -> None:
        t = self.query_one(DataTable)
        t.clear()
        data = rows(self.s)
        if self.sort_by != "rank":
            data.sort(key=lambda r: (r[self.sort_by] is None, r[self.sort_by] if r[self.sort_by] is not None else 0),
                      reverse=self.reverse)
        for r in data:
            t.add_row(*[(f"{r[k]:+.1f}" if isinstance(r[k], float) else ("—" if r[k] is None else str(r[k])))
                        for _, k in COLUMNS], key=r["eco"])

    @on(DataTable.HeaderSelected)
    def header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        self.reverse = not self.reverse if self.sort_by == key else key not in ("eco", "prior", "failures")
        self.sort_by = key
        self.fill()

    def action_sort(self) -> None:
        keys = ["rank"] + [k for _, k in COLUMNS]
        self.sort_by = keys[(keys.index(self.sort_by) + 1) % len(keys)]
        self.reverse = self.sort_by not in ("rank", "eco", "prior", "failures")
        self.fill()

    def action_help(self) -> None:
        self.app.show_help(self)
