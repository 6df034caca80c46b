"""[notify]: when a study ends (or a stage aborts), run a command and/or POST JSON to a webhook.

Every attempt is journaled (NotificationSent).  Each has a timeout; failures retry with
exponential backoff; a notification that never gets through is journaled and forgotten: it
never fails, blocks or slows a study beyond its own bounded attempts.  Once the engine is told
to stop, no retry starts and the attempt under way gets STOP_GRACE_S at most; what was not
sent is journaled as such.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio

from noodle2.engine.errors import EnvironmentFault
from noodle2.engine.journal import events as ev
from noodle2.engine.reports.status import best_case
from noodle2.engine.run.host import Host

TRIGGERS = ("complete", "failed", "blocked", "stage_aborted", "interrupted")
STOP_GRACE_S = 3.0
# what a notify command inherits from the engine's environment; nothing else (no tokens, no keys)
ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class Attempt:
    ok: bool
    detail: str
    retry: bool  # worth another try (timeouts, refusals, 5xx, 429)


def post(url: str, payload: dict[str, Any], timeout: float) -> Attempt:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "noodle2"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - the study file names the URL
            return Attempt(True, f"HTTP {r.status}", False)
    except urllib.error.HTTPError as e:
        return Attempt(False, f"HTTP {e.code} {e.reason}", e.code >= 500 or e.code == 429)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Attempt(False, f"{type(reason).__name__}: {reason}", True)


async def post_async(url: str, payload: dict[str, Any], timeout: float) -> Attempt:
    """`post` in a daemon thread: a stop abandons it without holding the process open."""
    done, box = anyio.Event(), {}
    token = anyio.lowlevel.current_token()

    def run() -> None:
        try:
            box["got"] = post(url, payload, timeout)
        finally:
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except RuntimeError:  # the engine's loop is gone: nobody waits any more
                pass
    threading.Thread(target=run, name="noodle2-webhook", daemon=True).start()
    await done.wait()
    return box.get("got") or Attempt(False, "webhook thread ended without an answer", True)


def command_env(payload: dict[str, Any]) -> dict[str, str]:
    return {**{k: os.environ[k] for k in ENV_KEPT if k in os.environ}, "N2_NOTIFY_TRIGGER": payload["trigger"],
            "N2_NOTIFY_STATUS": payload["status"], "N2_NOTIFY_STUDY_DIR": payload["study_dir"]}


async def run_command(argv: list[str], payload: dict[str, Any], timeout: float) -> Attempt:
    """The program in its own session, killed with its children on a timeout or a stop."""
    try:
        proc = await anyio.open_process(argv, env=command_env(payload), start_new_session=True)
    except OSError as e:
        return Attempt(False, f"cannot run {argv[0]}: {e.strerror or e}", False)
    err = b""
    try:
        with anyio.move_on_after(timeout) as scope:
            async with proc:
                assert proc.stdin is not None and proc.stderr is not None
                try:
                    await proc.stdin.send(json.dumps(payload).encode())
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # a program that never reads its stdin (it has the payload's gist in its environment)
                await proc.stdin.aclose()
                async for chunk in proc.stderr:
                    err = (err + chunk)[-4096:]
                await proc.wait()
    finally:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            with anyio.CancelScope(shield=True):
                await proc.wait()
    if scope.cancelled_caught:
        return Attempt(False, f"timed out after {timeout:g} s", True)
    if proc.returncode:
        return Attempt(False, f"exit {proc.returncode}: {err.decode(errors='replace')[-200:].strip()}", True)
    return Attempt(True, "exit 0", False)


async def deliver(channel: str, send: Callable[[], Awaitable[Attempt]], retries: int, backoff_s: float,
                  record: Callable[[int, Attempt], None], stopping: anyio.Event) -> bool:
    """Try `send` up to 1 + retries times, recording each attempt.  After `stopping` is set no
    retry starts, and the attempt under way gets STOP_GRACE_S more at most."""
    attempt, ok, finished = 0, False, False
    async with anyio.create_task_group() as tg:
        async def cut_short() -> None:
            await stopping.wait()
            tg.cancel_scope.deadline = min(tg.cancel_scope.deadline, anyio.current_time() + STOP_GRACE_S)
        tg.start_soon(cut_short)
        while True:
            attempt += 1
            got = await send()
            record(attempt, got)
            if got.ok or not got.retry or attempt > retries:
                ok = got.ok
                break
            with anyio.move_on_after(backoff_s * 2 ** (attempt - 1)):
                await stopping.wait()
            if stopping.is_set():
                record(attempt + 1, Attempt(False, "not sent: the engine stopped before this retry", False))
                break
        finished = True
        tg.cancel_scope.cancel()
    if not finished:
        record(attempt, Attempt(False, "not sent: the engine stopped during this attempt", False))
    return ok


def _numbers(m: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (m or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Notifier:
    """[notify] for one engine run: `send` starts a notification in the group `open` holds,
    so the run waits for every notification (each bounded) before it ends."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.stopping = anyio.Event()  # set when the engine stops: no retry starts after it
        self._group: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as self._group:
            yield
        self._group = None

    def send(self, trigger: str, detail: str = "") -> None:
        n = self.host.spec.notify
        if trigger not in n.on or (n.command is None and n.webhook is None) or self._group is None:
            return
        self._group.start_soon(self._send, trigger, detail)

    async def _send(self, trigger: str, detail: str) -> None:
        n = self.host.spec.notify
        payload = await self._payload(trigger, detail)
        async with anyio.create_task_group() as tg:
            if n.webhook:
                tg.start_soon(deliver, "webhook", partial(post_async, n.webhook, payload, n.timeout_s),
                              n.retries, n.backoff_s, self._record("webhook", trigger), self.stopping)
            if n.command:
                tg.start_soon(deliver, "command", partial(run_command, n.command, payload, n.timeout_s),
                              n.retries, n.backoff_s, self._record("command", trigger), self.stopping)

    async def _payload(self, trigger: str, detail: str) -> dict[str, Any]:
        from noodle2.engine.reports import summary  # with its plots: loaded only when a report is asked for

        h, s = self.host, self.host.state
        report = None
        if h.spec.notify.report and trigger in ("complete", "failed", "blocked"):
            try:
                got = await anyio.to_thread.run_sync(summary.write, h.dir, s)
                report = str(Path(got["out"]) / "summary.html")
            except Exception as e:  # noqa: BLE001 - a report that cannot be written never stops a notification
                h.log("warning", f"report for the notification not written: {e}")
        best, base = best_case(s), s.base()
        done, total = s.counts()
        return {"study": s.name, "trigger": trigger, "status": s.status if trigger != "interrupted" else "interrupted",
                "reason": detail or s.reason, "study_dir": str(h.dir), "report": report,
                "trials": {"finished": done, "planned": total},
                "best": {"case": best.case_id, "metrics": _numbers(best.metrics)} if best else None,
                "base": {"case": base.case_id, "metrics": _numbers(base.metrics)} if base else None}

    def _record(self, channel: str, trigger: str) -> Callable[[int, Attempt], None]:
        def put(attempt: int, got: Attempt) -> None:
            try:
                self.host.emit(ev.NotificationSent(channel=channel, trigger=trigger, attempt=attempt, ok=got.ok,
                                                   detail=got.detail))
            except EnvironmentFault:
                pass  # a full disk stops the study elsewhere; a notification never adds to it
        return put
