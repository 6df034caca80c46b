"""Cone re-synthesis with its three sta scripts in one warm worker against three cold `sta`
runs, in one process on this machine.

    .venv/bin/python benchmarks/resynth_warm.py [gcd_sky130hd gcd_nangate45 mac16 ...] [--rounds N]

Per sample study: one resynth_cone stage is run, then one of its trials' driver
(tools/synthesis/resynth.py) again in a copy of the trial (yosys_liberty.py's), with
resynth.json's `warm` on and off, rounds alternating so a busy machine weighs on both.  Prints
the median driver time of each, the ratio, `sta` reading the Liberty alone (what warm saves
twice), and whether the trial's files (re-mapped cone, splice, kept netlist, timing reports)
are byte-identical both ways.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness import take_option
from yosys_liberty import resynth_trial, seconds

from noodle2.engine.fsutil import sha256_file

MADE = ("cone.txt", "cone_new.v", "spliced.v", "resynth.v", "sta.timing.rpt", "sta.wns.rpt")


def main(samples: list[str], rounds: int) -> None:
    print(f"{'study':<15} {'driver cold':>11} {'warm':>7} {'ratio':>6}  {'sta: Liberty only':>17}  outputs")
    for sample in samples:
        with tempfile.TemporaryDirectory() as tmp:
            t, _ = resynth_trial(sample, Path(tmp))
            cfg = json.loads((t / "resynth.json").read_text())
            for name, warm in (("cold.json", False), ("warm.json", True)):
                (t / name).write_text(json.dumps({**cfg, "warm": warm}))
            reads = [ln for ln in (t / "run.tcl").read_text().splitlines()
                     if ln.startswith(("define_corners ", "read_liberty "))]  # the trial's own
            (t / "lib_only.tcl").write_text("\n".join(reads) + "\nexit\n")
            driver = [sys.executable, "-m", "noodle2.engine.tools.synthesis.resynth"]
            times: dict[str, list[float]] = {"cold.json": [], "warm.json": []}
            outs: dict[str, set[tuple[str, ...]]] = {c: set() for c in times}
            lib_s: list[float] = []
            for _ in range(rounds):
                for c in times:
                    times[c].append(seconds([*driver, c], t))
                    outs[c].add(tuple(sha256_file(t / f) if (t / f).exists() else "-" for f in MADE))
                    assert (t / "resynth.log").read_text().splitlines()[-1].startswith(
                        "sta: 3 scripts in one warm" if c == "warm.json" else "sta: 3 cold"), c
                lib_s.append(seconds(["sta", "-no_init", "-no_splash", "lib_only.tcl"], t))
            a, b = statistics.median(times["cold.json"]), statistics.median(times["warm.json"])
            same = outs["cold.json"] == outs["warm.json"] and len(outs["cold.json"]) == 1
            print(f"{sample:<15} {a:>10.3f}s {b:>6.3f}s {a / b:>5.2f}x  {statistics.median(lib_s):>16.3f}s  "
                  f"{'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(take_option(args, "--rounds", "3"))
    main(args or ["gcd_sky130hd", "gcd_nangate45", "mac16"], n)
