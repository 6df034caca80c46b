"""The tool adapter contract: prepare a trial's command, then turn its outputs into metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from noodle2.engine.executors.base import Command, ExecResult
from noodle2.engine.policy.failures import failure


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
    expect: dict[str, str] = field(default_factory=dict)  # input path -> sha256, checked before use
    attempt: int = 1


class TrialFailure(Exception):
    """Raised by `collect` when the run produced no usable result."""

    def __init__(self, kind: str, reason: str, excerpt: str = "") -> None:
        super().__init__(reason)
        self.failure = failure(kind, reason, excerpt)


class ToolAdapter(Protocol):
    name: str
    reports_metrics: bool  # False: trials report none, so no metric is required of them

    def implements(self) -> set[str]: ...  # ECO names this tool can apply

    def setup(self) -> dict[str, Any]: ...  # once per study, before the base case; provenance

    def snapshot_files(self) -> list[Path]: ...  # what every trial reads: hashed, checked before use

    def prepare(self, ctx: TrialContext) -> Command: ...

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]: ...

    def outputs(self, ctx: TrialContext) -> list[str]: ...  # trial files its children read

    # Equivalence of a trial's result with its parent's, or None when the tool has nothing to
    # prove (no netlist).  Runs in a worker thread; may write under the trial directory.
    def prove(self, trial_dir: Path, parent_dir: Path) -> dict[str, Any] | None: ...


@dataclass
class LogScan:
    lines: dict[str, list[str]]  # prefix -> the first lines that start with it
    counts: dict[str, int]  # prefix -> how many lines start with it


def scan_lines(path: Path, prefixes: tuple[str, ...], keep: int = 20, max_bytes: int = 256 << 20,
               anywhere: bool = False, ignore: Callable[[str], bool] | None = None) -> LogScan:
    """Lines of a log that start with each prefix (`anywhere`: that hold it), read line by line:
    a flooded log costs time, not memory.  Lines `ignore` accepts are neither kept nor counted."""
    found = LogScan({p: [] for p in prefixes}, dict.fromkeys(prefixes, 0))
    firsts = {p.encode()[:1] for p in prefixes}
    try:
        with open(path, "rb") as f:
            read = 0
            for raw in f:
                read += len(raw)
                if read > max_bytes:
                    break
                if not anywhere and raw[:1] not in firsts:
                    continue
                line = raw[:400].decode(errors="replace").rstrip()
                for p in prefixes:
                    if ((p in line) if anywhere else line.startswith(p)) and not (ignore and ignore(line)):
                        found.counts[p] += 1
                        if len(found.lines[p]) < keep:
                            found.lines[p].append(line)
    except OSError:
        pass
    return found


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
