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
TAIL_BYTES = 2 << 20  # about 5,000 events: more than REPLAY_LINES lines
READ_CHUNK = 256_000
INDENT = "  "  # marks a wrapped line's continuation


class WrapLog(Log):
    """A Log that wraps long lines at its width instead of cutting them, and wraps again on a
    resize.  `write` holds a trailing partial line until its newline or the next `flush`."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.raw: deque[str] = deque(maxlen=self.max_lines)
        self._partial = ""
        self._wrapped_at = 0

    def _width_now(self) -> int:
        return max(20, self.scrollable_content_region.width - 1) if self.size.width else 200

    def _wrap(self, lines: list[str]) -> list[str]:
        w = self._width_now()
        out: list[str] = []
        for line in lines:
            line = line.expandtabs()
            while len(line) > w:
                cut = line.rfind(" ", len(INDENT) + 1, w)
                cut = cut if cut > w // 2 else w
                out.append(line[:cut])
                line = INDENT + line[cut:].lstrip(" ")
            out.append(line)
        return out

    def write_lines(self, lines, scroll_end: bool | None = None) -> "WrapLog":  # type: ignore[override]
        lines = [part for line in lines for part in (line.splitlines() or [""])]
        self.raw.extend(lines)
        return super().write_lines(self._wrap(lines), scroll_end)

    def write(self, data: str, scroll_end: bool | None = None) -> "WrapLog":  # type: ignore[override]
        *done, self._partial = (self._partial + data).split("\n")
        if done:
            self.write_lines(done, scroll_end)
        return self

    def flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self.write_lines([line])

    def clear(self) -> "WrapLog":
        self.raw.clear()
        self._partial = ""
        return super().clear()

    def on_resize(self) -> None:
        if self._width_now() != self._wrapped_at and self.raw:
            raw = list(self.raw)
            Log.clear(self)
            super().write_lines(self._wrap(raw), scroll_end=False)
            if self.auto_scroll:  # once the new height is laid out
                self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)
        self._wrapped_at = self._width_now()


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
                yield WrapLog(id="engine-log", max_lines=5000)
            with TabPane("trial output", id="tab-trial"):
                yield WrapLog(id="trial-log", max_lines=5000)

    def replay(self, warnings: list[str], now: StudyState) -> None:
        """The journal's last lines.  A journal up to TAIL_BYTES is folded from the start, each
        line in its own context; a longer one (a 100k-trial study's is 80 MB) is read from
        its last TAIL_BYTES only, formatted against the study as it is `now`, and says so."""
        log = self.query_one("#engine-log", WrapLog)
        log.write_lines([f"! {w}" for w in warnings])
        path = self.dir / JOURNAL
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        lines: deque[str] = deque(maxlen=REPLAY_LINES)
        if size <= TAIL_BYTES:
            s = StudyState()
            for e in read_events(path, 0, final=False).events:
                if e.seq > now.seq:
                    break  # written since the view folded the study: its next poll shows it, once
                fold(s, e)
                if (line := self.printer.line(e, s)) is not None:
                    lines.append(line)
        else:
            start = _line_after(path, size - TAIL_BYTES)
            for e in read_events(path, start, final=False, first_line=0).events:
                if e.seq <= now.seq and (line := self.printer.line(e, now)) is not None:
                    lines.append(line)
            log.write_line(f"… the journal's first {start / 2**20:.0f} MB are not shown here "
                           f"({path.name}; `noodle2 status` sums them up)")
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
        log = self.query_one("#trial-log", WrapLog)
        grew = False
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
                grew = True
                if off == 0:
                    log.flush()
                    log.write_line(f"── {name} ──")  # the tab names the case
                self.offsets[name] = off + len(data)
                log.write(data.decode(errors="replace"))
        if not grew:
            log.flush()  # a last line without its newline: show it once the file stops growing

    def toggle_follow(self) -> bool:
        """Auto-scroll on or off for both panes; True when now on."""
        on = not self.query_one("#engine-log", Log).auto_scroll
        for log in self.query(Log):
            log.auto_scroll = on
            if on:  # Log follows only from the end: lines written while off left it above
                log.scroll_end(animate=False, immediate=True, x_axis=False)
        return on


def _line_after(path: Path, offset: int) -> int:
    """The offset of the first line that starts at or after `offset`."""
    with open(path, "rb") as f:
        f.seek(max(offset - 1, 0))
        chunk = f.read(1 << 20)
    if offset == 0:
        return 0
    nl = chunk.find(b"\n")
    return offset - 1 + nl + 1 if nl >= 0 else offset - 1 + len(chunk)
