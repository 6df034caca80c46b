"""journal.jsonl (the source of truth) and checkpoint.json (a snapshot of its fold).

Backend contract, after Optuna's journal storage: `append`, `sync` (durable), `read_events(from)`;
the snapshot is an optimisation that replay can always do without.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import orjson

from engine import events as ev
from engine.errors import N2Error
from engine.fsutil import atomic_write
from engine.state import StudyState, fold, from_snapshot

JOURNAL = "journal.jsonl"
CHECKPOINT = "checkpoint.json"


@dataclass
class ReadResult:
    events: list[ev.Event]
    end: int  # byte offset after the last complete, valid line
    warnings: list[str] = field(default_factory=list)


def read_events(path: Path, start: int = 0, *, final: bool = True) -> ReadResult:
    """Decode complete lines from byte `start`.  A bad or unterminated last line is torn
    (dropped with a warning when `final`, left for later when following a live writer)."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return ReadResult([], start)
    out: list[ev.Event] = []
    warnings: list[str] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            if final:
                warnings.append(f"dropped torn last line of {path.name} at byte {start + pos} ({len(data) - pos} bytes)")
            break
        try:
            out.append(ev.decode(data[pos:nl]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            if data.find(b"\n", nl + 1) < 0 and not data[nl + 1:].strip():
                warnings.append(f"dropped torn last line of {path.name} at byte {start + pos}: {e}")
                break
            raise N2Error.one("N2-E205", f"{path} line at byte {start + pos} is corrupt: {e}") from None
        pos = nl + 1
    return ReadResult(out, start + pos, warnings)


class JournalWriter:
    """The single writer.  `append` hands a line to the OS; `sync` makes everything appended so
    far durable, sharing one fsync between all completions that arrive while one is under way."""

    def __init__(self, path: Path, valid_end: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size > valid_end:
            os.ftruncate(self.fd, valid_end)  # cut a torn tail so new lines start clean
        os.lseek(self.fd, valid_end, os.SEEK_SET)
        self.offset = valid_end
        self._appended = 0
        self._synced = 0
        self._inflight: anyio.Event | None = None
        self.fsyncs = 0

    def append(self, e: ev.Event) -> None:
        line = ev.encode(e)
        os.write(self.fd, line)
        self.offset += len(line)
        self._appended += 1

    async def sync(self) -> None:
        target = self._appended
        while self._synced < target:
            if self._inflight is not None:
                await self._inflight.wait()
                continue
            self._inflight = done = anyio.Event()
            upto = self._appended
            try:
                await anyio.to_thread.run_sync(os.fsync, self.fd)
                self.fsyncs += 1
                self._synced = max(self._synced, upto)
            finally:
                self._inflight = None
                done.set()

    def sync_now(self) -> None:
        os.fsync(self.fd)
        self._synced = self._appended

    def close(self) -> None:
        os.close(self.fd)


def write_checkpoint(study_dir: Path, state: StudyState, journal_offset: int) -> None:
    data = orjson.dumps({"version": 1, "seq": state.seq, "journal_offset": journal_offset, "state": state})
    atomic_write(study_dir / CHECKPOINT, data)


@dataclass
class Recovered:
    state: StudyState
    end: int
    warnings: list[str]
    from_checkpoint: bool


def recover(study_dir: Path) -> Recovered:
    """Snapshot + journal tail; a bad snapshot falls back to a full replay."""
    warnings: list[str] = []
    state, start, used = StudyState(), 0, False
    cp = study_dir / CHECKPOINT
    if cp.exists():
        try:
            d = orjson.loads(cp.read_bytes())
            snap, start = from_snapshot(d["state"]), int(d["journal_offset"])
            if start > (study_dir / JOURNAL).stat().st_size:
                raise ValueError("checkpoint is ahead of the journal")
            state, used = snap, True
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as e:
            warnings.append(f"checkpoint unusable ({e}); replaying the whole journal")
            state, start = StudyState(), 0
    r = read_events(study_dir / JOURNAL, start)
    if used and r.events and r.events[0].seq != state.seq + 1:
        warnings.append("checkpoint does not match the journal; replaying the whole journal")
        state, r = StudyState(), read_events(study_dir / JOURNAL, 0)
        used = False
    for e in r.events:
        fold(state, e)
    return Recovered(state, r.end, warnings + r.warnings, used)


def is_study_dir(path: Path) -> bool:
    return (path / JOURNAL).is_file()
