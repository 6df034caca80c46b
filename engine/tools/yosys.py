"""Snapshots: RTL + SDC synthesised with Yosys onto a technology, cached by content hash.

Yosys runs in the snapshot directory on copies named by noodle2 (`src/0_mac16.v`,
`tech/osu018_stdcells.lib`): its script holds no path a user chose (Yosys cannot quote), and the
net names it derives from source paths do not depend on where the study lives.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.executors import Command, run_command
from engine.executors.contain import MARKER
from engine.policy.failures import classify
from engine.tools.base import TrialFailure, tail
from engine.tools.netlist import cell_usage
from engine.tools.quote import safe_name, yosys_word

SCRIPT = """read_verilog {rtl}
synth -top {top} -flatten
dfflibmap -liberty {lib}
abc -liberty {lib}
opt_clean -purge
stat -liberty {lib}
write_verilog -noattr -noexpr {out}
"""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("NOODLE2_CACHE", Path(base) / "noodle2"))


def tool_version(argv: list[str]) -> str:
    with tempfile.TemporaryDirectory() as home:  # no history file in the user's home
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={**os.environ, "HOME": home})
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "unknown"


def run_yosys(script: str, dest: Path, name: str, timeout_s: float) -> None:
    """Run a Yosys script in `dest`, contained like a trial (own session, marker, timeouts).
    Raises TrialFailure(snapshot_failed) with the log's tail when it fails."""
    (dest / f"{name}.ys").write_text(script)
    cmd = Command(["yosys", "-q", "-l", f"{name}.log", "-s", f"{name}.ys"], dest, dest / f"{name}.stdout",
                  dest / f"{name}.stderr", {**os.environ, "HOME": str(dest), MARKER: str(dest)},
                  log_cap_bytes=64 << 20)
    res = run_command(cmd, timeouts=(timeout_s, timeout_s * 1.25 + 5))
    fail = classify(res.outcome, lambda: tail(dest / f"{name}.log", 1500) or tail(cmd.stderr))
    if fail is not None:
        raise TrialFailure("snapshot_failed", f"Yosys ({name}) failed: {fail['type']}: {fail['reason']}",
                           fail.get("excerpt", ""))


def synthesise(rtl: list[Path], top: str, liberty: Path, dest: Path, timeout_s: float = 1800.0) -> dict:
    """Write <dest>/<top>.v.  Returns provenance: hash, versions, the exact script, cache hit."""
    if shutil.which("yosys") is None:
        raise TrialFailure("tool_missing", "yosys not found; install it: sudo apt-get install yosys")
    version = tool_version(["yosys", "-V"])
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for i, f in enumerate(rtl):
        rel = Path("src") / f"{i}_{safe_name(f.name)}"
        (dest / rel).parent.mkdir(exist_ok=True)
        if f.resolve() != (dest / rel).resolve():
            shutil.copyfile(f, dest / rel)
        names.append(yosys_word(rel.as_posix()))
    lib_rel = Path("tech") / safe_name(liberty.name)
    if liberty.resolve() != (dest / lib_rel).resolve():
        (dest / "tech").mkdir(exist_ok=True)
        shutil.copyfile(liberty, dest / lib_rel)
    out = f"{yosys_word(top)}.v"
    script = SCRIPT.format(rtl=" ".join(names), top=yosys_word(top), lib=yosys_word(lib_rel.as_posix()), out=out)
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode() + b"\0" + (dest / n).read_bytes())
    h.update(top.encode() + (dest / lib_rel).read_bytes() + version.encode() + script.encode())
    key = h.hexdigest()
    cached = cache_root() / "netlists" / key[:2] / f"{key}.v"
    hit = cached.is_file()
    if hit:
        shutil.copyfile(cached, dest / out)
    else:
        run_yosys(script, dest, "synth", timeout_s)
        if not (dest / out).is_file():
            raise TrialFailure("snapshot_failed", f"Yosys wrote no {out}", tail(dest / "synth.log", 1500))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(dest / out, tmp)
            os.replace(tmp, cached)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return {"snapshot_hash": key, "yosys": version, "script": script, "cache_hit": hit,
            "netlist": out, "cells": sum(cell_usage((dest / out).read_text()).values())}
