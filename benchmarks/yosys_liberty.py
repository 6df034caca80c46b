"""Cone re-synthesis with Yosys reading the whole Liberty against the cells-only copy the
snapshot keeps for it (snapshot/tech/yosys_cells.lib), in one process on this machine.

    .venv/bin/python benchmarks/yosys_liberty.py [gcd_sky130hd gcd_nangate45 mac16 ...] [--rounds N]

Per sample study: one resynth_cone stage is run, then one of its trials' driver
(tools/synthesis/resynth.py: sta to pick the cone, Yosys and ABC to re-map it, sta to time the
splice, a proof when timing improved, the trial's own sta run) is run again in a copy of the
trial, `read_liberty` given the whole file or the cells-only one, rounds alternating so a busy
machine weighs on both.  Prints the median driver time of each, the ratio, Yosys's
`read_liberty` alone on each file, and whether the re-mapped cone and the trial's netlist are
byte-identical both ways.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import run_study, take_option

from noodle2.engine.fsutil import sha256_file

STAGE = '\n[[stages]]\nname = "resynth"\nmode = "sta"\ntrials = 2\nsurvivors = 1\necos = ["resynth_cone"]\n'


def resynth_trial(sample: str, tmp: Path) -> tuple[Path, str]:
    """A copy of a finished resynth_cone trial, writable, where its driver can run again."""
    path = ROOT / "sample_studies" / f"{sample}.toml"
    text = path.read_text().replace('safety_domain = "guarded"', 'safety_domain = "sandbox"')
    text = text[:text.index("[[stages]]")] + STAGE
    eng, status, _ = run_study(text, path, tmp)
    assert status == "complete", eng.state.reason
    case = next(t.case_id for t in eng.state.trials.values() if t.eco == "resynth_cone" and t.status == "done")
    copy = eng.dir / "trials" / f"{case}_bench"  # the same depth: its relative paths still hold
    shutil.copytree(eng.dir / "trials" / case, copy)
    for p in [copy, *copy.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return copy, eng.spec.design.top


def seconds(argv: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def main(samples: list[str], rounds: int) -> None:
    print(f"{'study':<15} {'driver whole':>12} {'cells-only':>10} {'ratio':>6}  "
          f"{'read_liberty whole':>18} {'cells-only':>10}  {'MB':>11}  outputs")
    for sample in samples:
        with tempfile.TemporaryDirectory() as tmp:
            t, top = resynth_trial(sample, Path(tmp))
            cfg = json.loads((t / "resynth.json").read_text())
            whole, cells = t / cfg["yosys_lib"], t / cfg["yosys_cells"]
            (t / "whole.json").write_text(json.dumps({**cfg, "yosys_cells": cfg["yosys_lib"]}))
            driver = [sys.executable, "-m", "noodle2.engine.tools.synthesis.resynth"]
            times: dict[str, list[float]] = {"whole.json": [], "resynth.json": []}
            outs: dict[str, set[tuple[str, str]]] = {"whole.json": set(), "resynth.json": set()}
            reads: dict[str, list[float]] = {"whole": [], "cells": []}
            for _ in range(rounds):
                for c in times:
                    times[c].append(seconds([*driver, c], t))
                    outs[c].add((sha256_file(t / "cone_new.v") if (t / "cone_new.v").exists() else "-",
                                 sha256_file(t / f"{top}.v")))
                for k, lib in (("whole", whole), ("cells", cells)):
                    reads[k].append(seconds(["yosys", "-q", "-p", f"read_liberty -ignore_miss_func {lib}"], t))
            a, b = statistics.median(times["whole.json"]), statistics.median(times["resynth.json"])
            same = outs["whole.json"] == outs["resynth.json"] and len(outs["whole.json"]) == 1
            print(f"{sample:<15} {a:>11.3f}s {b:>9.3f}s {a / b:>5.2f}x  {statistics.median(reads['whole']):>17.3f}s "
                  f"{statistics.median(reads['cells']):>9.3f}s  {whole.stat().st_size / 1e6:>5.1f}/{cells.stat().st_size / 1e6:<5.2f}"
                  f"  {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(take_option(args, "--rounds", "3"))
    main(args or ["gcd_sky130hd", "gcd_nangate45", "mac16"], n)
