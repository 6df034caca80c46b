"""Filesystem helpers shared by the engine: one atomic writer, one lock, no symlinks followed."""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from pathlib import Path
from typing import Callable, Iterable

from noodle2.engine.errors import EnvironmentFault, N2Error, env_fault

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def cache_root() -> Path:
    """Where noodle2 keeps what it can make again (synthesised netlists, decompressed Liberty)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("NOODLE2_CACHE", Path(base) / "noodle2"))


def atomic_write(path: Path, data: bytes | Iterable[bytes], last: Callable[[int], None] | None = None) -> None:
    """Write-then-rename with fsyncs, so a reader sees the old file or the new one, never half.
    `data` may come in chunks, each written as it comes (a 100k-trial checkpoint or lineage is
    never whole in memory); `last(fd)`, once they are written and before the fsync, may patch
    the file (a checksum at its head).  A full disk leaves no temporary file behind and raises
    EnvironmentFault."""
    # one temporary name per process and thread: two threads writing one file never share it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
        try:
            pending = bytearray()
            for chunk in ((data,) if isinstance(data, (bytes, bytearray, memoryview)) else data):
                if len(chunk) >= 1 << 16 and not pending:
                    _write_all(fd, chunk)
                    continue
                pending += chunk
                if len(pending) >= 1 << 20:  # small chunks (lines) gathered: one write per MB
                    _write_all(fd, pending)
                    pending.clear()
            _write_all(fd, pending)
            if last is not None:
                last(fd)
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


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


def study_subdir(study_dir: Path, *parts: str) -> Path:
    """<study>/<parts...> as real directories, made when missing: a symlink on the way is
    refused (N2-E210), so nothing written below it lands outside the study."""
    d = study_dir
    for part in parts:
        d = d / part
        refuse_symlink(d)
        try:
            d.mkdir(exist_ok=True)
        except FileExistsError:
            raise N2Error.one("N2-E210", f"{d} is not a directory") from None
        except OSError as e:
            raise env_fault(e, f"creating {d}") or e from None
    return d


def link_or_copy(src: Path, dst: Path) -> None:
    """`dst` as a hard link to `src` when both are on one filesystem (a technology's 20 MB
    Liberty, once per study), else a copy."""
    import shutil

    try:
        dst.unlink(missing_ok=True)
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure written atomically (a symlink at `path` is replaced, never followed)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    atomic_write(path, buf.getvalue())


def open_log_for_append(path: Path) -> int:
    """A log noodle2 appends to: a symlink there is removed and a fresh file made, never followed."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
    path.unlink()
    return os.open(path, flags, 0o644)


def refuse_symlink(path: Path) -> None:
    """Study paths noodle2 writes through must be real files or directories, not links out."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise N2Error.one("N2-E210", f"{path} is a symlink; refusing to follow it out of the study")
    except FileNotFoundError:
        pass


def open_regular(path: Path | str, *, follow: bool = False, dir_fd: int | None = None) -> int:
    """A read-only descriptor on a regular file: never blocks on a FIFO or a device, never
    follows a symlink unless `follow`.  ValueError says why a file was refused; a missing one
    raises FileNotFoundError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError("is a symlink") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket"
        raise ValueError(f"is {kind}, not a regular file")
    return fd


def read_json_object(path: Path, cap: int = 64 << 20) -> dict:
    """A JSON object from a file noodle2 or a tool wrote; {} when it is missing, unreadable,
    too large or not an object (such files inform; the journal decides)."""
    import orjson

    try:
        v = orjson.loads(read_capped(path, cap))
    except (OSError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


def read_capped(path: Path | str, cap: int, *, follow: bool = False, dir_fd: int | None = None) -> bytes:
    """A file's bytes: a regular file (see open_regular), never more than `cap` bytes, read in
    chunks so a large cap costs nothing up front.  Raises ValueError with the reason it was
    refused."""
    fd = open_regular(path, follow=follow, dir_fd=dir_fd)
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            raise ValueError(f"is {size} bytes (limit {cap})")
        parts, total = [], 0
        while chunk := os.read(fd, min(max(size - total, 0) + 1, 1 << 30)):  # one read: no joined copy
            parts.append(chunk)
            total += len(chunk)
            if total > cap:
                raise ValueError(f"is over {cap} bytes")
        return b"".join(parts)
    finally:
        os.close(fd)


def read_text(path: Path, cap: int = 2 << 30, *, follow: bool = False) -> str:
    """read_capped, decoded (undecodable bytes replaced)."""
    return read_capped(path, cap, follow=follow).decode(errors="replace")


def sha256_file(path: Path) -> str:
    """sha256 of a regular file, read in chunks; never through a symlink, never a FIFO
    (ValueError), FileNotFoundError when it is gone."""
    import hashlib

    h = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_study_file(path: Path, cap: int) -> bytes:
    """A file noodle2 keeps in a study directory (journal, checkpoint, provenance, the study's
    copy): refused with N2-E212 when it is not a plain regular file or is absurdly large."""
    try:
        return read_capped(path, cap)
    except ValueError as e:
        raise N2Error.one("N2-E212", f"{path} {e}; noodle2 never writes one like that") from None


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


__all__ = ["EnvironmentFault", "NOFOLLOW", "StudyLock", "atomic_write", "cache_root", "fsync_dir", "lock_holder", "open_regular",
           "link_or_copy", "open_log_for_append", "read_capped", "read_study_file", "read_text", "refuse_symlink",
           "remove_stale_tmp", "save_figure", "sha256_file", "study_subdir"]
