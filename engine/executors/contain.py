"""Keeping every process a trial starts inside that trial.

A tool runs as a session leader, so `killpg` ends its process group.  A child that calls
`setsid` leaves the group; two mechanisms catch it:

- a cgroup v2 per trial, where one can be created (root, or a delegated user subtree):
  `cgroup.kill` ends everything in it, however it forked;
- otherwise the `N2_TRIAL_DIR=<trial dir>` marker every tool inherits in its environment:
  a scan of /proc finds the processes that carry it.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

from noodle2.engine.executors.cgroupfs import V2, own_cgroups

MARKER = "N2_TRIAL_DIR"


def _cgroup2_root() -> Path | None:
    """Where this process's own cgroup v2 lives, or None when there is no v2 hierarchy."""
    place = own_cgroups().get(V2)
    return place.own if place is not None else None


class TrialCgroups:
    """One cgroup per running trial under `<own cgroup>/noodle2-<pid>`; None when unavailable.
    Cgroups are kept in a pool and reused once empty: creating and removing one per trial costs
    more than the trial launch itself."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._free: list[Path] = []
        self._made = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls) -> "TrialCgroups | None":
        if os.environ.get("NOODLE2_NO_CGROUP"):
            return None
        root = _cgroup2_root()
        if root is None:
            return None
        base = root / f"noodle2-{os.getpid()}"
        try:
            base.mkdir(exist_ok=True)
            probe = base / "probe"
            probe.mkdir()
            ok = (probe / "cgroup.kill").exists()
            probe.rmdir()
        except OSError:
            return None
        return cls(base) if ok else None

    def open(self) -> Path:
        """An empty cgroup for one trial."""
        with self._lock:
            if self._free:
                return self._free.pop()
            self._made += 1
            cg = self.base / f"slot{self._made}"
        cg.mkdir(exist_ok=True)
        return cg

    def release(self, cg: Path) -> None:
        """Kill what the trial left in its cgroup, and keep the cgroup for the next trial."""
        self.kill(cg, remove=False)
        with self._lock:
            self._free.append(cg)

    def kill(self, cg: Path, wait_s: float = 5.0, remove: bool = True) -> None:
        """Kill what is left in a cgroup; remove it unless it goes back to the pool."""
        if _populated(cg):
            try:
                (cg / "cgroup.kill").write_text("1")
            except OSError:
                pass
            end, nap = time.monotonic() + wait_s, 0.0005
            while time.monotonic() < end and _populated(cg):
                time.sleep(nap)
                nap = min(nap * 2, 0.02)
        if remove:
            _rmdir(cg)

    def close(self) -> None:
        try:
            for cg in self.base.iterdir():
                if cg.is_dir():
                    self.kill(cg)
            self.base.rmdir()
        except OSError:
            pass


def _populated(cg: Path) -> bool:
    try:
        fd = os.open(cg / "cgroup.events", os.O_RDONLY)  # once per trial: no file object
    except OSError:
        return False
    try:
        return b"populated 1" in os.read(fd, 256)
    except OSError:
        return False
    finally:
        os.close(fd)


def _rmdir(cg: Path) -> None:
    try:
        cg.rmdir()
    except OSError:
        pass


def marked_pids(values: set[str], marker: str = MARKER, prefixes: tuple[str, ...] = ()) -> list[int]:
    """PIDs whose environment carries `marker=<one of values>` (or a value with one of `prefixes`)."""
    out: list[int] = []
    prefix = marker.encode() + b"="
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        found = next((v[len(prefix):].decode(errors="replace") for v in env if v.startswith(prefix)), None)
        if found is not None and (found in values or found.startswith(prefixes or ("\0",))):
            out.append(int(entry.name))
    return out


def kill_marked(values: set[str], marker: str = MARKER, prefixes: tuple[str, ...] = ()) -> list[int]:
    """Kill every process (and its group) marked with one of `values`: tools a dead engine left
    behind, or children that left a trial's process group."""
    killed: list[int] = []
    for _ in range(5):  # a parent killed in one pass may have forked in between: look again
        pids = marked_pids(values, marker, prefixes)
        live = [p for p in pids if not _zombie(p)]
        if not live:
            break
        for pid in live:
            for kill in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass
            killed.append(pid)
        time.sleep(0.01)
    return sorted(set(killed))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def contained_argv(argv: list[str], memory_limit_mb: int | None, cg: Path | None,
                   env: dict[str, str] | None, read_only: tuple[str, ...] = (),
                   fstab_on_stdin: bool = False) -> list[str]:
    """argv that first joins the cgroup, binds `read_only` read-only in a mount namespace of its
    own (mount_ns() says whether the machine allows it), caps its memory, then execs the tool,
    so the tool and all it forks start contained.  A shell prologue keeps Popen on its vfork
    path (a preexec_fn forks the whole engine: ~3 ms a trial) and, unlike joining from the
    parent after exec, cannot lose a race with a tool that forks at once.  Paths reach the
    shell as arguments, never as script.  `fstab_on_stdin`: the caller gives the shell
    fstab(read_only) as its stdin, and one `mount -a` binds every folder (a `mount` process
    costs ~1.5 ms: one per folder was most of a no-op trial); the tool then gets /dev/null."""
    steps = []
    if cg is not None:
        steps.append('{ echo 0 > "$0"; } 2>/dev/null')
    ns = mount_ns() if read_only else None
    bind = 'mount --bind -o ro -- "$1" "$1" || exit 125'
    if ns is not None and fstab_on_stdin:
        # `mount -a` skips a folder that is already a mount point: that one is bound on its own
        steps += ["mount -a -T /dev/stdin || exit 125"] + [f'if [ -w "$1" ]; then {bind}; fi; shift'] * len(read_only)
    elif ns is not None:
        steps += [f"{bind}; shift"] * len(read_only)
    if memory_limit_mb:
        steps.append(f"ulimit -v {memory_limit_mb << 10} 2>/dev/null")
    if not steps:
        return argv
    if shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
        raise FileNotFoundError(2, "No such file or directory")  # say so before a shell hides it as rc 127
    run = 'exec "$@" </dev/null' if ns is not None and fstab_on_stdin else 'exec "$@"'
    sh = ["/bin/sh", "-c", "; ".join(steps) + "; " + run, str(cg / "cgroup.procs") if cg else "sh"]
    return [*ns, *sh, *read_only, *argv] if ns is not None else [*sh, *argv]


def fstab(read_only: tuple[str, ...]) -> int | None:
    """An in-memory file (its fd, at offset 0) listing `read_only` as read-only bind mounts, for
    contained_argv's `fstab_on_stdin`; None where one `mount -a` cannot bind them (nothing to
    bind, no mount namespace, not root: mount refuses -T to other users).  Fields are escaped
    as libmount reads them (octal for space, tab, newline, backslash): a path is data here too."""
    if not read_only or mount_ns() is None or os.geteuid() != 0:
        return None
    lines = []
    for p in read_only:
        f = os.fsencode(p)
        for ch in b"\\ \t\n":
            f = f.replace(bytes([ch]), b"\\%03o" % ch)
        lines.append(b"%s %s none bind,ro 0 0\n" % (f, f))
    fd = os.memfd_create("n2-fstab")  # close-on-exec: only the shell it becomes stdin of sees it
    try:
        os.write(fd, b"".join(lines))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


_MOUNT_NS: list[tuple[str, ...] | None] = []


def mount_ns() -> tuple[str, ...] | None:
    """The `unshare` prefix that gives a tool a mount namespace of its own in which it can bind
    a folder read-only: as root, or through an unprivileged user namespace that maps the user
    to itself.  None when neither works here (asked once per process)."""
    if not _MOUNT_NS:
        _MOUNT_NS.append(_probe_mount_ns())
    return _MOUNT_NS[0]


def _probe_mount_ns() -> tuple[str, ...] | None:
    if os.environ.get("NOODLE2_NO_MOUNT_NS") or shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    import subprocess
    import tempfile

    tries = [("unshare", "--mount", "--propagation", "private", "--")]
    if os.geteuid() != 0:
        tries = [("unshare", "--user", "--map-current-user", "--mount", "--propagation", "private", "--")]
    with tempfile.TemporaryDirectory(prefix="n2-ns-") as d:
        probe = 'mount --bind -o ro -- "$0" "$0" && ! touch "$0/w" 2>/dev/null'
        for prefix in tries:
            try:
                r = subprocess.run([*prefix, "/bin/sh", "-c", probe, d], capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if r.returncode == 0 and not os.path.exists(os.path.join(d, "w")):
                return prefix
    return None


def escalate(proc, elapsed: float, soft: float, hard: float, termed: bool, flooding: bool) -> tuple[bool, float]:
    """One look at a running tool (`proc`: the executor's Proc): SIGKILL when its logs outgrow
    their cap, SIGTERM at the soft timeout, SIGKILL at the hard one.  Returns (termed, hard):
    after the SIGKILL the hard deadline is gone and the caller only waits for the exit."""
    if flooding and not proc.flooded:
        proc.send(signal.SIGKILL, flood=True)
    elif not termed and elapsed >= soft:
        proc.send(signal.SIGTERM, timeout=True)
        termed = True
    elif termed and elapsed >= hard:
        proc.send(signal.SIGKILL, timeout=True)
        hard = float("inf")
    return termed, hard
