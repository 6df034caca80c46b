"""A study of 100,000 trials, as the journal of one: what the views cost at that size.

    .venv/bin/python benchmarks/scale.py [N]      (default 100000)

Writes a journal of N finished trials in 10 stages (events as the engine writes them, with
realistic metrics and resources), a checkpoint of it, then measures in this process:
- the folded state's memory (the engine holds it while it runs) and the process's RSS;
- resume from the checkpoint and by full replay;
- `noodle2 status DIR` and `noodle2 report DIR` as a user runs them (fresh processes, wall time);
- the console opening the study (Textual's run_test at 120x36, until the trial table shows).
Targets (#20): RSS < 400 MB, replay from checkpoint <= 1 s, status <= 1 s, console <= 3 s,
report <= 30 s.
"""
from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import replay
from noodle2.engine.journal.store import JOURNAL, recover, write_checkpoint

STAGES = 10


def journal(n: int, seed: int = 1) -> list[ev.Event]:
    rng = random.Random(seed)
    per = n // STAGES
    spec = {"ranking": {"objective": "wns_ps"}, "design": {"top": "mac16", "tech": "osu018"}}
    out: list[ev.Event] = [
        ev.StudyStarted(name="scale", spec_hash="0" * 64, spec=spec, base_case="mac16", max_parallel=64,
                        safety_domain="guarded",
                        stages=[{"name": f"s{i}", "mode": "sta", "trials": per, "survivors": 4,
                                 "after": [i - 1] if i else []} for i in range(STAGES)]),
        ev.TrialStarted(case_id="mac16"),
        ev.TrialFinished(case_id="mac16", metrics={"wns_ps": -2661.0, "tns_ps": -31932.0}, resources={"wall_s": 0.3})]
    parents = ["mac16"]
    best = (-math.inf, "")
    t = 1.8e9
    for st in range(STAGES):
        cases = [f"mac16_{st}_{i}" for i in range(per)]
        ecos = ["resize_critical", "buffer_fanout", "pin_swap", "clone_driver"]
        out.append(ev.StageStarted(stage=st, parents=parents, plan=[
            {"case_id": c, "index": i, "parent": parents[i % len(parents)], "eco": ecos[i % 4],
             "params": {"paths": 1 + i % 20, "max_cells": 5 + i % 50}} for i, c in enumerate(cases)]))
        scored = []
        for c in cases:
            wns = -2661.0 + 100 * st + rng.uniform(-50, 50)
            out.append(ev.TrialStarted(case_id=c, attempt=1))
            out.append(ev.TrialFinished(
                case_id=c, metrics={"wns_ps": wns, "tns_ps": wns * 12, "power_total_w": 0.012 + rng.random() * 1e-3,
                                    "area_um2": 66000 + rng.random() * 500, "instances": 1771, "failing_endpoints": 24,
                                    "sta_warnings": 0, "eco_changes": 3},
                resources={"rc": 0, "wall_s": 0.2, "cpu_s": 0.19, "maxrss_kb": 60000, "started": t, "ended": t + 0.2},
                artifacts=f"trials/{c}", outputs={"mac16.v": "0" * 64}))
            scored.append((wns, c))
            t += 0.01
        scored.sort(reverse=True)
        parents = [c for _, c in scored[:4]]
        out.append(ev.SurvivorsChosen(stage=st, survivors=parents, ranking=[c for _, c in scored]))
        best = max(best, scored[0])
        out.append(ev.StageFinished(stage=st, status="done", best=best[1]))
    out.append(ev.StudyFinished(status="complete", reason="done"))
    for k, e in enumerate(out, 1):
        e.seq, e.t = k, 1.8e9 + k * 0.01
    return out


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return time.perf_counter() - t


async def console_open(d: Path) -> float:
    from noodle2.console.app import Noodle2App
    from noodle2.console.widgets.tables import TrialTable

    t = time.perf_counter()
    app = Noodle2App(d.parent, open_study=d)
    async with app.run_test(size=(120, 36)) as pilot:
        while not app.screen.query(TrialTable) or not app.screen.query_one(TrialTable).row_count:
            await pilot.pause(0.05)
        return time.perf_counter() - t


def main(n: int) -> None:
    import anyio

    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
        d = Path(tmp) / "scale"
        (d / "inputs").mkdir(parents=True)
        evs = journal(n)
        (d / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in evs))
        state = replay(evs)
        write_checkpoint(d, state, (d / JOURNAL).stat().st_size)
        del evs
        t = time.perf_counter()
        rec = recover(d)
        from_cp = time.perf_counter() - t
        assert rec.from_checkpoint and len(rec.state.trials) == n // STAGES * STAGES + 1
        del rec, state
        # what an engine resuming the study holds: a fresh process, the state folded from the checkpoint
        # (VmHWM: ru_maxrss survives exec, so a child would report this process's peak)
        hwm = "print(next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')))"
        probe = f"import sys, pathlib; from noodle2.engine.journal.store import recover; r = recover(pathlib.Path(sys.argv[1])); {hwm}"
        rss0 = int(subprocess.run([sys.executable, "-c", f"import noodle2.engine.journal.store; {hwm}"],
                                  capture_output=True, text=True, check=True).stdout)
        rss = int(subprocess.run([sys.executable, "-c", probe, str(d)], capture_output=True, text=True,
                                 check=True).stdout)
        (d / "checkpoint.json").rename(d / "cp.keep")
        t = time.perf_counter()
        recover(d)
        full = time.perf_counter() - t
        (d / "cp.keep").rename(d / "checkpoint.json")
        cli = [sys.executable, "-m", "noodle2.console.cli"]
        status = timed([*cli, "status", str(d)])
        report = timed([*cli, "report", str(d)])
        console = anyio.run(console_open, d)
        mb = (d / JOURNAL).stat().st_size / 2**20
    print(f"{n:,} trials, journal {mb:.0f} MB, {os.cpu_count()} CPUs")
    rows = [("engine RSS with the folded state (MB)", rss / 1024, 400), ("the same process before it (MB)", rss0 / 1024, None),
            ("resume from the checkpoint (s)", from_cp, 1.0), ("resume by full replay (s)", full, None),
            ("noodle2 status (s)", status, 1.0), ("console open, trial table shown (s)", console, 3.0),
            ("noodle2 report (s)", report, 30.0)]
    for name, v, target in rows:
        ok = "" if target is None else ("  ok" if v <= target else f"  over the target {target:g}")
        print(f"{name:<42}{v:>10.2f}{ok}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
