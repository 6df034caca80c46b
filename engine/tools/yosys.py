"""Snapshots: RTL + SDC synthesised with Yosys onto a technology, cached by content hash."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from engine.tools.base import TrialFailure
from engine.tools.netlist import cell_usage

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
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "unknown"


def synthesise(rtl: list[Path], top: str, liberty: Path, dest: Path) -> dict:
    """Write <dest>/<top>.v.  Returns provenance: hash, versions, the exact script, cache hit."""
    if shutil.which("yosys") is None:
        raise TrialFailure("tool_missing", "yosys not found; install it: sudo apt-get install yosys")
    version = tool_version(["yosys", "-V"])
    h = hashlib.sha256()
    for f in rtl:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(top.encode() + liberty.read_bytes() + version.encode() + SCRIPT.encode())
    key = h.hexdigest()
    cached = cache_root() / "netlists" / key[:2] / f"{key}.v"
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{top}.v"
    script = SCRIPT.format(rtl=" ".join(str(f) for f in rtl), top=top, lib=liberty, out=out)
    hit = cached.is_file()
    if hit:
        shutil.copyfile(cached, out)
    else:
        (dest / "synth.ys").write_text(script)
        # HOME=dest: Yosys keeps ~/.yosys_history; a study writes nothing outside its directory
        r = subprocess.run(["yosys", "-q", "-l", str(dest / "synth.log"), "-s", str(dest / "synth.ys")],
                           capture_output=True, text=True, cwd=dest, env={**os.environ, "HOME": str(dest)})
        if r.returncode != 0 or not out.is_file():
            log = (dest / "synth.log").read_text(errors="replace") if (dest / "synth.log").exists() else r.stderr
            raise TrialFailure("snapshot_failed", f"Yosys synthesis of {top} failed (rc {r.returncode})", log[-1500:])
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp)
        os.replace(tmp, cached)
    return {"snapshot_hash": key, "yosys": version, "script": script, "cache_hit": hit,
            "netlist": str(out), "cells": sum(cell_usage(out.read_text()).values())}
