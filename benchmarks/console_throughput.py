"""The live view under load: a writer appends a synthetic journal at 500 events/s while a
headless console follows it.  Prints redraws per second, how far the console lags behind the
journal (events), and p95 keypress latency, next to an idle baseline in the same run.

    .venv/bin/python benchmarks/console_throughput.py [events_per_s] [seconds] [trials]

trials 1200 (the default): one stage of 1,200 trials.  More (#20 asks for 100000): the
history of benchmarks/scale.py, nine stages finished and checkpointed, the tenth running
(its trials are what the writer finishes).  Target (#20): key p95 <= 50 ms at 100k.
"""
from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from textual import events

from noodle2.console.app import Noodle2App
from noodle2.console.screens.study import StudyScreen
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import replay
from noodle2.engine.journal.store import JOURNAL, write_checkpoint

TRIALS = 1200


def header(d: Path, trials: int) -> list[str]:
    """Writes the study's journal up to its running stage; returns that stage's cases."""
    (d / "inputs").mkdir(parents=True)
    (d / "inputs" / "study.toml").write_text("")
    if trials <= TRIALS:
        plan = [{"case_id": f"b_0_{i}", "index": i, "parent": "b", "eco": "pin_swap", "params": {"paths": i % 50 + 1}}
                for i in range(trials)]
        evs: list[ev.Event] = [
            ev.StudyStarted(name="load", spec_hash="h", spec={}, base_case="b", max_parallel=64, safety_domain="guarded",
                            stages=[{"name": "big", "mode": "sta", "trials": trials, "survivors": 10, "after": []}]),
            ev.TrialFinished(case_id="b", metrics={"wns_ps": -2000.0}, resources={}),
            ev.StageStarted(stage=0, parents=["b"], plan=plan)]
        for k, e in enumerate(evs, 1):
            e.seq, e.t = k, time.time()
        (d / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in evs))
        return [p["case_id"] for p in plan]
    from scale import journal  # benchmarks/scale.py: the same 100k history its figures are about

    evs = journal(trials)
    last = max(k for k, e in enumerate(evs) if isinstance(e, ev.StageStarted))
    done, running = evs[:last], evs[last]
    (d / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in done))
    write_checkpoint(d, replay(done), (d / JOURNAL).stat().st_size)  # the engine's, at the end of stage 9
    with open(d / JOURNAL, "ab") as f:
        f.write(ev.encode(running))
    return [p["case_id"] for p in running.plan]


class Writer(threading.Thread):
    def __init__(self, path: Path, start_seq: int, rate: float, seconds: float, cases: list[str]) -> None:
        super().__init__(daemon=True)
        self.path, self.seq, self.rate, self.seconds, self.cases = path, start_seq, rate, seconds, cases
        self.written = start_seq

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        t0 = time.perf_counter()
        i = 0
        while (now := time.perf_counter()) - t0 < self.seconds:
            due = int((now - t0) * self.rate)
            batch = []
            while self.written < self.seq + due:
                c = self.cases[i // 2 % len(self.cases)]
                e = (ev.TrialStarted(case_id=c) if i % 2 == 0 else
                     ev.TrialFinished(case_id=c, metrics={"wns_ps": -2000.0 + (i % 997), "tns_ps": -9000.0},
                                      resources={"wall_s": 0.1}))
                self.written += 1
                e.seq, e.t = self.written, time.time()
                batch.append(ev.encode(e))
                i += 1
            if batch:
                os.write(fd, b"".join(batch))
            time.sleep(0.002)
        os.close(fd)


class Presser(threading.Thread):
    """An operator: presses `f` at random moments (50-150 ms apart), from another thread the way
    a terminal's input thread does, so a key can land in the middle of a redraw."""

    def __init__(self, app: Noodle2App, seconds: float) -> None:
        super().__init__(daemon=True)
        self.app, self.seconds, self.sent = app, seconds, []

    def run(self) -> None:
        rng = random.Random(7)
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            time.sleep(rng.uniform(0.05, 0.15))
            self.sent.append(time.perf_counter())
            self.app.post_message(events.Key("f", "f"))  # thread-safe, as the driver's own


async def measure(pilot, screen: StudyScreen, seconds: float, writer: Writer | None, start_seq: int) -> dict:
    """Key latency is press -> the bound action running (what an operator feels), keys sent at
    moments that do not wait for the app to be idle; lag is sampled every 100 ms."""
    lags: list[int] = []
    handled: list[float] = []
    real = screen.action_follow
    screen.action_follow = lambda: (handled.append(time.perf_counter()), real())  # type: ignore[method-assign]
    r0 = screen.redraws
    presser = Presser(pilot.app, seconds)
    t0 = time.perf_counter()
    presser.start()
    while presser.is_alive():
        written = writer.written if writer else start_seq
        lags.append(written - screen.state.seq)
        await pilot.pause(0.1)
    while len(handled) < len(presser.sent):
        await pilot.pause(0.01)
    screen.action_follow = real  # type: ignore[method-assign]
    elapsed = time.perf_counter() - t0
    keys = sorted(h - p for p, h in zip(presser.sent, handled))
    lags.sort()
    return {"redraws_s": (screen.redraws - r0) / elapsed, "lag_p50": statistics.median(lags),
            "lag_p95": lags[int(len(lags) * 0.95) - 1], "key_p50_ms": statistics.median(keys) * 1e3,
            "key_p95_ms": keys[int(len(keys) * 0.95) - 1] * 1e3, "keys": len(keys), "folded": screen.state.seq}


async def main(rate: float, seconds: float, trials: int) -> None:
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
        d = Path(tmp) / "studies" / "load"
        cases = header(d, trials)
        t = time.perf_counter()
        app = Noodle2App(d.parent, theme="dark", open_study=d)
        async with app.run_test(size=(160, 48)) as pilot:
            while not isinstance(pilot.app.screen, StudyScreen) or not pilot.app.screen.state.seq:
                await pilot.pause(0.05)
            opened = time.perf_counter() - t
            await pilot.pause(0.5)
            screen = pilot.app.screen
            start = screen.state.seq
            idle = await measure(pilot, screen, seconds / 2, None, start)
            w = Writer(d / JOURNAL, start, rate, seconds, cases)
            w.start()
            load = await measure(pilot, screen, seconds, w, start)
            w.join()
            await pilot.pause(1.0)
            caught_up = w.written - screen.state.seq
    shape = f"{trials:,} trials in one stage" if trials <= TRIALS else f"{trials:,} trials, the last of 10 stages running"
    print(f"console under load: {shape}, {rate:.0f} events/s for {seconds:.0f} s, 160x48, opened in {opened:.1f} s")
    print(f"{'phase':<8}{'redraws/s':>10}{'lag p50':>9}{'lag p95':>9}{'key p50 ms':>12}{'key p95 ms':>12}")
    for name, r in (("idle", idle), ("load", load)):
        print(f"{name:<8}{r['redraws_s']:>10.1f}{r['lag_p50']:>9.0f}{r['lag_p95']:>9.0f}{r['key_p50_ms']:>12.1f}"
              f"{r['key_p95_ms']:>12.1f}")
    print(f"key p95 under load / idle: {load['key_p95_ms'] / max(idle['key_p95_ms'], 1e-9):.2f}x; "
          f"events behind 1 s after the burst: {caught_up}")


if __name__ == "__main__":
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 500.0
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
    asyncio.run(main(rate, secs, int(sys.argv[3]) if len(sys.argv) > 3 else TRIALS))
