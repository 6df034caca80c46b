"""The study view's log panes: the engine log (the journal, formatted as headless output is)
and the selected trial's stdout/stderr, followed as they grow."""
from __future__ import annotations

from collections import deque
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Log, TabbedContent, TabPane

from noodle2.console.headless import Printer
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState, fold
from noodle2.engine.journal.store import JOURNAL, read_events

REPLAY_LINES = 2000
READ_CHUNK = 256_000


class LogPanes(Vertical):
    DEFAULT_CSS = "LogPanes > TabbedContent { height: 1fr; }"

    def __init__(self, study_dir: Path, **kw) -> None:
        super().__init__(**kw)
        self.dir = study_dir
        self.printer = Printer()
        self.case: str | None = None  # whose output the trial pane shows
        self.offsets: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        with TabbedContent():
            with TabPane("engine log", id="tab-engine"):
                yield Log(id="engine-log", max_lines=5000)
            with TabPane("trial output", id="tab-trial"):
                yield Log(id="trial-log", max_lines=5000)

    def replay(self, warnings: list[str]) -> None:
        """The journal so far, folded from the start: lines need their context."""
        log = self.query_one("#engine-log", Log)
        log.write_lines([f"! {w}" for w in warnings])
        s = StudyState()
        lines: deque[str] = deque(maxlen=REPLAY_LINES)
        for e in read_events(self.dir / JOURNAL, 0, final=False).events:
            fold(s, e)
            if (line := self.printer.line(e, s)) is not None:
                lines.append(line)
        log.write_lines(list(lines))

    def add(self, new: list[ev.Event], s: StudyState) -> None:
        lines = [line for e in new if (line := self.printer.line(e, s)) is not None]
        if lines:
            self.query_one("#engine-log", Log).write_lines(lines)

    def show_case(self, case: str | None) -> None:
        if case == self.case:
            return
        self.case, self.offsets = case, {}
        self.query_one("#trial-log", Log).clear()
        self.query_one(TabbedContent).get_tab("tab-trial").label = f"output: {case}" if case else "trial output"
        self.follow_case()

    def follow_case(self) -> None:
        """Append what the trial's stdout/stderr gained since the last look."""
        if self.case is None:
            return
        log = self.query_one("#trial-log", Log)
        for name in ("stdout.log", "stderr.log"):
            p = self.dir / "trials" / self.case / name
            off = self.offsets.get(name, 0)
            try:
                with open(p, "rb") as f:
                    f.seek(off)
                    data = f.read(READ_CHUNK)
            except OSError:
                continue
            if data:
                if off == 0:
                    log.write_line(f"── {self.case}/{name} ──")
                self.offsets[name] = off + len(data)
                log.write(data.decode(errors="replace"))

    def toggle_follow(self) -> bool:
        """Auto-scroll on or off for both panes; True when now on."""
        on = not self.query_one("#engine-log", Log).auto_scroll
        for log in self.query(Log):
            log.auto_scroll = on
            if on:  # Log follows only from the end: lines written while off left it above
                log.scroll_end(animate=False, immediate=True, x_axis=False)
        return on
