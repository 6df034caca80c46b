"""Operator control: stop signals, and requests (pause, resume, stop, cancel) as files in
<study>/control/.  Every request is answered with a ControlAck in the journal."""
from __future__ import annotations

import errno
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

import anyio
import orjson
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict

from noodle2.engine.errors import EnvironmentFault, validation_reason
from noodle2.engine.fsutil import NOFOLLOW, read_capped
from noodle2.engine.journal import events as ev
from noodle2.engine.run.host import Host

CONTROL_DIR = "control"
CONTROL_MAX_BYTES = 4096
CONTROL_QUIET_S = 1.0  # an unparsable request unchanged this long is refused; before that it may be half-written
CONTROL_POLL_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Controls:
    """The operator's hand on a running study: a pause gate that trials wait at before they
    start, the cancel scope of every running trial, and stop (signals and requests alike)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._unpause = anyio.Event()
        self._unpause.set()
        self.scopes: dict[str, anyio.CancelScope] = {}

    @property
    def paused(self) -> bool:
        return not self._unpause.is_set()

    async def wait_unpaused(self) -> None:
        await self._unpause.wait()

    @contextmanager
    def cancellable(self, case_id: str) -> Iterator[anyio.CancelScope]:
        """A scope a `cancel` request for `case_id` cancels while the block runs."""
        with anyio.CancelScope() as scope:
            self.scopes[case_id] = scope
            try:
                yield scope
            finally:
                self.scopes.pop(case_id, None)

    async def watch_signals(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as sigs:
            task_status.started()
            async for sig in sigs:
                self.host.stop(f"received {signal.Signals(sig).name}")

    async def watch_inbox(self) -> None:
        """Only small regular files are read, in a worker thread: a FIFO, a symlink or a huge
        file is refused with a warning and never blocks the loop."""
        cdir = self.host.dir / CONTROL_DIR
        cdir.mkdir(exist_ok=True)
        born = time.time()
        inbox = ControlInbox(cdir)
        try:
            while True:
                for name, req, sent, why in await anyio.to_thread.run_sync(inbox.poll, time.time()):
                    if req is None:
                        self.host.log("warning", f"control file {name} refused: {why}")
                    elif sent < born - 1.0:  # meant for an engine that is gone; a stale stop must not fire
                        self.host.emit(ev.ControlAck(request=req.request, target=req.target, accepted=False,
                                                     detail="expired: sent before this engine started"))
                    else:
                        self.handle(req.request, req.target)
                await anyio.sleep(CONTROL_POLL_S)
        except EnvironmentFault as f:
            self.host.machine_fault(f)

    def handle(self, request: str, target: str) -> None:
        ok, detail = True, ""
        if request == "pause":
            if self._unpause.is_set():  # a second pause keeps the Event the waiting trials hold
                self._unpause = anyio.Event()
            detail = "no new trials start; running ones finish"
        elif request == "resume":
            self._unpause.set()
        elif request == "stop":
            detail = "stopping gracefully"
        elif request == "cancel":
            scope = self.scopes.get(target)
            ok = scope is not None
            if scope is not None:
                scope.cancel()
            else:
                detail = f"{target} is not running"
        self.host.emit(ev.ControlAck(request=request, target=target, accepted=ok, detail=detail))
        if request == "stop":
            self.host.stop("operator requested stop")


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    request: Literal["pause", "resume", "stop", "cancel"]
    target: str = ""


class ControlInbox:
    """<study>/control/, read in a worker thread: every *.json entry becomes a request or a
    refusal and is removed.  The folder is opened without following a symlink and its entries
    are read and removed through that handle, so a control/ swapped for a link never reaches
    the link's target.  An empty or half-written request (a writer that creates the file, then
    fills it) is read again until it has not been modified for `quiet_s`."""

    def __init__(self, cdir: Path, quiet_s: float = CONTROL_QUIET_S) -> None:
        self.dir = cdir
        self.quiet_s = quiet_s
        self.stuck: set[str] = set()  # entries that could not be removed: read once, never again
        self.refused_dir = False

    def poll(self, now: float) -> list[tuple[str, ControlRequest | None, float, str]]:
        try:
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR) and not self.refused_dir:
                self.refused_dir = True
                return [(CONTROL_DIR, None, now, "is a symlink or not a folder; control requests are ignored "
                                                 "until it is a folder again")]
            return []
        self.refused_dir = False
        try:
            names = sorted(n for n in os.listdir(dfd) if n.endswith(".json") and n not in self.stuck)
            return [got for name in names if (got := self._one(dfd, name, now)) is not None]
        finally:
            os.close(dfd)

    def _one(self, dfd: int, name: str, now: float) -> tuple[str, ControlRequest | None, float, str] | None:
        req, why, sent = None, "", now
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            sent = st.st_mtime
            data = read_capped(name, CONTROL_MAX_BYTES, dir_fd=dfd)
            try:
                raw = orjson.loads(data)
            except orjson.JSONDecodeError:
                if abs(now - st.st_mtime) < self.quiet_s:  # may still be being written (abs: a skewed clock)
                    return None
                raise
            req = ControlRequest.model_validate(raw)
        except FileNotFoundError:
            return None
        except ValueError as e:  # JSONDecodeError and ValidationError are ValueErrors
            why = f"not a control request ({validation_reason(e)})"
        except OSError as e:
            why = e.strerror or str(e)
        try:
            os.unlink(name, dir_fd=dfd)  # the entry itself: a symlink is removed, never followed
        except FileNotFoundError:
            pass
        except OSError as e:
            self.stuck.add(name)
            req, why = None, f"cannot be removed ({e.strerror}); ignored from now on"
        return name, req, sent, why
