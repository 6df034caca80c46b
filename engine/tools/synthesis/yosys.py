"""Snapshots: RTL + SDC synthesised with Yosys onto a technology, cached by content hash.

Yosys runs in the snapshot directory on copies noodle2 lays out under src/ with the folders
they came in (so `include`s between them resolve) and a Liberty under tech/: its script holds
no path a user chose outside that layout (Yosys cannot quote), and the net names it derives
from source paths do not depend on where the study lives.  Several Liberty files (ASAP7) are
merged into the one file dfflibmap and abc read, without the technology's do-not-use cells.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from noodle2.engine.executors.base import Command
from noodle2.engine.executors.contain import MARKER
from noodle2.engine.executors.process import run_command
from noodle2.engine.fsutil import cache_root
from noodle2.engine.policy.failures import classify
from noodle2.engine.quote import safe_name, yosys_word
from noodle2.engine.tools.base import TrialFailure, tail
from noodle2.engine.tools.netlist import cell_usage

SCRIPT = """read_verilog {flags}{rtl}
synth -top {top} -flatten
dfflibmap -liberty {lib}
abc -liberty {lib}
opt_clean -purge
stat -liberty {lib}
write_verilog -noattr -noexpr {out}
"""
_INCLUDE = re.compile(r'^\s*`include\s+"([^"\n]+)"', re.M)


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
        first = first_error(dest / f"{name}.log") or first_error(cmd.stderr)
        raise TrialFailure("snapshot_failed", f"Yosys ({name}) failed: " + (first or f"{fail['type']}: {fail['reason']}"),
                           fail.get("excerpt", ""))


def first_error(log: Path) -> str | None:
    """The first line of a Yosys log that says what went wrong (`file.v:2: ERROR: ...`), from
    its ERROR: on, with the place it names."""
    from noodle2.engine.tools.base import scan_lines

    lines = scan_lines(log, ("ERROR:",), keep=1, anywhere=True).lines["ERROR:"]
    if not lines:
        return None
    where, _, what = lines[0].strip().partition("ERROR:")
    return (f"ERROR:{what}" + (f" ({where.strip(' :')})" if where.strip(" :") else ""))[:300]


def layout(rtl: list[Path], rels: list[str], include_dirs: list[Path], include_rels: list[str]) -> list[tuple[Path, str]]:
    """Every file synthesis reads as (file, path under src/): the RTL, and what their `include`s
    name, found in the including file's folder or an include folder, recursively.  Raises
    TrialFailure naming an include found nowhere."""
    out = dict(zip(rels, rtl))
    todo = list(zip(rtl, rels))
    while todo:
        f, rel = todo.pop()
        for name in _INCLUDE.findall(f.read_text(errors="replace")):
            hits = [(f.parent / name, str(Path(rel).parent / name))] + [
                (d / name, str(Path(r) / name)) for d, r in zip(include_dirs, include_rels)]
            found = next(((p, os.path.normpath(r)) for p, r in hits if p.is_file()), None)
            if found is not None and (os.path.isabs(found[1]) or found[1].split(os.sep)[0] == ".."):
                raise TrialFailure("snapshot_failed", f"{rel} includes \"{name}\", outside the design's folders; "
                                   "name its folder in design.include_dirs")
            if found is None:
                raise TrialFailure("snapshot_failed", f"{rel} includes \"{name}\", found neither beside it nor in "
                                   "design.include_dirs")
            if found[1] not in out:
                out[found[1]] = found[0]
                todo.append((found[0], found[1]))
    return [(p, r) for r, p in out.items()]


def synthesise(rtl: list[Path], top: str, liberty: Path | list[Path], dest: Path, timeout_s: float = 1800.0, *,
               rels: list[str] | None = None, include_dirs: list[Path] = (), include_rels: list[str] = (),
               defines: dict[str, str] | None = None, dont_use=None) -> dict:
    """Write <dest>/<top>.v.  `rels`: where each RTL file goes under src/ (default: 0_name.v ...),
    includes follow from their folders.  Returns provenance: hash, versions, the exact script,
    cache hit."""
    if shutil.which("yosys") is None:
        raise TrialFailure("tool_missing", "yosys not found; install it: sudo apt-get install yosys")
    version = tool_version(["yosys", "-V"])
    dest.mkdir(parents=True, exist_ok=True)
    rels = rels or [f"{i}_{safe_name(f.name)}" for i, f in enumerate(rtl)]
    files = layout(rtl, rels, list(include_dirs), list(include_rels))
    for f, rel in files:
        target = dest / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.resolve() != target.resolve():
            shutil.copyfile(f, target)
    try:
        names = [yosys_word(f"src/{r}") for r in rels]
        flags = "".join(f"-I{yosys_word(f'src/{r}')} " for r in include_rels)
    except ValueError as e:
        raise TrialFailure("snapshot_failed", f"Yosys cannot read this path: {e}; rename the file or folder") from None
    flags += "".join(f"-D{k}={v} " if v else f"-D{k} " for k, v in sorted((defines or {}).items()))
    lib_rel = yosys_liberty(liberty if isinstance(liberty, list) else [liberty], dest, dont_use)
    out = f"{yosys_word(top)}.v"
    script = SCRIPT.format(flags=flags, rtl=" ".join(names), top=yosys_word(top), lib=lib_rel, out=out)
    h = hashlib.sha256()
    for f, rel in sorted(files, key=lambda x: x[1]):
        h.update(rel.encode() + b"\0" + (dest / "src" / rel).read_bytes())
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
    return {"snapshot_hash": key, "yosys": version, "script": script, "cache_hit": hit, "liberty": lib_rel,
            "netlist": out, "cells": sum(cell_usage((dest / out).read_text()).values())}


def yosys_liberty(libs: list[Path], dest: Path, dont_use=None) -> str:
    """The Liberty Yosys maps onto, as a path under `dest`: the one file (copied under tech/ when
    it lives elsewhere), else tech/yosys.lib, the files merged without do-not-use cells."""
    from noodle2.engine.tools.tech.liberty import merged_text

    (dest / "tech").mkdir(exist_ok=True)
    if len(libs) == 1 and not dont_use:
        if libs[0].resolve().parent == (dest / "tech").resolve():
            return f"tech/{libs[0].name}"
        rel = f"tech/{safe_name(libs[0].name)}"
        shutil.copyfile(libs[0], dest / rel)
        return rel
    (dest / "tech" / "yosys.lib").write_text(merged_text(libs, lambda c: not (dont_use and dont_use(c))))
    return "tech/yosys.lib"
