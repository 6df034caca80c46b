"""The tool adapter contract: prepare a trial's command, then turn its outputs into metrics."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.executors import Command, ExecResult
from engine.policy.failures import failure


@dataclass(frozen=True)
class TrialContext:
    study_dir: Path
    case_id: str
    trial_dir: Path
    parent_dir: Path  # read-only to the trial; the snapshot directory for the base case
    parent_metrics: dict[str, Any] | None
    eco: str
    params: dict[str, Any]
    mode: str
    soft_timeout_s: float
    hard_timeout_s: float
    memory_limit_mb: int | None


class TrialFailure(Exception):
    """Raised by `collect` when the run produced no usable result."""

    def __init__(self, kind: str, reason: str, excerpt: str = "") -> None:
        super().__init__(reason)
        self.failure = failure(kind, reason, excerpt)


class ToolAdapter(Protocol):
    name: str

    def implements(self) -> set[str]: ...  # ECO names this tool can apply

    def setup(self) -> dict[str, Any]: ...  # once per study, before the base case; provenance

    def prepare(self, ctx: TrialContext) -> Command: ...

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]: ...


def tail(path: Path, limit: int = 1200) -> str:
    """The last `limit` characters of a log: the excerpt every failure carries."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(size - limit, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
