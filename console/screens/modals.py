"""Small modal screens: help, confirmation, a text report, choosing a study file."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from noodle2.console.widgets.tables import PlainTable


class HelpScreen(ModalScreen[None]):
    """Every binding of the screen below, and the app's."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, bindings: list[tuple[str, str]], title: str, legend: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.rows = bindings
        self.legend = legend or []
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label(f"Keys — {self.title_text}   (esc closes)", id="help-title")
            yield PlainTable(id="help-table", cursor_type="none", show_header=False)
            legend = "   ".join(f"{sym} {meaning}" for sym, meaning in self.legend)
            yield Label((legend + "\n" if legend else "") + "Mouse: click rows, and column headers to sort.",
                        classes="hint", id="help-legend")

    def on_mount(self) -> None:
        t = self.query_one(PlainTable)
        t.add_columns("key", "what")
        for k, d in self.rows:
            t.add_row(k, d)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(ModalScreen[None]):
    """A read-only report: the legality report, validation errors."""

    BINDINGS = [Binding("escape,q", "close", "close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="text-box"):
            yield Label(self.title_text, id="text-title")
            with ScrollableContainer(id="text-scroll"):  # wide tables scroll sideways, never wrap into column 0
                yield Static(self.text, id="text-body", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
