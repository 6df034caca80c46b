"""Beside the stage table: the survivor funnel, best WNS by stage, the route stages' ranking
agreement, and a cluster's status, each as the engine journaled it."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from noodle2.console.headless import cluster_parts
from noodle2.console.view import running_best
from noodle2.console.widgets.funnel import SurvivorFunnel
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.files import agreement_line


class StudySide(Vertical):
    def compose(self) -> ComposeResult:
        yield SurvivorFunnel(id="funnel")
        yield Label("best WNS by stage", id="trend-label")
        yield Sparkline([], id="trend")
        yield Label("", id="agreement", markup=False)
        yield Label("", id="cluster", markup=False)

    def show(self, s: StudyState, engine_alive: bool) -> None:
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
            seen = "" if engine_alive else " (when last seen)"
            cluster.update("\n".join(cluster_parts(s.cluster)) + seen)
