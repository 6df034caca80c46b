"""What a trial must not touch: the snapshot, the study's inputs, its parent's files and the study
directory's own files.  The snapshot and the inputs are made read-only once written (a finished
trial's files already are); for root, and for a tool that changes modes, a manifest before and
after each trial catches a write that escaped the trial's directory.

The manifest holds the names and stats (size, mtime, inode, mode) of the snapshot, the inputs and
the parent's directory, and the names at the study directory's top level: a few dozen entries,
cheap enough to keep on.  It does not list `trials/` (100k entries in a large study); a write into
another finished trial's directory is caught when that trial is next read (its files are hashed).
With trials running at once, every trial that ran beside the write sees it: those trials run
again alone (`Watch` says which overlapped), and only the one that writes again is charged.
"""
from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

# files the engine rewrites whole at the top of a study directory
WRITTEN_FILES = ("checkpoint.json", "provenance.json", "eco_leaderboard.json", "eco_leaderboard.md", "safety_trace.jsonl",
                 "safety_trace.md", "lineage.dot", "postroute.md")
# every name the engine and the console put there (atomic_write's temp files too)
ENGINE_NAMES = frozenset({*WRITTEN_FILES, ".lock", "control", "inputs", "journal.jsonl", "legality_report.md", "snapshot",
                          "stages", "trials", "report", "README.md", "engine.log"})
_TEMP = re.compile(r"^\.(.+?)(\.\d+)+\.tmp$")
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH

Stat = tuple[int, int, int, int]


@dataclass(frozen=True)
class Manifest:
    files: dict[str, Stat]  # path -> (size, mtime_ns, inode, mode), every entry under the watched dirs
    top: frozenset[str]  # names at the study directory's top level


def watched(study_dir: Path, parent_dir: Path) -> list[Path]:
    dirs = [study_dir / "snapshot", study_dir / "inputs"]
    return dirs + ([parent_dir] if parent_dir not in dirs else [])


def take(study_dir: Path, parent_dir: Path) -> Manifest:
    files: dict[str, Stat] = {}
    for root in watched(study_dir, parent_dir):
        _scan(str(root), files)
    try:
        top = frozenset(os.listdir(study_dir))
    except FileNotFoundError:
        top = frozenset()
    return Manifest(files, top)


def _scan(path: str, files: dict[str, Stat]) -> None:
    """Every entry under `path`, symlinks not followed (scandir: a third cheaper than os.walk,
    and this runs twice per trial)."""
    try:
        it = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    with it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            files[e.path] = st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode
            if stat.S_ISDIR(st.st_mode):
                _scan(e.path, files)


def _engine_name(name: str) -> bool:
    m = _TEMP.match(name)
    return name in ENGINE_NAMES or (m is not None and m.group(1) in ENGINE_NAMES)


def escaped(before: Manifest, after: Manifest, study_dir: Path) -> list[str]:
    """What changed outside the trial's directory, as paths relative to the study directory."""
    rel = (lambda p: os.path.relpath(p, study_dir))
    out = [f"{rel(p)} {'removed' if p not in after.files else 'changed'}"
           for p, st in before.files.items() if after.files.get(p) != st]
    out += [f"{rel(p)} created" for p in after.files if p not in before.files]
    out += [f"{n} created" for n in after.top - before.top if not _engine_name(n)]
    return sorted(out)


def seal(paths: list[Path]) -> None:
    """Make files read-only (symlinks are left alone: their targets are not the study's)."""
    for p in paths:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o222:
            os.chmod(p, stat.S_IMODE(st.st_mode) & ~0o222 | stat.S_IRUSR)


class Watch:
    """Manifests taken as each trial's tool starts, checked as it ends, and which trials had
    another tool running beside them (a change they saw may be another's).  Thread-safe:
    trials start and end on executor threads."""

    def __init__(self, study_dir: Path) -> None:
        self.dir = study_dir
        self._lock = threading.Lock()
        self._before: dict[str, tuple[Manifest, Path]] = {}
        self._overlapped: set[str] = set()

    def start(self, case: str, parent_dir: Path) -> None:
        m = take(self.dir, parent_dir)
        with self._lock:
            if self._before:
                self._overlapped |= {*self._before, case}
            self._before[case] = (m, parent_dir)

    def drop(self, case: str) -> None:
        """Forget a trial whose attempt ended without its outputs being read (cancelled)."""
        with self._lock:
            self._before.pop(case, None)
            self._overlapped.discard(case)

    def end(self, case: str) -> tuple[list[str], bool]:
        """(what changed outside the trial's directory, whether another tool ran beside it)."""
        with self._lock:
            got = self._before.pop(case, None)
            overlapped = case in self._overlapped
            self._overlapped.discard(case)
        if got is None:
            return [], False
        before, parent_dir = got
        return escaped(before, take(self.dir, parent_dir), self.dir), overlapped
