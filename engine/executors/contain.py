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
import signal
import time
from pathlib import Path

MARKER = "N2_TRIAL_DIR"


def _cgroup2_root() -> Path | None:
    """Where this process's own cgroup v2 lives, or None when there is no v2 hierarchy."""
    mount = None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    mount = parts[1]
        with open("/proc/self/cgroup") as f:
            own = next((ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")), None)
    except OSError:
        return None
    if mount is None or own is None:
        return None
    return Path(mount) / own.lstrip("/")


class TrialCgroups:
    """One cgroup per running trial under `<own cgroup>/noodle2-<pid>`; None when unavailable."""

    def __init__(self, base: Path) -> None:
        self.base = base

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

    def open(self, key: str) -> tuple[Path, int]:
        """A fresh cgroup and an fd on its cgroup.procs, for the child to join before exec."""
        cg = self.base / key
        if cg.exists():
            self.kill(cg)
        cg.mkdir()
        return cg, os.open(cg / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def kill(self, cg: Path, wait_s: float = 5.0) -> None:
        """Kill what is left in the trial's cgroup and remove it."""
        try:
            (cg / "cgroup.kill").write_text("1")
        except OSError:
            return
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            try:
                if "populated 0" in (cg / "cgroup.events").read_text():
                    break
            except OSError:
                break
            time.sleep(0.005)
        try:
            cg.rmdir()
        except OSError:
            pass

    def close(self) -> None:
        try:
            for cg in self.base.iterdir():
                if cg.is_dir():
                    self.kill(cg)
            self.base.rmdir()
        except OSError:
            pass


def marked_pids(values: set[str], marker: str = MARKER) -> list[int]:
    """PIDs whose environment carries `marker=<one of values>`."""
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
        if found in values:
            out.append(int(entry.name))
    return out


def kill_marked(values: set[str], marker: str = MARKER) -> list[int]:
    """Kill every process (and its group) marked with one of `values`: tools a dead engine left
    behind, or children that left a trial's process group."""
    killed: list[int] = []
    for _ in range(5):  # a parent killed in one pass may have forked in between: look again
        pids = marked_pids(values, marker)
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
