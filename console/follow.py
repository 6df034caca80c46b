"""Following a study from outside the engine: the journal (folded with the engine's reducer),
control requests into <study>/control/, and a detached engine process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import orjson

from noodle2.engine.errors import N2Error
from noodle2.engine.fsutil import atomic_write, lock_holder, open_log_for_append
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import FoldError, StudyState, fold
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from noodle2.engine.run.control import CONTROL_DIR


class StudyFollower:
    """Snapshot + tail once (or, with `replay`, every event from the first), then only the new
    complete lines at each poll."""

    def __init__(self, study_dir: Path, *, replay: bool = False) -> None:
        self.dir = study_dir
        rec = recover(study_dir) if (study_dir / JOURNAL).exists() and not replay else None
        self.state = rec.state if rec else StudyState()
        self.offset = rec.end if rec else 0
        self.line = None if rec and rec.end else 1  # counted on the first poll
        self.warnings = rec.warnings if rec else []
        self.checked = bool(rec and rec.checked)  # once lines carry checksums, every later one must

    def poll(self) -> list[ev.Event]:
        """New complete lines, folded; a line that does not fit is N2-E205 with its number."""
        return self.poll_each(None)

    def poll_each(self, each: Callable[[ev.Event, StudyState], None] | None) -> list[ev.Event]:
        """As poll, calling `each(event, state)` right after each event is folded."""
        path = self.dir / JOURNAL
        r = read_events(path, self.offset, final=False, first_line=self.line, checked=self.checked)
        for e, line in zip(r.events, r.lines):
            if e.seq != self.state.seq + 1:  # the engine's own check on resume, so views never disagree with it
                raise N2Error.one("N2-E205", f"{path} line {line} is corrupt: sequence number {e.seq} does not "
                                  f"follow {self.state.seq}")
            try:
                fold(self.state, e)
            except FoldError as err:
                raise N2Error.one("N2-E205", f"{path} line {line} is corrupt: {err}") from None
            if each is not None:
                each(e, self.state)
        self.offset, self.line, self.checked = r.end, r.next_line, r.checked
        return r.events

    def engine_pid(self) -> int | None:
        return lock_holder(self.dir)


def send_control(study_dir: Path, request: str, target: str = "") -> Path:
    """Drop a request where the engine looks; it answers with a ControlAck event."""
    d = study_dir / CONTROL_DIR
    d.mkdir(exist_ok=True)
    path = d / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.json"
    atomic_write(path, orjson.dumps({"request": request, "target": target, "from_pid": os.getpid()}))
    return path


def spawn_engine(study_dir: Path) -> int:
    """Start (or resume) the study's engine detached from this terminal: its own session, so
    closing the console or losing SSH (SIGHUP) leaves it running.  Output goes to engine.log."""
    log = os.fdopen(open_log_for_append(study_dir / "engine.log"), "ab")
    p = subprocess.Popen([sys.executable, "-m", "noodle2.console.cli", "resume", str(study_dir)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                         close_fds=True, cwd=os.getcwd())
    log.close()
    return p.pid
