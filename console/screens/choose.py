"""Choosing a study file anywhere: type a path (tab completes it) or browse the tree below."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Input, Label


class PathSuggester(Suggester):
    """Completes the last component of a path from what is on disk (directories get a '/')."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        head, _, tail = value.rpartition("/")
        folder = Path(os.path.expanduser(head or ".")) if head or not value.startswith("/") else Path("/")
        try:
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(folder)
                           if e.name.startswith(tail) and not e.name.startswith(".")
                           and (e.is_dir() or e.name.endswith(".toml")))
        except OSError:
            return None
        return (f"{head}/" if head or value.startswith("/") else "") + names[0] if names else None


class StudyFiles(DirectoryTree):
    """Folders and .toml files only."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".toml")]


class ChooseStudyFile(ModalScreen[Path | None]):
    """A study file from anywhere: typed (tab completes) or picked in the tree."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, start: Path, purpose: str) -> None:
        super().__init__()
        self.start = start
        self.purpose = purpose

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-box"):
            yield Label(f"{self.purpose[:1].upper()}{self.purpose[1:]}: a study file.  Type its path (tab completes) "
                        "or pick it below; esc cancels.", id="choose-title", markup=False)
            yield Input(placeholder="path/to/study.toml", id="choose-path", suggester=PathSuggester())
            yield Label("", id="choose-error", markup=False)
            yield StudyFiles(self.start, id="choose-tree")

    def on_mount(self) -> None:
        self.query_one("#choose-path", Input).focus()

    def on_key(self, event) -> None:  # tab takes the suggestion, as shells do
        box = self.query_one("#choose-path", Input)
        if event.key != "tab" or not box.has_focus:
            return
        event.stop()
        event.prevent_default()
        if box._suggestion:
            box.value = box._suggestion
            box.cursor_position = len(box.value)
            self.query_one("#choose-error", Label).update("")
        else:  # say why nothing happened instead of leaving the box (shift+tab reaches the tree)
            self.query_one("#choose-error", Label).update(
                f"nothing to complete: no folder or .toml file starts with {box.value or 'that'!r} (shift+tab: the tree)")

    @on(Input.Submitted, "#choose-path")
    def typed(self, event: Input.Submitted) -> None:
        p = Path(os.path.expanduser(event.value.strip()))
        if p.is_file() and p.suffix == ".toml":
            self.dismiss(p)
        else:
            self.query_one("#choose-error", Label).update(f"{p} is not a .toml file")

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    def action_cancel(self) -> None:
        self.dismiss(None)
