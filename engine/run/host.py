"""What the engine's parts may ask of the engine: the study, its state, and the one way to
change that state (emit an event).  A test can stand in for the engine with anything this shape."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from noodle2.engine.errors import EnvironmentFault
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState
from noodle2.engine.study.models import StudySpec
from noodle2.engine.tools.base import ToolAdapter


class Host(Protocol):
    dir: Path  # the study directory
    spec: StudySpec
    state: StudyState  # folded from every event emitted so far
    tool: ToolAdapter
    stop_reason: str | None  # set once the study is being stopped

    def emit(self, e: ev.Event) -> None:
        """Journal `e` and fold it into `state` (raises EnvironmentFault on a full disk)."""

    def log(self, level: str, msg: str, case_id: str | None = None) -> None: ...

    async def sync(self) -> None:
        """Make what was emitted durable (fsync, shared by concurrent callers)."""

    def sync_soon(self) -> None:
        """Make what was emitted durable soon, without waiting for it (a trial's outcome)."""

    async def checkpoint(self) -> None:
        """Write checkpoint.json and the reports derived from the state."""

    def stop(self, reason: str) -> None:
        """Stop gracefully: running trials are cancelled, the study is interrupted, resumable."""

    def machine_fault(self, f: EnvironmentFault) -> None:
        """The machine failed the study (a full disk, a missing input): stop, and say so."""
