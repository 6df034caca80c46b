"""Executors run one tool command and report what happened; they know nothing about studies."""
from __future__ import annotations

import os
import signal
from typing import Any

import anyio

from noodle2.engine.executors.base import ExecResult, Job
from noodle2.engine.executors.contain import TrialCgroups, mount_ns
from noodle2.engine.executors.process import Proc, run_command
from noodle2.engine.executors.warm import WarmLimits, WarmPool


class LocalExecutor:
    """Runs the tool in its own session (process group), blocking in a worker thread: a
    Popen + wait4 in a thread costs ~0.4 ms where anyio's process API costs ~3 ms."""

    def __init__(self, max_parallel: int, warm: WarmLimits | None = None, mounts: bool = False) -> None:
        self.threads = anyio.CapacityLimiter(max_parallel + 2)
        self.cgroups = TrialCgroups.create()
        self.mounts = mounts and mount_ns() is not None  # read-only binds in a mount namespace per tool
        self.warm = WarmPool(warm, self.cgroups, self.mounts) if warm is not None and hasattr(os, "pidfd_open") else None

    @property
    def containment(self) -> str:
        return ("cgroup" if self.cgroups else "environment marker") + (", read-only mounts" if self.mounts else "")

    async def run(self, job: Job) -> tuple[ExecResult, Any]:
        proc = Proc()

        def work() -> tuple[ExecResult, Any] | None:
            try:
                with proc.lock:
                    if proc.cancelled:  # cancelled while queued: never start
                        return None
                    proc.started = True
                cmd = job.prepare()
                timeouts = (job.soft_timeout_s, job.hard_timeout_s)
                if cmd.warm is not None and self.warm is not None:
                    result = self.warm.run(cmd, proc, timeouts)
                else:
                    result = run_command(cmd, proc, timeouts, self.cgroups, self.mounts)
                return result, (job.collect(cmd, result) if job.collect else None)
            finally:
                proc.done.set()

        try:
            out = await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=self.threads)
        except anyio.get_cancelled_exc_class():
            proc.send(signal.SIGKILL, cancel=True)
            if proc.started:  # the tool is dying; its thread ends soon after
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(proc.done.wait)
            raise
        assert out is not None
        return out

    def close(self) -> None:
        if self.warm is not None:
            self.warm.close()
        if self.cgroups is not None:
            self.cgroups.close()
