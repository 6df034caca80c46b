"""Failure classification: from what a tool run left behind to type, severity and reason."""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Callable

CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
OOM_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
SEVERITY = {
    "tool_missing": "critical", "tool_crash": "error", "oom": "error", "timeout": "warning",
    "nonzero_exit": "error", "tool_error": "error", "snapshot_failed": "critical", "missing_output": "error", "parse_failure": "error",
    "eco_integrity": "warning", "cancelled": "info", "eco_not_applicable": "info", "output_flood": "error", "not_equivalent": "error",
    "route_failed": "warning", "place_failed": "error", "worker_lost": "warning", "escaped_write": "error",
}
RETRYABLE = {"timeout", "oom", "tool_crash", "worker_lost"}
NOT_THE_ECOS = {"worker_lost"}  # the machine failed, not the ECO: never counted against it or its prior


def charged(failure: dict[str, Any] | None) -> bool:
    """Whether a failed trial counts against its ECO (containment and priors)."""
    return (failure or {}).get("type") not in NOT_THE_ECOS


@dataclass(frozen=True)
class Outcome:
    """What the executor observed about one tool run."""

    rc: int | None = None
    signal: int | None = None
    timed_out: bool = False
    killed_by_us: bool = False
    cancelled: bool = False
    flooded: bool = False  # a log outgrew its cap and the tool was killed
    spawn_error: str | None = None
    worker_lost: str | None = None  # a remote executor lost the worker or node running the tool


def failure(kind: str, reason: str, excerpt: str = "") -> dict[str, Any]:
    return {"type": kind, "severity": SEVERITY.get(kind, "error"), "reason": reason, "excerpt": excerpt}


def classify(o: Outcome, excerpt: str | Callable[[], str]) -> dict[str, Any] | None:
    """None when the run itself succeeded (outputs are checked by the tool adapter).
    `excerpt` may be a function, called only on failure: a successful run reads no logs."""
    if o.spawn_error is None and o.worker_lost is None and not (o.cancelled or o.timed_out or o.flooded
                                                                or o.signal is not None or o.rc):
        return None
    if o.worker_lost is not None:  # nothing of the trial came back to read
        return failure("worker_lost", f"the Ray worker or node running the trial was lost ({o.worker_lost})")
    stderr_tail = excerpt() if callable(excerpt) else excerpt
    if o.spawn_error is not None:
        return failure("tool_missing", o.spawn_error)
    if o.cancelled:
        return failure("cancelled", "cancelled by the operator or a stop", stderr_tail)
    if o.flooded:
        return failure("output_flood", "the tool's stdout/stderr outgrew the log cap (execution.max_log_mb); "
                       "killed, logs truncated", stderr_tail)
    if o.timed_out:
        return failure("timeout", "exceeded the soft timeout; sent SIGTERM to the process group"
                       + (", then SIGKILL" if o.signal == signal.SIGKILL else ""), stderr_tail)
    if o.signal is not None:
        name = signal.Signals(o.signal).name if o.signal in signal.Signals._value2member_map_ else str(o.signal)
        if o.signal in CRASH_SIGNALS:
            return failure("tool_crash", f"tool died of {name}", stderr_tail)
        if o.signal == signal.SIGKILL and not o.killed_by_us:
            return failure("oom", "tool was SIGKILLed by someone else (the kernel OOM killer?)", stderr_tail)
        return failure("tool_crash", f"tool killed by {name}", stderr_tail)
    if o.rc:
        if any(m in stderr_tail for m in OOM_MARKERS):
            return failure("oom", f"tool ran out of memory (rc {o.rc})", stderr_tail)
        return failure("nonzero_exit", f"tool exited with rc {o.rc}", stderr_tail)
    return None


def backoff_s(seed: int, case: str, attempt: int, base_s: float, max_s: float) -> float:
    """How long attempt `attempt` (1: the first) waits before its retry: exponential, capped,
    with jitter drawn from a generator seeded by the study, the case and the attempt (the same
    schedule every time)."""
    import random

    if base_s <= 0:
        return 0.0
    full = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return round(full * (0.5 + 0.5 * random.Random(f"{seed}:{case}:{attempt}").random()), 3)
