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
from engine.errors import N2Error, env_fault
from engine.fsutil import NOFOLLOW, atomic_write
from engine.state import FoldError, StudyState, fold, from_snapshot

JOURNAL = "journal.jsonl"
CHECKPOINT = "checkpoint.json"
CHECKPOINT_VERSION = 2
READABLE_CHECKPOINTS = {1, 2}


@dataclass
class ReadResult:
    events: list[ev.Event]
    end: int  # byte offset after the last complete, valid line
    warnings: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line number of each event
    next_line: int = 1  # the line number at `end`, for a follower's next read


def _corrupt(path: Path, line: int, why: str) -> N2Error:
    return N2Error.one("N2-E205", f"{path} line {line} is corrupt: {why}")


def read_events(path: Path, start: int = 0, *, final: bool = True, first_line: int | None = None) -> ReadResult:
    """Decode complete lines from byte `start`.  A bad or unterminated last line is torn
    (dropped with a warning when `final`, left for later when following a live writer)."""
    try:
        with open(path, "rb") as f:
            if first_line is None:
                first_line = 1 + (_count_lines(f, start) if start else 0)
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return ReadResult([], start, next_line=first_line or 1)
    out: list[ev.Event] = []
    lines: list[int] = []
    warnings: list[str] = []
    pos, line = 0, first_line
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            if final:
                warnings.append(f"dropped torn last line of {path.name} at byte {start + pos} ({len(data) - pos} bytes)")
            break
        try:
            e = ev.decode(data[pos:nl])
        except ev.CorruptLine as err:
            if data.find(b"\n", nl + 1) < 0 and not data[nl + 1:].strip():
                warnings.append(f"dropped torn last line {line} of {path.name}: {err}")
                break
            raise _corrupt(path, line, str(err)) from None
        if e is None:
            warnings.append(f"skipped line {line} of {path.name}: an event type from a newer noodle2")
        else:
            out.append(e)
            lines.append(line)
        pos, line = nl + 1, line + 1
    return ReadResult(out, start + pos, warnings, lines, line)


def _count_lines(f, upto: int) -> int:
    n, left = 0, upto
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        n += chunk.count(b"\n")
        left -= len(chunk)
    return n


def fold_all(state: StudyState, r: ReadResult, path: Path) -> StudyState:
    """Fold a read's events; an event that does not fit the study is N2-E205 with its line."""
    for e, line in zip(r.events, r.lines):
        try:
            fold(state, e)
        except FoldError as err:
            raise _corrupt(path, line, str(err)) from None
    return state


class JournalWriter:
    """The single writer.  `append` hands a line to the OS; `sync` makes everything appended so
    far durable, sharing one fsync between all completions that arrive while one is under way.
    A full disk raises EnvironmentFault and leaves the journal ending at its last whole line."""

    def __init__(self, path: Path, valid_end: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | NOFOLLOW, 0o644)
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
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as err:
            try:  # no half line may stay: the next append (or a resume) starts clean
                os.ftruncate(self.fd, self.offset)
                os.lseek(self.fd, self.offset, os.SEEK_SET)
            except OSError:
                pass
            raise env_fault(err, "appending to the journal") or err from None
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
                await anyio.to_thread.run_sync(self._fsync)
                self.fsyncs += 1
                self._synced = max(self._synced, upto)
            finally:
                self._inflight = None
                done.set()

    def _fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as err:
            raise env_fault(err, "syncing the journal") or err from None

    def sync_now(self) -> None:
        self._fsync()
        self._synced = self._appended

    def close(self) -> None:
        os.close(self.fd)


def checkpoint_bytes(state: StudyState, journal_offset: int) -> bytes:
    return orjson.dumps({"version": CHECKPOINT_VERSION, "seq": state.seq, "journal_offset": journal_offset,
                         "state": state})


def write_checkpoint(study_dir: Path, state: StudyState, journal_offset: int) -> None:
    atomic_write(study_dir / CHECKPOINT, checkpoint_bytes(state, journal_offset))


@dataclass
class Recovered:
    state: StudyState
    end: int
    warnings: list[str]
    from_checkpoint: bool


def recover(study_dir: Path) -> Recovered:
    """Snapshot + journal tail.  Any doubt about the snapshot (unknown version, an offset that
    is not a line boundary, a tail that does not continue it) falls back to a full replay;
    only a journal that cannot be replayed is an error (N2-E205)."""
    path = study_dir / JOURNAL
    cp = study_dir / CHECKPOINT
    if cp.exists():
        try:
            return _from_checkpoint(study_dir, orjson.loads(cp.read_bytes()))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError, N2Error, FoldError) as e:
            why = e.render() if isinstance(e, N2Error) else f"{type(e).__name__}: {e}"
            warning = f"checkpoint unusable ({why}); replaying the whole journal"
        r = read_events(path, 0)
        return Recovered(fold_all(StudyState(), r, path), r.end, [warning] + r.warnings, False)
    r = read_events(path, 0)
    return Recovered(fold_all(StudyState(), r, path), r.end, r.warnings, False)


def _from_checkpoint(study_dir: Path, d: dict) -> Recovered:
    if d.get("version") not in READABLE_CHECKPOINTS:
        raise ValueError(f"checkpoint version {d.get('version')!r} is not one this noodle2 reads")
    state, start = from_snapshot(d["state"]), int(d["journal_offset"])
    path = study_dir / JOURNAL
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if start > size:
            raise ValueError("checkpoint is ahead of the journal")
        if start:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                raise ValueError(f"journal_offset {start} is not at a line boundary")
    r = read_events(path, start)
    if r.events and r.events[0].seq != state.seq + 1:
        raise ValueError(f"the journal continues at seq {r.events[0].seq}, the checkpoint at {state.seq + 1}")
    return Recovered(fold_all(state, r, path), r.end, r.warnings, True)


def is_study_dir(path: Path) -> bool:
    return (path / JOURNAL).is_file()
