"""Beside the stage table: the survivor funnel, best WNS by stage, the route stages' ranking
agreement, and a cluster's status, each as the engine journaled it."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from noodle2.console.headless import cluster_parts
from noodle2.console.view import ns, running_best
from noodle2.console.widgets.funnel import SurvivorFunnel
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.files import agreement_line


class StudySide(Vertical):
    def compose(self) -> ComposeResult:
        yield SurvivorFunnel(id="funnel")
        yield Label("best WNS by stage, ns (bar: gain over the base)", id="trend-label")
        yield Label("—", id="trend", markup=False)
        yield Label("", id="agreement", markup=False)
        yield Label("", id="cluster", markup=False)

    def show(self, s: StudyState, engine_alive: bool) -> None:
        self.query_one(SurvivorFunnel).show(s)
        self.query_one("#trend", Label).update(trend_text(s))
        routed = [st for st in s.stages if st.agreement is not None]
        agreement = self.query_one("#agreement", Label)
        agreement.display = bool(routed)
        if routed:  # as journaled when the route stage chose its survivors
            agreement.update(f"{routed[-1].name}: {agreement_line(routed[-1].agreement)}")
        cluster = self.query_one("#cluster", Label)
        cluster.display = s.cluster is not None
        if s.cluster is not None:  # as the engine last journaled it
            seen = "" if engine_alive else " (when last seen)"
            cluster.update("\n".join(cluster_parts(s.cluster)) + seen)


BAR = 12


def trend_text(s: StudyState) -> str:
    """One line per stage with a result: its name, its best WNS with the unit's digits, and a
    bar of its gain over the base against the largest gain (a stage no better than the base has
    an empty bar, and says its number anyway)."""
    base = s.base()
    b0 = (base.metrics or {}).get("wns_ps") if base else None
    rows = [(st.name, b) for st in s.stages if (b := running_best(s, st)) is not None]
    if not rows:
        return "—"
    ref = b0 if b0 is not None else min(b for _, b in rows)
    top = max(max(b - ref for _, b in rows), 1e-9)
    width = max(len(n) for n, _ in rows)
    out = []
    for name, b in rows:
        fill = round(BAR * max(b - ref, 0.0) / top)
        out.append(f"{name:<{width}} {ns(b):>8} {'█' * fill}{'░' * (BAR - fill)}")
    return "\n".join(out)
