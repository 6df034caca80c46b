"""[notify]: when a study ends (or a stage aborts), run a command and/or POST JSON to a webhook.

Every attempt is journaled (NotificationSent).  Each has a timeout; failures retry with
exponential backoff; a notification that never gets through is journaled and forgotten: it
never fails, blocks or slows a study beyond its own bounded attempts.
"""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import anyio

TRIGGERS = ("complete", "failed", "blocked", "stage_aborted", "interrupted")


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


def run_command(argv: list[str], payload: dict[str, Any], timeout: float) -> Attempt:
    env = {**os.environ, "N2_NOTIFY_TRIGGER": payload["trigger"], "N2_NOTIFY_STATUS": payload["status"],
           "N2_NOTIFY_STUDY_DIR": payload["study_dir"]}
    try:
        r = subprocess.run(argv, input=json.dumps(payload).encode(), capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Attempt(False, f"timed out after {timeout:g} s", True)
    except OSError as e:
        return Attempt(False, f"cannot run {argv[0]}: {e.strerror or e}", False)
    if r.returncode:
        return Attempt(False, f"exit {r.returncode}: {r.stderr.decode(errors='replace')[-200:].strip()}", True)
    return Attempt(True, "exit 0", False)


async def deliver(channel: str, send: Callable[[], Attempt], retries: int, backoff_s: float,
                  record: Callable[[int, Attempt], None]) -> bool:
    """Try `send` up to 1 + retries times (off the event loop), recording each attempt."""
    for attempt in range(1, retries + 2):
        got = await anyio.to_thread.run_sync(send, abandon_on_cancel=True)
        record(attempt, got)
        if got.ok or not got.retry or attempt > retries:
            return got.ok
        await anyio.sleep(backoff_s * 2 ** (attempt - 1))
    return False
