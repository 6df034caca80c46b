"""journal.jsonl (the source of truth) and checkpoint.json (a snapshot of its fold).

Backend contract, after Optuna's journal storage: `append`, `sync` (durable), `read_events(from)`;
the snapshot is an optimisation that replay can always do without.
"""
from __future__ import annotations

import gc
import hashlib
import os
import signal
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator

import anyio
import orjson

from noodle2.engine.errors import N2Error, env_fault
from noodle2.engine.fsutil import NOFOLLOW, atomic_write, open_regular, read_study_file
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import FoldError, StudyState, fold, from_snapshot, to_snapshot

JOURNAL = "journal.jsonl"
CHECKPOINT = "checkpoint.json"
INPUTS = "inputs"  # the study file and the design as the run took them
CHECKPOINT_VERSION = 5
READABLE_CHECKPOINTS = {3, 4, 5}  # 1 and 2 carry no checksum: the journal is replayed instead
CHECKPOINT_MAX_BYTES = 4 << 30
_CP_HEAD = b'{"version":5,"sha256":"'
_CP_HEADS = (_CP_HEAD, b'{"version":4,"sha256":"', b'{"version":3,"sha256":"')  # 4: rows in one line; 3: objects
CHUNK_ROWS = 2000  # trial rows per checkpoint line


@dataclass
class ReadResult:
    events: list[ev.Event]
    end: int  # byte offset after the last complete, valid line
    warnings: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line number of each event
    offsets: list[int] = field(default_factory=list)  # byte offset where each event's line starts
    next_line: int = 1  # the line number at `end`, for a follower's next read
    checked: bool = False  # a line with a checksum was seen: every later one must carry one
    crc: int = 0  # CRC-32 of the journal up to `end` (given the CRC before `start`)


def _corrupt(path: Path, line: int, why: str, at: int | None = None) -> N2Error:
    cut = (f"; if only the lines from there on are damaged, `truncate -s {at} {path}` keeps everything "
           "before them (the trials they recorded run again)") if at is not None else ""
    return N2Error.one("N2-E205", f"{path} line {line} is corrupt: {why}",
                       hint=f"restore the journal from a backup{cut}")


def read_journal_bytes(path: Path, start: int = 0) -> bytes:
    """The journal from byte `start`: a regular file (never a FIFO, a device or a symlink)."""
    try:
        fd = open_regular(path)
    except ValueError as e:
        raise N2Error.one("N2-E212", f"{path} {e}; noodle2 never writes one like that") from None
    with os.fdopen(fd, "rb") as f:
        f.seek(start)
        return f.read()


def read_events(path: Path, start: int = 0, *, final: bool = True, first_line: int | None = None,
                checked: bool = False, crc: int = 0) -> ReadResult:
    """Decode complete lines from byte `start`.  A bad or unterminated last line is torn
    (dropped with a warning when `final`, left for later when following a live writer).
    Once a line carries a checksum (format 2), every later one must (`checked`: from the start)."""
    try:
        data = read_journal_bytes(path, start)
        if first_line is None:
            first_line = 1 + (_count_lines(path, start) if start else 0)
    except FileNotFoundError:
        return ReadResult([], start, next_line=first_line or 1, crc=crc)
    out: list[ev.Event] = []
    lines: list[int] = []
    offsets: list[int] = []
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
            if ev.has_checksum(data[pos:nl]):
                checked = True
            elif checked:
                raise ev.CorruptLine("no checksum, after lines that carry one")
        except ev.CorruptLine as err:
            if data.find(b"\n", nl + 1) < 0 and not data[nl + 1:].strip():
                warnings.append(f"dropped torn last line {line} of {path.name}: {err}")
                break
            raise _corrupt(path, line, str(err), start + pos) from None
        if e is None:
            warnings.append(f"skipped line {line} of {path.name}: an event type from a newer noodle2")
        else:
            out.append(e)
            lines.append(line)
            offsets.append(start + pos)
        pos, line = nl + 1, line + 1
    return ReadResult(out, start + pos, warnings, lines, offsets, line, checked, zlib.crc32(data[:pos], crc))


def _count_lines(path: Path, upto: int) -> int:
    n, left = 0, upto
    with os.fdopen(open_regular(path), "rb") as f:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


def fold_all(state: StudyState, r: ReadResult, path: Path) -> StudyState:
    """Fold a read's events; an event that does not fit the study, or whose sequence number does
    not follow the one before (a line duplicated or lost), is N2-E205 with its line."""
    for k, (e, line) in enumerate(zip(r.events, r.lines)):
        at = r.offsets[k] if k < len(r.offsets) else None
        if e.seq != state.seq + 1:
            raise _corrupt(path, line, f"sequence number {e.seq} does not follow {state.seq} (a line was duplicated, "
                                       "lost or reordered)", at)
        try:
            fold(state, e)
        except FoldError as err:
            raise _corrupt(path, line, str(err), at) from None
    return state


class JournalWriter:
    """The single writer.  `append` hands a line to the OS; `sync` makes everything appended so
    far durable, sharing one fsync between all completions that arrive while one is under way;
    `sync_soon` has a thread of the writer's do it without waiting (a trial's outcome: its
    worker goes on, and the loop does no work per fsync).  A full disk raises EnvironmentFault
    and leaves the journal ending at its last whole line; a failed background fsync is raised
    by the next append or sync (after a failed fsync, a later one may succeed with data lost)."""

    def __init__(self, path: Path, valid_end: int, crc: int | None = None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | NOFOLLOW, 0o644)
        if os.fstat(self.fd).st_size > valid_end:
            os.ftruncate(self.fd, valid_end)  # cut a torn tail so new lines start clean
        os.lseek(self.fd, valid_end, os.SEEK_SET)
        self.offset = valid_end
        self.crc = crc if crc is not None else journal_crc(path, valid_end)  # of bytes [0, offset)
        self._appended = 0
        self._synced = 0
        self._inflight: anyio.Event | None = None
        self.fsyncs = 0
        self.fault: Exception | None = None  # a background fsync failed
        self._want = threading.Event()
        self._syncer: threading.Thread | None = None
        self._closing = False

    def append(self, e: ev.Event) -> None:
        if self.fault is not None:
            raise self.fault
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
        self.crc = zlib.crc32(line, self.crc)
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
        if self.fault is not None:
            raise self.fault
        try:
            os.fsync(self.fd)
        except OSError as err:
            raise env_fault(err, "syncing the journal") or err from None

    def sync_now(self) -> None:
        self._fsync()
        self._synced = self._appended

    def sync_soon(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_behind, name="journal-sync", daemon=True)
            self._syncer.start()
        self._want.set()

    def _sync_behind(self) -> None:
        # Signals go to the loop's thread: with it blocking them at the end, one taken here would
        # act by default (SIGTERM killing the process) instead of by the caller's choice.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            self._want.wait()
            self._want.clear()
            upto = self._appended
            if upto > self._synced:
                try:
                    self._fsync()
                except Exception as err:  # noqa: BLE001 - kept for the loop: the next append raises it
                    self.fault = err
                    return
                self.fsyncs += 1
                self._synced = max(self._synced, upto)
            if self._closing:  # what was asked before close is synced
                return

    def close(self) -> None:
        if self._syncer is not None:
            self._closing = True
            self._want.set()
            self._syncer.join()
        os.close(self.fd)


def journal_crc(path: Path, upto: int) -> int:
    """CRC-32 of the journal's first `upto` bytes (what a checkpoint covers)."""
    crc, left = 0, upto
    try:
        with os.fdopen(open_regular(path), "rb") as f:
            while left > 0 and (chunk := f.read(min(left, 1 << 24))):
                crc = zlib.crc32(chunk, crc)
                left -= len(chunk)
    except FileNotFoundError:
        pass
    return crc


def checkpoint_parts(state: StudyState, journal_offset: int, journal_crc: int) -> Iterator[bytes]:
    """Format 5 after its checksum: the journal length and CRC it covers and the folded state on
    the first line; its trials as rows, CHUNK_ROWS to a line, on the lines after (parsed one
    line at a time, a 100k-trial checkpoint never holds the parser's copy of the whole).  Made
    a line at a time: at 100k trials 1 MB at once, where the joined 50 MB took three copies and
    left glibc's heap 20 MB bigger per checkpoint.  Formats 3 (trials as objects) and 4 (rows
    on the first line) are still read."""
    snap = to_snapshot(state, lazy=True)
    rows = snap["trial_rows"].pop("rows")
    snap["trial_rows"]["lines"] = -(-len(state.trials) // CHUNK_ROWS)
    yield b'"seq":%d,"journal_offset":%d,"journal_crc":"%08x","state":' % (state.seq, journal_offset, journal_crc)
    yield orjson.dumps(snap) + b"}"
    while line := list(islice(rows, CHUNK_ROWS)):
        yield b"\n" + orjson.dumps(line)


def write_checkpoint(study_dir: Path, state: StudyState, journal_offset: int, crc: int | None = None) -> None:
    """The checkpoint written as it is made, its sha256 put in the head once the rest is out.
    A checkpoint that does not check out is never used."""
    if crc is None:
        crc = journal_crc(study_dir / JOURNAL, journal_offset)
    h = hashlib.sha256()

    def parts() -> Iterator[bytes]:
        yield _CP_HEAD + b"0" * 64 + b'",'
        for part in checkpoint_parts(state, journal_offset, crc):
            h.update(part)
            yield part

    atomic_write(study_dir / CHECKPOINT, parts(), last=lambda fd: os.pwrite(fd, h.hexdigest().encode(), len(_CP_HEAD)))


def parse_checkpoint(data: bytes) -> dict:
    """The checkpoint's fields, or ValueError saying why it cannot be trusted.  Format 5's rows
    come as an iterator that parses one line at a time (it keeps `data` until consumed)."""
    if not data.startswith(_CP_HEADS):
        try:
            version = orjson.loads(data).get("version")
        except (orjson.JSONDecodeError, AttributeError):
            raise ValueError("not a checkpoint noodle2 wrote") from None
        if version in (1, 2):
            raise ValueError(f"format {version} carries no checksum")
        raise ValueError(f"checkpoint version {version!r} is not one this noodle2 reads")
    head = len(_CP_HEAD)  # the same length in formats 3 to 5
    view = memoryview(data)  # slices of a view: no 57 MB copies at 100k trials
    digest = data[head:head + 64]
    lined = data.startswith(_CP_HEAD)
    end = data.find(b"\n") if lined else len(data)
    end = len(data) if end < 0 else end
    rest = view[head + 66:] if lined else view[head + 66:-1]
    if data[head + 64:head + 66] != b'",' or data[end - 1:end] != b"}" or \
            hashlib.sha256(rest).hexdigest().encode() != digest:
        raise ValueError("its checksum does not match its contents")
    d = orjson.loads(view[:end])
    if lined:
        rows = d["state"]["trial_rows"]
        if data.count(b"\n", end) != rows.pop("lines"):
            raise ValueError("its row lines do not match their count")
        rows["rows"] = _row_lines(view, end)
    return d


def _row_lines(view: memoryview, start: int) -> Iterator[list]:
    obj = view.obj
    assert isinstance(obj, bytes)
    while start < len(obj):
        nl = obj.find(b"\n", start + 1)
        nl = len(obj) if nl < 0 else nl
        yield from orjson.loads(view[start + 1:nl])
        start = nl


@dataclass
class Recovered:
    state: StudyState
    end: int
    warnings: list[str]
    from_checkpoint: bool
    crc: int = 0  # of the journal's bytes [0, end)
    checked: bool = False  # its lines carry checksums: every later one must


@contextmanager
def collector_paused() -> Iterator[None]:
    """Folding 100k trials allocates millions of dicts and lists, none in a cycle; Python's
    collector would walk them over and over (a third of the time it takes to read them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def freeze_loaded() -> None:
    """While an engine runs a study or a view shows it, what was loaded stays out of the
    collector's sight: at 100k trials each full collection walked it for 0.1-0.2 s, in the
    middle of a keypress or of a trial's bookkeeping.  thaw() when done: a frozen object is
    never collected, and screens and tests leave cycles behind."""
    gc.freeze()


def thaw() -> None:
    gc.unfreeze()


def recover(study_dir: Path) -> Recovered:
    """Checkpoint + journal tail.  A checkpoint that does not check out (checksum, version, an
    offset off a line boundary, a tail that does not continue it) is set aside and the whole
    journal replayed, with a warning.  A journal that no longer holds what a sound checkpoint
    covers (shorter, or its bytes changed) is refused: N2-E213, or N2-E205 at the damaged line."""
    with collector_paused():
        return _recover(study_dir)


def _recover(study_dir: Path) -> Recovered:
    path = study_dir / JOURNAL
    cp = study_dir / CHECKPOINT
    warning = None
    if cp.exists() or cp.is_symlink():
        try:
            return _from_checkpoint(study_dir, parse_checkpoint(read_study_file(cp, CHECKPOINT_MAX_BYTES)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, FoldError) as e:
            warning = f"checkpoint unusable ({type(e).__name__}: {e}); replaying the whole journal"
        except N2Error as e:
            if e.codes[0] != "N2-E212":
                raise
            warning = f"checkpoint unusable ({e.problems[0].message}); replaying the whole journal"
    r = read_events(path, 0)
    return Recovered(fold_all(StudyState(), r, path), r.end, ([warning] if warning else []) + r.warnings, False, r.crc,
                     r.checked)


def _from_checkpoint(study_dir: Path, d: dict) -> Recovered:
    state, start = from_snapshot(d["state"]), int(d["journal_offset"])
    path = study_dir / JOURNAL
    size = os.lstat(path).st_size if path.is_file() else 0
    if start > size:
        raise N2Error.one("N2-E213", f"{path} holds {size} bytes, but the checkpoint covers its first {start}: "
                          "the journal was truncated, emptied or replaced", hint=(
                              f"restore journal.jsonl from a backup (at least {start} bytes); resuming without it "
                              "would run finished trials again, so noodle2 will not"))
    crc = journal_crc(path, start)
    if f"{crc:08x}" != d["journal_crc"]:
        fold_all(StudyState(), read_events(path, 0), path)  # names the damaged line when one shows it
        raise N2Error.one("N2-E205", f"{path} changed within its first {start} bytes, which the checkpoint covers",
                          hint="restore the journal from a backup")
    if start:
        with os.fdopen(open_regular(path), "rb") as f:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                raise ValueError(f"journal_offset {start} is not at a line boundary")
    r = read_events(path, start, checked=True, crc=crc)
    if r.events and r.events[0].seq != state.seq + 1:
        raise ValueError(f"the journal continues at seq {r.events[0].seq}, the checkpoint at {state.seq + 1}")
    return Recovered(fold_all(state, r, path), r.end, r.warnings, True, r.crc, True)


def is_study_dir(path: Path) -> bool:
    return (path / JOURNAL).is_file()


def require_study_dir(d: Path) -> None:
    """A study dir has a journal, or at least its inputs (a run killed before its first event)."""
    if not is_study_dir(d) and not (d / INPUTS / "study.toml").is_file():
        raise N2Error.one("N2-E203", f"{d} is not a study directory (no journal.jsonl)")
