"""Where this process sits in the cgroup hierarchies (v1 and v2), and the CPU quota they give it.

Read from /proc/self/cgroup and /proc/self/mountinfo.  mountinfo's root field matters in a
container: a hierarchy mounted from `/docker/<id>` shows that cgroup as the mount point itself.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

V2 = ""  # the unified hierarchy's key; v1 hierarchies are keyed by controller ("cpu", "memory")


@dataclass(frozen=True)
class Place:
    mount: Path  # where the hierarchy is mounted
    own: Path  # this process's cgroup directory, under `mount`


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def own_cgroups(proc: Path = Path("/proc/self")) -> dict[str, Place]:
    """Each mounted hierarchy this process is in that shows its own cgroup, by controller (V2 for
    the unified one).  Empty when /proc cannot be read."""
    try:
        cgroup = (proc / "cgroup").read_text()
        mountinfo = (proc / "mountinfo").read_text()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(",") if parts[1] else [V2]:
                paths[c] = parts[2].strip()
    out: dict[str, Place] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if not sep or len(f) < 5 or len(r) < 3:
            continue
        keys = [V2] if r[0] == "cgroup2" else [o for o in r[2].split(",") if o in paths] if r[0] == "cgroup" else []
        root, point = _unescape(f[3]), Path(_unescape(f[4]))
        for k in keys:
            path = paths.get(k)
            if k in out or path is None or ".." in path.split("/"):  # "/.." : outside our cgroup namespace
                continue
            if path == root or path.startswith(root.rstrip("/") + "/"):  # else this mount does not show it
                out[k] = Place(point, point / path[len(root):].lstrip("/"))
    return out


def _read(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except (OSError, ValueError):
        return []


def cpu_quota(proc: Path = Path("/proc/self")) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors, in CPUs (1.5 for 150 ms
    per 100 ms), or None without one.  v2's `cpu.max`, v1's `cpu.cfs_quota_us` / `cfs_period_us`."""
    found: list[float] = []
    places = own_cgroups(proc)
    for key, files in ((V2, ("cpu.max",)), ("cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us"))):
        place = places.get(key)
        if place is None:
            continue
        d = place.own
        while True:
            words = [w for name in files for w in _read(d / name)]
            if len(words) == 2 and words[0].lstrip("-").isdigit() and words[1].isdigit():
                quota, period = int(words[0]), int(words[1])
                if quota > 0 and period > 0:
                    found.append(quota / period)
            if d == place.mount or place.mount not in d.parents:
                break
            d = d.parent
    return min(found) if found else None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity (taskset), capped by a cgroup CPU quota (a
    container's `--cpus`) rounded up."""
    cpus = len(os.sched_getaffinity(0))
    quota = cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus
