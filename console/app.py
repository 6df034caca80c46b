"""The noodle2 console: the study picker and the live study view, over any study directory."""
from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from noodle2.console import themes
from noodle2.console.follow import spawn_engine
from noodle2.console.screens.modals import HelpScreen, TextScreen
from noodle2.console.screens.picker import PickerScreen
from noodle2.console.screens.study import StudyScreen
from noodle2.engine import DATA
from noodle2.engine.errors import N2Error

MIN_SIZE = (80, 24)
# Textual allocates freely while the view redraws ten times a second: with Python's default
# (700, 10, 10) the collector walked the render caches 6-11 times in 6 s at 0.1-0.16 s each
# (a keypress waited behind it); with these, none in the same run (console_throughput.py).
GC_THRESHOLDS = (5_000, 10, 100)


class TooSmallScreen(Screen):
    """Shown while the terminal is below MIN_SIZE: nothing else is drawn cut."""

    BINDINGS = [Binding("q", "app.quit", "quit")]

    def compose(self):
        from textual.widgets import Static

        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.refresh_text()

    def on_resize(self) -> None:
        w, h = self.app.size
        if w >= MIN_SIZE[0] and h >= MIN_SIZE[1]:
            if self.app.screen is self:
                self.app.pop_screen()
        else:
            self.refresh_text()

    def refresh_text(self) -> None:
        from textual.widgets import Static

        w, h = self.app.size
        self.query_one("#too-small", Static).update(
            f"noodle2 needs a window of at least {MIN_SIZE[0]}x{MIN_SIZE[1]}; this one is {w}x{h}.\n"
            "Make it larger (the study goes on), or press q to quit.")


class Noodle2App(App):
    CSS_PATH = str(DATA / "themes" / "noodle2.tcss")
    TITLE = "noodle2"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [Binding("ctrl+p", "command_palette", "palette", show=False)]

    def __init__(self, root: Path, *, theme: str | None = None, open_study: Path | None = None,
                 samples: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.root = root
        self.samples = samples or (Path("sample_studies") if Path("sample_studies").is_dir() else DATA / "sample_studies")
        self.initial = open_study
        self.clock = clock
        for t in themes.load_themes():
            self.register_theme(t)
        self.theme = themes.choose(theme)
        self._remember = theme is None  # --theme is for this run; palette choices are remembered
        self._gc_before: tuple[int, ...] | None = None

    def on_mount(self) -> None:
        self._gc_before = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        self.push_screen(PickerScreen(self.root, self.samples))
        if self.initial is not None:
            self.open_study(self.initial)
        self.check_size()

    def on_unmount(self) -> None:
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)

    def check_size(self) -> None:
        """Below 80x24 columns would drop digits: say so instead, until the window grows.  The
        screens call it on resize (the app's own Resize does not reach a handler here)."""
        small = self.size.width < MIN_SIZE[0] or self.size.height < MIN_SIZE[1]
        if small and len(self.screen_stack) > 1 and not isinstance(self.screen, TooSmallScreen):  # after on_mount
            self.push_screen(TooSmallScreen())  # it pops itself once the window is large enough

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "_remember", False):
            themes.remember(theme)

    def open_study(self, d: Path) -> None:
        try:
            screen = StudyScreen(d)
        except N2Error as e:  # e.g. a journal damaged before its last line
            self.push_screen(TextScreen(f"cannot open {d.name}", e.render()))
            return
        self.push_screen(screen)

    def start_study(self, file: Path) -> None:
        """New run from the picker: validate, make the study dir, start a detached engine."""
        from noodle2.engine.run.studydir import new_study_dir
        from noodle2.engine.study.load import load_study

        try:
            d = new_study_dir(load_study(file), self.root)
        except N2Error as e:
            self.push_screen(TextScreen(f"{file.name} is not valid", e.render()))
            return
        spawn_engine(d)
        self.open_study(d)

    def show_help(self, screen: Screen, legend: list[tuple[str, str]] | None = None) -> None:
        def keys(b: Binding) -> str:
            return " ".join(self.get_key_display(Binding(k.strip(), b.action)) for k in b.key.split(","))

        rows = [(keys(b), b.tooltip or b.description) for b in screen.BINDINGS if isinstance(b, Binding)]
        rows += [("ctrl+p", "command palette: actions and themes"), ("enter", "open the highlighted row")]
        title = getattr(screen, "HELP_TITLE", "") or type(screen).__name__.replace("Screen", "")
        self.push_screen(HelpScreen(rows, title, legend or []))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own "Theme" command would offer its 20 themes beside noodle2's three
        yield from (c for c in super().get_system_commands(screen) if c.title != "Theme")
        for short, name in themes.SHORT.items():
            yield SystemCommand(f"Theme: {short}", f"switch to the {short} theme (remembered)",
                                lambda name=name: setattr(self, "theme", name))
        if isinstance(screen, StudyScreen):
            for action, text in [("pause", "no new trials start"), ("resume", "resume a paused or interrupted study"),
                                 ("stop", "stop gracefully with a checkpoint"), ("cancel_trial", "cancel the selected trial"),
                                 ("follow", "toggle log follow")]:
                yield SystemCommand(f"Study: {action.replace('_', ' ')}", text,
                                    lambda a=action: self.run_action(a, screen))
        if isinstance(screen, PickerScreen):
            for action, text in [("new", "start a new run from a study file"), ("resume", "resume the selected study"),
                                 ("legality", "show a study file's legality report")]:
                yield SystemCommand(f"Studies: {action}", text, lambda a=action: self.run_action(a, screen))


    async def action_quit(self) -> None:
        self.goodbye = self.farewell()  # read now: once the app has exited its screens are gone
        self.exit()

    def farewell(self) -> str:
        """What to tell the operator when the console closes while engines run on."""
        from noodle2.engine.fsutil import lock_holder

        out = []
        for screen in self.screen_stack:
            if isinstance(screen, StudyScreen) and (pid := lock_holder(screen.dir)) is not None:
                out.append(f"{screen.dir.name}: the engine goes on (PID {pid}).  Attach again with\n"
                           f"  noodle2 console {self.root}      or      noodle2 watch {screen.dir}")
        return "\n".join(dict.fromkeys(out))


SMOKE = "NOODLE2_CONSOLE_SMOKE"  # headless: show the first screen, then exit (tests of --help examples)


def run_console(root: Path, *, theme: str | None = None, open_study: Path | None = None,
                start_engine: bool = False) -> int:
    app = Noodle2App(root, theme=theme, open_study=open_study)  # an unknown theme fails before any engine starts
    if open_study is not None and start_engine:
        spawn_engine(open_study)
    if os.environ.get(SMOKE):
        app.call_later(lambda: app.set_timer(0.3, app.exit))
        app.run(headless=True)
    else:
        app.run()
    if (text := getattr(app, "goodbye", "")):
        print(text, file=sys.stderr)
    return 0
