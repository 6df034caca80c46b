"""The executor contract: a Job in, an ExecResult out.  Executors know nothing about studies."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from noodle2.engine.policy.failures import Outcome


@dataclass(frozen=True)
class Warm:
    """A command a long-lived worker may run instead of a fresh process (executors/warm.py):
    `argv` starts the worker; commands with the same `key` share workers."""

    key: str
    argv: tuple[str, ...]


@dataclass
class Command:
    argv: list[str]
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str] | None = None
    memory_limit_mb: int | None = None
    log_cap_bytes: int | None = None  # stdout/stderr beyond this: killed, classified output_flood
    contain_key: str | None = None  # set for trials: contained in a cgroup (or by marker); None runs plainly
    warm: Warm | None = None  # a warm worker may run it (when the executor keeps them)
    shared_read_only: tuple[str, ...] = ()  # dirs the tool must not write, the same for every trial
    read_only: tuple[str, ...] = ()  # ... and this trial's own (its parent): bound read-only where possible


@dataclass
class ExecResult:
    outcome: Outcome
    started: float
    ended: float
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    command: Command | None = None
    node: str = ""  # where it ran, for executors that run elsewhere
    warm_trial: int = 0  # on a warm worker: which of its trials this was (1: it started for it)
    escaped: tuple[str, ...] = ()  # writes outside the trial's directory seen where it ran (a remote scratch copy)
    warm_refused: str = ""  # it ran cold: a warm worker for it could not start (why)

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    def resources(self) -> dict[str, float | int | str | None]:
        o = self.outcome
        out: dict[str, float | int | str | None] = {
            "rc": o.rc, "signal": o.signal, "started": self.started, "ended": self.ended,
            "wall_s": round(self.wall_s, 6), "cpu_s": round(self.cpu_s, 6), "maxrss_kb": self.maxrss_kb}
        if self.node:
            out["node"] = self.node
        if self.warm_trial:
            out["warm_trial"] = self.warm_trial
        if self.warm_refused:
            out["warm_refused"] = self.warm_refused
        if self.command is not None:  # the exact command line, run in the trial's directory (provenance)
            out["command"] = shlex.join(self.command.argv)
        return out


@dataclass
class Job:
    """One trial's work for an executor: `prepare` makes the command, `collect` reads what it
    left.  Both run on this machine, in a worker thread; a remote executor ships `inputs` and
    the trial directory to where the command runs, and its files back."""

    prepare: Callable[[], Command]
    collect: Callable[[Command, ExecResult], Any] | None  # None: the caller collects
    soft_timeout_s: float
    hard_timeout_s: float
    inputs: list[str] = field(default_factory=list)  # files besides its directory the command reads
    name: str = ""  # what a cluster calls the work: the case and its ECO

class Executor(Protocol):
    async def run(self, job: Job) -> tuple[ExecResult, Any]: ...

    def close(self) -> None: ...
