"""Following a study from outside the engine: the journal (folded with the engine's reducer),
control requests into <study>/control/, and a detached engine process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

from engine import events as ev
from engine.fsutil import atomic_write, lock_holder
from engine.journal import JOURNAL, fold_all, read_events, recover
from engine.runner import CONTROL_DIR
from engine.state import StudyState


class StudyFollower:
    """Snapshot + tail once, then only the new complete lines at each poll."""

    def __init__(self, study_dir: Path) -> None:
        self.dir = study_dir
        rec = recover(study_dir) if (study_dir / JOURNAL).exists() else None
        self.state = rec.state if rec else StudyState()
        self.offset = rec.end if rec else 0
        self.line = None if rec and rec.end else 1  # counted on the first poll
        self.warnings = rec.warnings if rec else []

    def poll(self) -> list[ev.Event]:
        """New complete lines, folded; a line that does not fit is N2-E205 with its number."""
        r = read_events(self.dir / JOURNAL, self.offset, final=False, first_line=self.line)
        fold_all(self.state, r, self.dir / JOURNAL)
        self.offset, self.line = r.end, r.next_line
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
    log = open(study_dir / "engine.log", "ab")
    here = str(Path(__file__).resolve().parents[1])  # a source checkout or site-packages: either imports
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    p = subprocess.Popen([sys.executable, "-m", "console.cli", "resume", str(study_dir)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                         cwd=os.getcwd(), env=dict(os.environ, PYTHONPATH=path))
    log.close()
    return p.pid
