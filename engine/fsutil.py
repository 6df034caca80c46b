"""Filesystem helpers shared by the engine: one atomic writer, one lock, no symlinks followed."""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from engine.errors import EnvironmentFault, N2Error, env_fault

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename with fsyncs, so a reader sees the old file or the new one, never half.
    A full disk leaves no temporary file behind and raises EnvironmentFault."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        fault = env_fault(e, f"writing {path.name}")
        if fault is not None:
            raise fault from None
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_tmp(d: Path) -> list[str]:
    """Temporary files of writers that died mid-write.  Only the lock holder may call this."""
    gone = []
    for p in d.glob(".*.tmp"):
        try:
            p.unlink()
            gone.append(p.name)
        except OSError:
            pass
    return gone


def refuse_symlink(path: Path) -> None:
    """Study paths noodle2 writes through must be real files or directories, not links out."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise N2Error.one("N2-E210", f"{path} is a symlink; refusing to follow it out of the study")
    except FileNotFoundError:
        pass


def read_capped(path: Path, cap: int, *, regular_only: bool = True) -> bytes:
    """A small file's bytes, never following a symlink, never blocking on a FIFO, never
    reading more than `cap` bytes.  Raises ValueError with the reason it was refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError("is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if regular_only and not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        if st.st_size > cap:
            raise ValueError(f"is {st.st_size} bytes (limit {cap})")
        data = os.read(fd, cap + 1)
        if len(data) > cap:
            raise ValueError(f"is over {cap} bytes")
        return data
    finally:
        os.close(fd)


class StudyLock:
    """The one-writer rule: an flock on <study>/.lock that the kernel drops when the engine dies."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise N2Error.one("N2-E210", f"{self.path} is a symlink; refusing to lock through it") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise N2Error.one("N2-E210", f"{self.path} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid = lock_holder(self.path.parent)
            raise N2Error.one("N2-E201", f"study {self.path.parent} is being run by engine PID {pid}",
                              hint=f"another engine holds it; stop it with `kill -TERM {pid}` or wait") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            os.close(fd)
            raise env_fault(e, "writing the lock file") or e from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def lock_holder(study_dir: Path) -> int | None:
    """PID of the engine holding the study, or None when no engine runs it."""
    path = study_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
    except OSError:
        return None
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


__all__ = ["EnvironmentFault", "NOFOLLOW", "StudyLock", "atomic_write", "fsync_dir", "lock_holder", "read_capped",
           "refuse_symlink", "remove_stale_tmp"]
