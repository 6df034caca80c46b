"""Executors run one tool command and report what happened; they know nothing about studies."""
from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import anyio

from engine.policy.failures import Outcome


@dataclass
class Command:
    argv: list[str]
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str] | None = None
    memory_limit_mb: int | None = None


@dataclass
class ExecResult:
    outcome: Outcome
    started: float
    ended: float
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    command: Command | None = None

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    def resources(self) -> dict[str, float | int | None]:
        o = self.outcome
        return {"rc": o.rc, "signal": o.signal, "started": self.started, "ended": self.ended,
                "wall_s": round(self.wall_s, 6), "cpu_s": round(self.cpu_s, 6), "maxrss_kb": self.maxrss_kb}


@dataclass
class Job:
    """One trial's work for an executor: `prepare` makes the command, `collect` reads what it
    left.  Both run where the command runs (a worker thread here, a remote node elsewhere)."""

    prepare: Callable[[], Command]
    collect: Callable[[Command, ExecResult], Any] | None  # None: the caller collects
    soft_timeout_s: float
    hard_timeout_s: float


class Executor(Protocol):
    async def run(self, job: Job) -> tuple[ExecResult, Any]: ...


@dataclass
class _Proc:
    """Shared between the waiting thread and the async side that may signal the group."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    pending: int | None = None  # a signal asked for before the process existed
    timed_out: bool = False
    killed_by_us: bool = False
    cancelled: bool = False
    exited: bool = False  # set before reaping: the pid must not be signalled after that

    def send(self, sig: int, *, timeout: bool = False, cancel: bool = False) -> None:
        with self.lock:
            self.timed_out |= timeout
            self.cancelled |= cancel
            self.killed_by_us |= sig == signal.SIGKILL
            if self.exited:
                return
            if self.pid is None:
                self.pending = sig
                return
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass


class LocalExecutor:
    """Runs the tool in its own session (process group), blocking in a worker thread: a
    Popen + wait4 in a thread costs ~0.4 ms where anyio's process API costs ~3 ms."""

    def __init__(self, max_parallel: int) -> None:
        self.threads = anyio.CapacityLimiter(max_parallel + 2)

    async def run(self, job: Job) -> tuple[ExecResult, Any]:
        proc = _Proc()

        def work() -> tuple[ExecResult, Any]:
            cmd = job.prepare()
            result = run_command(cmd, proc, (job.soft_timeout_s, job.hard_timeout_s))
            return result, (job.collect(cmd, result) if job.collect else None)

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=self.threads)
        except anyio.get_cancelled_exc_class():
            proc.send(signal.SIGKILL, cancel=True)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(proc.done.wait)
            raise


def _limit_memory(mb: int):  # runs in the child between fork and exec
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    return apply


def run_command(cmd: Command, proc: _Proc | None = None, timeouts: tuple[float, float] | None = None) -> ExecResult:
    """Run one command to completion in this thread (the executor's worker body).  With
    `timeouts` (soft, hard): SIGTERM to the group at soft, SIGKILL at hard."""
    proc = proc or _Proc()
    started = time.time()
    try:
        with open(cmd.stdout, "wb") as out, open(cmd.stderr, "wb") as err:
            try:
                p = subprocess.Popen(cmd.argv, cwd=cmd.cwd, env=cmd.env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err, start_new_session=True, close_fds=True,
                                     preexec_fn=_limit_memory(cmd.memory_limit_mb) if cmd.memory_limit_mb else None)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
                return ExecResult(Outcome(spawn_error=f"cannot start {cmd.argv[0]!r}: {e.strerror}"), started,
                                  time.time(), command=cmd)
            with proc.lock:
                proc.pid = p.pid
                if proc.pending is not None:
                    os.killpg(p.pid, proc.pending)
            if timeouts is not None:
                _enforce_timeouts(p.pid, proc, *timeouts)
            # Wait without reaping, so the group id cannot be reused while we clean it up,
            # then kill whatever the tool left running in its group, then reap with rusage.
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            with proc.lock:
                proc.exited = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
            ended = time.time()
    finally:
        proc.done.set()
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    outcome = Outcome(rc=rc, signal=sig, timed_out=proc.timed_out, killed_by_us=proc.killed_by_us,
                      cancelled=proc.cancelled)
    return ExecResult(outcome, started, ended, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, cmd)


def _enforce_timeouts(pid: int, proc: _Proc, soft: float, hard: float) -> None:
    """Block until the process exits, sending SIGTERM to its group at `soft` seconds and
    SIGKILL at `hard`.  A pidfd becomes readable when the process exits (Linux ≥ 5.3)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # no pidfd: the caller's plain wait still works, without timeouts
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(soft * 1000):
            proc.send(signal.SIGTERM, timeout=True)
            if not poller.poll(max(hard - soft, 0.0) * 1000):
                proc.send(signal.SIGKILL, timeout=True)
    finally:
        os.close(fd)


def kill_orphans(marker: str, values: set[str]) -> list[int]:
    """Kill the process groups of tools an engine left behind when it died (kill -9, power
    cut).  Every tool runs as a session leader with `marker=<its trial dir>` in its
    environment, which its children inherit; reading /proc finds them after the fact."""
    killed: list[int] = []
    prefix = marker.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        found = next((v[len(prefix):].decode(errors="replace") for v in env if v.startswith(prefix)), None)
        if found in values:
            try:
                os.killpg(os.getpgid(int(entry.name)), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed
