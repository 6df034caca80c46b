"""A study of 100,000 trials: what the engine and the views cost at that size.

    .venv/bin/python benchmarks/scale.py [N] [--live]      (default 100000)

Writes a journal of N finished trials in 10 stages (events as the engine writes them, with
realistic metrics and resources) and a checkpoint of it; with --live, runs such a study instead,
`noodle2 run --unattended` on N cheap command trials (a shell script that writes a metrics file;
about 10 minutes for 100k on 2 CPUs), and says the engine's peak RSS and its time per trial in
the first and the last stage (a cost that grows with the study shows there).  Then measures:
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
import resource
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


TOOL = """#!/bin/sh
# a cheap trial: a WNS from the case's name, as a tool would report it
h=$(printf '%s' "$N2_CASE_ID" | cksum | cut -d' ' -f1)
printf '{"wns_ps": -%d.0, "tns_ps": -%d.0, "area_um2": 1000.0}' $((h % 1000)) $((h % 10000)) > metrics.json
"""


def run_live(n: int, tmp: Path) -> tuple[Path, list[tuple[str, float, float | None]]]:
    """The study run as a user runs it, in a fresh process: its directory, and the engine's figures."""
    tool = tmp / "tool.sh"
    tool.write_text(TOOL)
    tool.chmod(0o755)
    stages = "".join(f'\n[[stages]]\nname = "s{i}"\ntrials = {n // STAGES}\nsurvivors = 4\n'
                     'ecos = ["resize_critical", "buffer_fanout", "pin_swap", "clone_driver"]\n' for i in range(STAGES))
    study = tmp / "live.toml"
    study.write_text(f'[study]\nname = "live"\n[safety]\nallow = ["tool_command"]\n[design]\ntop = "none"\n'
                     f'[tool]\nkind = "command"\ncommand = ["{tool}"]\nmetrics_file = "metrics.json"\n'
                     f'[execution]\nmax_parallel = 2\nreuse = false\n{stages}')
    d = tmp / "scale"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(study), "--unattended", "--study-dir", str(d)],
                   cwd=ROOT, stdout=subprocess.DEVNULL, check=True, timeout=6 * 3600)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the engine: its tools are far smaller
    st = recover(d).state
    assert st.status == "complete", st.reason
    per = [(s.ended_at - s.started_at) / len(s.cases) * 1e3 for s in (st.stages[0], st.stages[-1])]
    return d, [("engine run, wall (s)", wall, None), ("engine peak RSS while it ran (MB)", peak, 400),
               ("engine, first stage (ms/trial)", per[0], None), ("engine, last stage (ms/trial)", per[1], None)]


def synthesized(n: int, tmp: Path) -> Path:
    d = tmp / "scale"
    (d / "inputs").mkdir(parents=True)
    evs = journal(n)
    (d / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in evs))
    write_checkpoint(d, replay(evs), (d / JOURNAL).stat().st_size)
    return d


def main(n: int, live: bool) -> None:
    import anyio

    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
        d, engine_rows = run_live(n, Path(tmp)) if live else (synthesized(n, Path(tmp)), [])
        t = time.perf_counter()
        rec = recover(d)
        from_cp = time.perf_counter() - t
        assert rec.from_checkpoint and len(rec.state.trials) == n // STAGES * STAGES + 1
        del rec
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
    print(f"{n:,} trials ({'run by the engine' if live else 'a journal written here'}), journal {mb:.0f} MB, "
          f"{os.cpu_count()} CPUs")
    rows = [*engine_rows, ("engine RSS with the folded state (MB)", rss / 1024, 400), ("the same process before it (MB)", rss0 / 1024, None),
            ("resume from the checkpoint (s)", from_cp, 1.0), ("resume by full replay (s)", full, None),
            ("noodle2 status (s)", status, 1.0), ("console open, trial table shown (s)", console, 3.0),
            ("noodle2 report (s)", report, 30.0)]
    for name, v, target in rows:
        ok = "" if target is None else ("  ok" if v <= target else f"  over the target {target:g}")
        print(f"{name:<42}{v:>10.2f}{ok}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--live"]
    main(int(args[0]) if args else 100_000, "--live" in sys.argv[1:])
