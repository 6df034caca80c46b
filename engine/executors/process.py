"""One tool command in a fresh process, contained, to completion: what a trial runs when no warm
worker runs it (executors/local.py, executors/warm.py's cold fallback, a Ray task, a Yosys run)."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from noodle2.engine.executors.base import Command, ExecResult
from noodle2.engine.executors.contain import MARKER, TrialCgroups, contained_argv, escalate, fstab, kill_marked
from noodle2.engine.policy.failures import Outcome

WATCH_TICK_S = 0.25  # how often a running tool's log sizes are checked against the cap


@dataclass
class Proc:
    """Shared between the thread that runs a job and the async side that may signal it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False  # the job began; a cancel must wait for `done`
    pid: int | None = None
    pending: int | None = None  # a signal asked for before the process existed
    timed_out: bool = False
    killed_by_us: bool = False
    cancelled: bool = False
    flooded: bool = False
    exited: bool = False  # set before reaping: the pid must not be signalled after that

    def send(self, sig: int, *, timeout: bool = False, cancel: bool = False, flood: bool = False) -> None:
        with self.lock:
            self.timed_out |= timeout
            self.cancelled |= cancel
            self.flooded |= flood
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


def run_command(cmd: Command, proc: Proc | None = None, timeouts: tuple[float, float] | None = None,
                cgroups: TrialCgroups | None = None, mounts: bool = False) -> ExecResult:
    """Run one command to completion in this thread (the executor's worker body).  With
    `timeouts` (soft, hard): SIGTERM to the group at soft, SIGKILL at hard.  With `mounts`, the
    command's read-only folders are bound so in its own mount namespace."""
    proc = proc or Proc()
    started = time.time()
    cg = None
    try:
        with open(cmd.stdout, "wb") as out, open(cmd.stderr, "wb") as err:
            if cgroups is not None and cmd.contain_key:
                cg = cgroups.open()
            try:
                ro = (*cmd.shared_read_only, *cmd.read_only) if mounts else ()
                fst = fstab(ro)
                try:
                    p = subprocess.Popen(contained_argv(cmd.argv, cmd.memory_limit_mb, cg, cmd.env, ro, fst is not None),
                                         cwd=cmd.cwd, env=cmd.env, stdin=subprocess.DEVNULL if fst is None else fst,
                                         stdout=out, stderr=err, start_new_session=True, close_fds=True)
                finally:
                    if fst is not None:
                        os.close(fst)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
                if cg is not None:
                    cgroups.release(cg)  # type: ignore[union-attr]
                return ExecResult(Outcome(spawn_error=f"cannot start {cmd.argv[0]!r}: {e.strerror}"), started,
                                  time.time(), command=cmd)
            with proc.lock:
                proc.pid = p.pid
                if proc.pending is not None:
                    os.killpg(p.pid, proc.pending)
            _watch(p.pid, proc, timeouts, (out.fileno(), err.fileno()), cmd.log_cap_bytes)
            # Wait without reaping, so the group id cannot be reused while we clean it up,
            # then kill whatever the tool left running, then reap with rusage.
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            with proc.lock:
                proc.exited = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if cg is not None:
                cgroups.release(cg)  # type: ignore[union-attr]
            elif cmd.contain_key and cmd.env and MARKER in cmd.env:
                kill_marked({cmd.env[MARKER]})  # children that left the group with setsid
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
            ended = time.time()
            if proc.flooded and cmd.log_cap_bytes is not None:
                for f in (out, err):
                    if os.fstat(f.fileno()).st_size > cmd.log_cap_bytes:
                        os.ftruncate(f.fileno(), cmd.log_cap_bytes)
    finally:
        proc.done.set()
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    outcome = Outcome(rc=rc, signal=sig, timed_out=proc.timed_out, killed_by_us=proc.killed_by_us,
                      cancelled=proc.cancelled, flooded=proc.flooded)
    return ExecResult(outcome, started, ended, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, cmd)


def _watch(pid: int, proc: Proc, timeouts: tuple[float, float] | None, logs: tuple[int, ...],
           cap: int | None) -> None:
    """Block until the process exits, sending SIGTERM to its group at the soft timeout and
    SIGKILL at the hard one, and SIGKILL as soon as a log outgrows `cap`.  A pidfd becomes
    readable when the process exits (Linux ≥ 5.3)."""
    if timeouts is None and cap is None:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # no pidfd: the caller's plain wait still works, without timeouts
    soft, hard = timeouts or (float("inf"), float("inf"))
    t0 = time.monotonic()
    termed = False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            deadline = hard if termed else soft
            wait = deadline - (time.monotonic() - t0)
            if cap is not None:
                wait = min(wait, WATCH_TICK_S)
            if poller.poll(None if wait == float("inf") else max(wait, 0.0) * 1000):
                return
            flooding = cap is not None and not proc.flooded and any(os.fstat(f).st_size > cap for f in logs)
            termed, hard = escalate(proc, time.monotonic() - t0, soft, hard, termed, flooding)
    finally:
        os.close(fd)

