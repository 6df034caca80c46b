"""One trial: metrics with deltas to parent and base, worst paths, artifacts, and its Tcl."""
from __future__ import annotations

from pathlib import Path

import orjson
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from noodle2.console.widgets.heatmap import Heatmap, load_maps
from noodle2.console.widgets.tables import PlainTable
from noodle2.engine.fmt import UNITS, metric_axis
from noodle2.engine.journal.state import StudyState

# metric, label, scale from the stored unit to the one people read, digits: the one unit rule
METRICS = [(k, metric_axis(k, column=True), scale, digits) for k, (_, _, scale, digits) in UNITS.items()]


def value(v: object, scale: float, digits: int) -> str:
    return f"{v * scale:,.{digits}f}" if isinstance(v, (int, float)) else "—"


def delta(a: object, b: object, scale: float = 1, digits: int = 3) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return f"{(a - b) * scale:+,.{digits}f}"
    return "—"


class TrialDetail(Screen):
    HELP_TITLE = "a trial's details"
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back"), Binding("question_mark", "help", "help"),
                Binding("m", "map('next_map')", "map", tooltip="next heatmap: density, RUDY, congestion, diffs"),
                Binding("y", "map('next_layer')", "layer", tooltip="next metal layer of the heatmap")]

    def __init__(self, study_dir: Path, state: StudyState, case: str) -> None:
        super().__init__()
        self.dir, self.s, self.case = study_dir, state, case

    def compose(self) -> ComposeResult:
        t = self.s.trials[self.case]
        params = ", ".join(f"{k}={v:g}" for k, v in t.params.items())
        yield Label(f" {t.case_id}  {t.eco}({params})  parent {t.parent or '—'}  status {t.status}", id="detail-title", markup=False)
        with VerticalScroll(id="detail-body"):
            if t.failure:
                f = t.failure
                yield Static(f"✗ {f.get('type')} ({f.get('severity')}): {f.get('reason')}\n\n{f.get('excerpt', '')}",
                             id="detail-failure", markup=False)
            yield PlainTable(id="detail-metrics", cursor_type="none")
            maps = load_maps(self.dir / "trials" / self.case / "maps")
            if maps:
                yield Label("heatmaps", classes="section")
                yield Heatmap(maps, id="detail-heatmap")
            yield Label("worst paths", classes="section")
            yield PlainTable(id="detail-paths", cursor_type="none")
            yield Label("artifacts", classes="section")
            yield Static(self.artifacts(), id="detail-artifacts", markup=False)
            yield Label("Tcl run by the tool", classes="section")
            yield Static(self.tcl(), id="detail-tcl", markup=False)
        yield Footer()

    def on_resize(self) -> None:
        self.app.check_size()  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        t = self.s.trials[self.case]
        m = t.metrics or {}
        parent = (self.s.trials[t.parent].metrics or {}) if t.parent else {}
        base = (self.s.base().metrics or {}) if self.s.base() else {}
        table = self.query_one("#detail-metrics", PlainTable)
        table.add_columns("metric", "value", "Δ parent", "Δ base")
        for key, label, scale, digits in METRICS:
            if key in m:
                table.add_row(label, value(m[key], scale, digits), delta(m[key], parent.get(key), scale, digits),
                              delta(m[key], base.get(key), scale, digits))
        if t.proof:
            p = t.proof
            table.add_row("equivalence", "proven" if p["proven"] else "NOT proven",
                          f"{p['method']}, {p['seconds']:.2f} s", p["detail"][:60])
        paths = self.query_one("#detail-paths", PlainTable)
        paths.add_columns("slack ns", "start", "end", "stages", "arrival ns")
        for p in m.get("worst_paths", []):
            paths.add_row(f"{p['slack_ps'] / 1000:+.3f}", p["startpoint"], p["endpoint"], str(p["stages"]),
                          f"{p['arrival_ns']:.3f}")

    def artifacts(self) -> str:
        d = self.dir / "trials" / self.case
        try:
            index = orjson.loads((d / "artifact_index.json").read_bytes())
            lines = [f"{a['label']:<22} {d / a['path']}" for a in index]
        except (OSError, orjson.JSONDecodeError):
            lines = [str(p) for p in sorted(d.glob("*"))] if d.is_dir() else ["(no trial directory yet)"]
        return f"{d}\n" + "\n".join(lines)

    def tcl(self) -> str:
        p = self.dir / "trials" / self.case / "run.tcl"
        if not p.is_file():
            return "(this tool ran no Tcl)"
        text = p.read_text(errors="replace")
        head, sep, rest = text.partition("\n# noodle2 ECO library")
        marker = "\nread_liberty"  # skip the inlined ECO library; show what this trial did
        return head if not sep else head + "\n# ... ECO library (engine/tools/timing/eco_lib.tcl) ..." + rest[rest.find(marker):]

    def action_map(self, action: str) -> None:
        for h in self.query(Heatmap):
            getattr(h, f"action_{action}")()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "map":  # the keys show only where there are maps
            return bool(self.query(Heatmap))
        return True

    def action_help(self) -> None:
        self.app.show_help(self)
