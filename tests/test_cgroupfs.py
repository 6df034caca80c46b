"""The CPU count the engine and the tests size themselves by: affinity capped by a cgroup quota."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from noodle2.engine.executors.cgroupfs import V2, cpu_quota, own_cgroups

PROBE = "from noodle2.engine.executors.cgroupfs import cpu_quota, usable_cpus; print(cpu_quota(), usable_cpus())"


def fake(tmp: Path, cgroup: str, mounts: list[tuple[str, str, str, str]], files: dict[str, str]) -> Path:
    """A /proc/self with `cgroup` and a mountinfo of (root, mount point, fstype, options); `files`
    are written under tmp (paths relative to it)."""
    proc = tmp / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("".join(
        f"{30 + i} 23 0:{28 + i} {root} {point.replace(' ', chr(92) + '040')} rw,relatime - {fs} {fs} {opts}\n"
        for i, (root, point, fs, opts) in enumerate(mounts)))
    for rel, text in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return proc


def test_v2_quota_is_the_tightest_on_the_way_up(tmp_path: Path) -> None:
    cg = tmp_path / "cg 2"  # a mount point with a space: mountinfo escapes it as \040
    proc = fake(tmp_path, "0::/jobs/ci/run7\n", [("/", str(cg), "cgroup2", "rw")],
                {"cg 2/jobs/cpu.max": "150000 100000\n", "cg 2/jobs/ci/cpu.max": "max 100000\n",
                 "cg 2/jobs/ci/run7/cpu.max": "300000 100000\n"})
    assert own_cgroups(proc)[V2].own == cg / "jobs/ci/run7"
    assert cpu_quota(proc) == 1.5


def test_v2_in_a_container_shows_its_cgroup_as_the_mount(tmp_path: Path) -> None:
    # Without a cgroup namespace, /proc/self/cgroup names the host path; the mount's root is it.
    cg = tmp_path / "sys"
    proc = fake(tmp_path, "0::/docker/abc\n", [("/docker/abc", str(cg), "cgroup2", "rw")],
                {"sys/cpu.max": "200000 100000\n", "cpu.max": "50000 100000\n"})
    assert own_cgroups(proc)[V2].own == cg
    assert cpu_quota(proc) == 2.0  # the file beside the mount point is not a cgroup's: never read
    # A process outside the mount's root: that mount does not show its cgroup.
    (proc / "cgroup").write_text("0::/other\n")
    assert own_cgroups(proc) == {} and cpu_quota(proc) is None
    # Nor one outside the cgroup namespace the mount's root belongs to.
    (proc / "cgroup").write_text("0::/docker/abc/../../x\n")
    assert own_cgroups(proc) == {}


def test_v1_cpu_hierarchy_and_no_quota(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    proc = fake(tmp_path, "4:cpu,cpuacct:/lxc/a\n3:memory:/lxc/a\n0::/\n",
                [("/", str(cpu), "cgroup", "rw,cpu,cpuacct"), ("/", str(tmp_path / "memory"), "cgroup", "rw,memory")],
                {"cpu,cpuacct/lxc/a/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/lxc/a/cpu.cfs_period_us": "100000\n",
                 "cpu,cpuacct/lxc/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/lxc/cpu.cfs_period_us": "100000\n"})
    places = own_cgroups(proc)
    assert places["cpu"].own == cpu / "lxc/a" and places["memory"].own == tmp_path / "memory/lxc/a"
    assert V2 not in places  # "0::/" without a cgroup2 mount
    assert cpu_quota(proc) == 2.5
    (cpu / "lxc/cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(proc) is None


def test_unreadable_or_garbage_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "nowhere") is None
    proc = fake(tmp_path, "0::/a\n", [("/", str(tmp_path / "u"), "cgroup2", "rw")], {"u/a/cpu.max": "lots 100000\n"})
    assert cpu_quota(proc) is None


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _writable_cpu_cgroup() -> tuple[Path, str] | None:
    """A new child of this process's cgroup in which a CPU quota can be set: (dir, "v1"|"v2")."""
    places = own_cgroups()
    for key, kind in (("cpu", "v1"), (V2, "v2")):
        place = places.get(key)
        if place is None:
            continue
        if kind == "v2" and "cpu" not in _words(place.own / "cgroup.subtree_control"):
            continue
        d = place.own / f"n2-cpus-{os.getpid()}"
        try:
            d.mkdir()
        except OSError:
            continue
        if (d / ("cpu.cfs_quota_us" if kind == "v1" else "cpu.max")).exists():
            return d, kind
        d.rmdir()
    return None


@pytest.mark.parametrize("quota,want", [(100000, 1), (150000, 2)])
def test_a_real_cgroup_quota_caps_the_count(quota: int, want: int) -> None:
    got = _writable_cpu_cgroup()
    if got is None:
        pytest.skip("no cgroup here in which this user may set a CPU quota")
    d, kind = got
    try:
        if kind == "v1":
            (d / "cpu.cfs_period_us").write_text("100000")
            (d / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (d / "cpu.max").write_text(f"{quota} 100000")
        out = subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$1" -c "$2"', str(d), sys.executable,
                              PROBE], capture_output=True, text=True, check=True).stdout.split()
    finally:
        d.rmdir()
    assert float(out[0]) == quota / 100000
    assert int(out[1]) == min(want, len(os.sched_getaffinity(0)))
