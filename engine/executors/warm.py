"""Warm workers: a tool process that runs one trial after another, so what it loads once (an
OpenSTA worker: the Liberty of every corner) is not loaded again per trial.

The protocol is the worker program's (tools/timing/worker.tcl): one line per trial on its
stdin, the trial's directory; it runs the same script a cold run would, with its output in the
directory's stdout.log, and answers `n2-done <rc>` (or `n2-error <why>`) on the pipe named by
N2_REPLY_FD, having said `n2-ready` there once it started.  A worker that exits on its own
before that could not start (an installation's fault): its trial, and every later one of its
kind, runs cold, with why in the trial's resources (`warm_refused`).  Safety is the cold path's:
the worker is a session leader in a cgroup (or marked), under the trial's memory limit; a
timeout, a crash, a cancel or a log flood ends the worker's whole group and the trial is
classified from the same Outcome a cold run gives; the next trial gets a fresh worker.  A worker
is also replaced after `max_trials` trials, beyond `max_rss_mb` of memory, and when a trial left
any other process behind.
"""
from __future__ import annotations

import itertools
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from noodle2.engine.executors.base import Command, ExecResult
from noodle2.engine.executors.contain import MARKER, TrialCgroups, contained_argv, escalate, kill_marked, marked_pids
from noodle2.engine.executors.process import Proc, run_command
from noodle2.engine.policy.failures import Outcome

WORKER_MARK = ".warm-"  # a worker's marker: <trials folder>/.warm-<engine pid>.<n>
# <n> counts the process's workers, not one pool's: two pools' worker 1s would share a marker,
# and ending one (or a stray check) would sweep the other
_NUMBER = itertools.count(1)
_NUMBER_LOCK = threading.Lock()
TICK_S = 0.25  # how often log sizes are checked against the cap while a trial runs
STRAY_BYTES = 64 << 10  # of the worker's own stdout/stderr, what one trial's stderr.log gets


@dataclass(frozen=True)
class WarmLimits:
    max_trials: int = 200
    max_rss_mb: int = 2048


@dataclass
class _Worker:
    popen: subprocess.Popen[bytes]
    reply: int  # the read end of the reply pipe
    log: IO[bytes]  # the worker's own stdout and stderr: what no trial redirect caught
    key: tuple[str, int | None]
    marker: str
    cgroup: Path | None
    trials: int = 0
    ready: bool = False  # it said n2-ready: it started
    buf: bytes = b""  # what it sent on the reply pipe beyond the last whole line read

    def line(self) -> str | None:
        """The next whole line the worker sent, if one came."""
        head, nl, self.buf = self.buf.partition(b"\n")
        if not nl:
            self.buf = head
            return None
        return head.decode(errors="replace").strip()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_s(self) -> float:
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                return next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
        except (OSError, ValueError):
            return 0


@dataclass
class WarmPool:
    limits: WarmLimits
    cgroups: TrialCgroups | None
    mounts: bool = False  # start workers with the snapshot and the inputs bound read-only
    _idle: dict[tuple[str, int | None], list[_Worker]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    started: int = 0  # workers started: benchmarks and tests read it
    refused: dict[tuple[str, int | None], str] = field(default_factory=dict)  # key -> why its worker could not start
    closed: bool = False  # a worker whose trial ends after close() is ended, not kept

    def run(self, cmd: Command, proc: Proc, timeouts: tuple[float, float] | None) -> ExecResult:
        """One trial on a worker, in this thread; `proc` is the executor's Proc (signals), whose
        `done` is set on return, as run_command sets it."""
        try:
            return self._run(cmd, proc, timeouts)
        finally:
            proc.done.set()

    def _run(self, cmd: Command, proc: Proc, timeouts: tuple[float, float] | None) -> ExecResult:
        assert cmd.warm is not None
        if (why := self.refused.get((cmd.warm.key, cmd.memory_limit_mb))) is not None:
            return self._cold(cmd, proc, timeouts, why)
        started = time.time()
        for log in (cmd.stdout, cmd.stderr):
            open(log, "wb").close()
        try:
            w = self._take(cmd)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            return ExecResult(Outcome(spawn_error=f"cannot start {cmd.warm.argv[0]!r}: {e.strerror}"), started,
                              time.time(), command=cmd)
        cpu0, mark = w.cpu_s(), os.fstat(w.log.fileno()).st_size if w.trials else 0  # a new one may be printing already
        with proc.lock:
            proc.pid = w.pid
            if proc.pending is not None:
                os.killpg(w.pid, proc.pending)
        answer = self._ask(w, cmd, proc, timeouts)
        with proc.lock:
            proc.exited = True  # from here on the worker is not this trial's to signal
            refused = answer is None and not w.ready and not (proc.timed_out or proc.cancelled or proc.flooded
                                                              or proc.killed_by_us)
        cpu = w.cpu_s() - cpu0
        said = _copy_tail(w.log, mark, cmd.stderr)
        if answer is None:  # the worker died: reap it and read how, as a cold run would
            status = self._end(w)
            if refused:
                why = _last_line(said) or f"exited with status {os.waitstatus_to_exitcode(status)}"
                with self._lock:
                    self.refused.setdefault(w.key, why)
                with proc.lock:  # nothing signalled the worker: the cold run starts as a fresh trial
                    proc.pid, proc.exited = None, False
                return self._cold(cmd, proc, timeouts, why)
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            outcome = Outcome(rc=rc, signal=sig, timed_out=proc.timed_out, killed_by_us=proc.killed_by_us,
                              cancelled=proc.cancelled, flooded=proc.flooded)
            if proc.flooded and cmd.log_cap_bytes is not None:
                _truncate((cmd.stdout, cmd.stderr), cmd.log_cap_bytes)
            return ExecResult(outcome, started, time.time(), cpu, w.rss_kb(), cmd, warm_trial=w.trials + 1)
        rss = w.rss_kb()
        if answer.startswith("n2-error "):
            self._give_back(w, rss)
            return ExecResult(Outcome(spawn_error=f"cannot run the trial: {answer[9:]}"), started, time.time(),
                              command=cmd)
        word = answer.split()[1:2]
        rc = int(word[0]) if word and word[0].lstrip("-").isdigit() else 1
        self._give_back(w, rss)
        outcome = Outcome(rc=rc, timed_out=proc.timed_out, killed_by_us=proc.killed_by_us, cancelled=proc.cancelled,
                          flooded=proc.flooded)
        return ExecResult(outcome, started, time.time(), cpu, rss, cmd, warm_trial=w.trials)

    def _cold(self, cmd: Command, proc: Proc, timeouts: tuple[float, float] | None, why: str) -> ExecResult:
        result = run_command(cmd, proc, timeouts, self.cgroups, self.mounts)
        result.warm_refused = why
        return result

    def _take(self, cmd: Command) -> _Worker:
        key = (cmd.warm.key, cmd.memory_limit_mb)  # type: ignore[union-attr]
        with self._lock:
            idle = self._idle.get(key, [])
            if idle:
                return idle.pop()
        return self._spawn(cmd, key)

    def _spawn(self, cmd: Command, key: tuple[str, int | None]) -> _Worker:
        env = dict(cmd.env or os.environ)
        with self._lock:
            self.started += 1
        with _NUMBER_LOCK:  # two threads may spawn at once: each marker must be its worker's alone
            n = next(_NUMBER)
        # under the folder of the trials it serves: a resume finds a dead engine's workers by prefix
        marker = f"{Path(env.get(MARKER, str(cmd.cwd))).parent}/{WORKER_MARK}{os.getpid()}.{n}"
        r, wfd = os.pipe()
        env.update({MARKER: marker, "N2_REPLY_FD": str(wfd)})
        cg = self.cgroups.open() if self.cgroups is not None and cmd.contain_key else None
        log = tempfile.TemporaryFile()
        try:
            ro = cmd.shared_read_only if self.mounts else ()  # not the parent: it changes from trial to trial
            popen = subprocess.Popen(contained_argv(list(cmd.warm.argv), cmd.memory_limit_mb, cg, env, ro),  # type: ignore[union-attr]
                                     cwd=cmd.cwd.parent, env=env, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                     start_new_session=True, close_fds=True, pass_fds=(wfd,))
        except BaseException:
            os.close(r)
            log.close()
            if cg is not None:
                self.cgroups.release(cg)  # type: ignore[union-attr]
            raise
        finally:
            os.close(wfd)
        return _Worker(popen, r, log, key, marker, cg)

    def _ask(self, w: _Worker, cmd: Command, proc: Proc, timeouts: tuple[float, float] | None) -> str | None:
        """Send the trial, wait for the answer or the worker's death; time out and cap logs as
        the cold path does.  None: the worker died."""
        try:
            w.popen.stdin.write(os.fsencode(cmd.cwd) + b"\n")  # type: ignore[union-attr]
            w.popen.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return None
        soft, hard = timeouts or (float("inf"), float("inf"))
        t0, termed = time.monotonic(), False
        pidfd = os.pidfd_open(w.pid)
        try:
            poller = select.poll()
            poller.register(w.reply, select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            while True:
                line = w.line()
                if line == "n2-ready":
                    w.ready = True
                    continue
                if line is not None:
                    return line
                wait = min((hard if termed else soft) - (time.monotonic() - t0), TICK_S)
                ready = {fd for fd, _ in poller.poll(max(wait, 0.0) * 1000)}
                if w.reply in ready:  # read before the worker's exit: a dirty worker answers, then exits
                    data = os.read(w.reply, 4096)
                    if not data:
                        return None
                    w.buf += data
                elif pidfd in ready:
                    return None
                cap = cmd.log_cap_bytes
                flooding = cap is not None and not proc.flooded and _too_big((cmd.stdout, cmd.stderr), cap)
                termed, hard = escalate(proc, time.monotonic() - t0, soft, hard, termed, flooding)
        finally:
            os.close(pidfd)

    def _give_back(self, w: _Worker, rss_kb: int) -> None:
        """Back to the pool, unless the trial left a process behind, the worker is old or big,
        or it ended itself (a dirty worker answers, then exits)."""
        w.trials += 1
        strays = self._strays(w)
        if strays or w.trials >= self.limits.max_trials or rss_kb > self.limits.max_rss_mb << 10 \
                or w.popen.poll() is not None:
            self._end(w)
            return
        with self._lock:
            if not self.closed:
                self._idle.setdefault(w.key, []).append(w)
                return
        self._end(w)

    def _strays(self, w: _Worker) -> list[int]:
        if w.cgroup is not None:
            try:
                pids = [int(x) for x in (w.cgroup / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                return []
        else:
            pids = marked_pids({w.marker})
        return [p for p in pids if p != w.pid]

    def _end(self, w: _Worker) -> int:
        """Stop a worker and everything it started; its wait status."""
        try:
            w.popen.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            os.killpg(w.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _, status = os.waitpid(w.pid, 0)
        w.popen.returncode = os.waitstatus_to_exitcode(status)
        if w.cgroup is not None:
            self.cgroups.release(w.cgroup)  # type: ignore[union-attr]
        else:
            kill_marked({w.marker})
        os.close(w.reply)
        w.log.close()
        return status

    def close(self) -> None:
        with self._lock:
            self.closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
        for w in workers:
            self._end(w)


def _too_big(logs: tuple[Path, ...], cap: int) -> bool:
    for p in logs:
        try:
            if os.stat(p).st_size > cap:
                return True
        except OSError:
            pass
    return False


def _truncate(logs: tuple[Path, ...], cap: int) -> None:
    for p in logs:
        try:
            if os.stat(p).st_size > cap:
                os.truncate(p, cap)
        except OSError:
            pass


def _copy_tail(log: IO[bytes], mark: int, dest: Path) -> bytes:
    """What the worker printed outside any trial redirect while this trial ran (a crash
    message, say) goes to the trial's stderr.log, as a cold run's would; returned too.  pread:
    the worker shares the file's offset."""
    try:
        data = os.pread(log.fileno(), STRAY_BYTES, mark)
        if data:
            with open(dest, "ab") as f:
                f.write(data)
        return data
    except OSError:
        return b""


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
