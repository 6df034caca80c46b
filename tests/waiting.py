"""Waiting on conditions, never on wall-clock windows: each wait polls its condition and fails
with a message only after a generous timeout, so a slow machine passes and a fast one is quick."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from noodle2.engine.journal.store import JOURNAL

TIMEOUT_S = 60.0
STALL_S = 120.0  # a hang detector fires only after this long without any progress at all


def _check(cond: Callable[[], object]) -> tuple[object, Exception | None]:
    """A condition that raises (a widget not mounted yet) is simply not met yet."""
    try:
        return cond(), None
    except Exception as e:  # noqa: BLE001 - reported if the wait times out
        return None, e


def wait_until(cond: Callable[[], object], what: str, timeout: float = TIMEOUT_S, every: float = 0.02,
               progress: Callable[[], object] | None = None):
    """With `progress` (a study's journal lines, say), `timeout` counts from its last change: a
    long wait on a loaded machine that keeps moving never fails; one that stalls does."""
    end = time.monotonic() + timeout
    last = progress() if progress is not None else None
    while True:
        value, err = _check(cond)
        if value:
            return value
        if progress is not None and (now := progress()) != last:
            last, end = now, time.monotonic() + timeout
        if time.monotonic() > end:
            stalled = f" (no progress since {last!r})" if progress is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{stalled}"
                                 + (f" (last: {err!r})" if err else ""))
        time.sleep(every)


async def settle(pilot, cond: Callable[[], object], what: str, timeout: float = TIMEOUT_S):
    """Pilot's version: let the app run until `cond()` holds."""
    end = time.monotonic() + timeout
    while True:
        value, err = _check(cond)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" + (f" (last: {err!r})" if err else ""))
        await pilot.pause(0.02)


async def watchdog(progress: Callable[[], object], what: str, stall_s: float = STALL_S) -> None:
    """Run beside a task: fail only when `progress()` has not changed for `stall_s`.  A loaded
    machine is slow but keeps making progress, so this never fires on it; a hang does."""
    import anyio

    last, since = progress(), time.monotonic()
    while True:
        await anyio.sleep(0.05)
        now_value = progress()
        if now_value != last:
            last, since = now_value, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise AssertionError(f"no progress for {stall_s:g} s in {what} (stuck at {last!r})")


def journal_lines(d: Path) -> int:
    """Complete lines in a study's journal (a torn last line does not count)."""
    try:
        return (d / JOURNAL).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
