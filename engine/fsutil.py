"""Filesystem helpers shared by the engine: one atomic writer, one lock."""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from engine.errors import N2Error


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename with fsyncs, so a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StudyLock:
    """The one-writer rule: an flock on <study>/.lock that the kernel drops when the engine dies."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid = lock_holder(self.path.parent)
            raise N2Error.one("N2-E201", f"study {self.path.parent} is being run by engine PID {pid}",
                              hint=f"another engine holds it; stop it with `kill -TERM {pid}` or wait") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def lock_holder(study_dir: Path) -> int | None:
    """PID of the engine holding the study, or None when no engine runs it."""
    path = study_dir / ".lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
