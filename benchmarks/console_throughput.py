"""The live view under load: a writer appends a synthetic 1,200-trial journal at 500 events/s
while a headless console follows it.  Prints redraws per second, how far the console lags
behind the journal (events), and p95 keypress latency, next to an idle baseline in the same run.

    .venv/bin/python benchmarks/console_throughput.py [events_per_s] [seconds]
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noodle2.console.app import Noodle2App
from noodle2.console.screens.study import StudyScreen
from noodle2.engine.journal import events as ev

TRIALS = 1200


def header(d: Path) -> list[ev.Event]:
    (d / "inputs").mkdir(parents=True)
    (d / "inputs" / "study.toml").write_text("")
    plan = [{"case_id": f"b_0_{i}", "index": i, "parent": "b", "eco": "pin_swap", "params": {"paths": i % 50 + 1}}
            for i in range(TRIALS)]
    return [ev.StudyStarted(name="load", spec_hash="h", spec={}, base_case="b", max_parallel=64, safety_domain="guarded",
                            stages=[{"name": "big", "mode": "sta", "trials": TRIALS, "survivors": 10, "after": []}]),
            ev.TrialFinished(case_id="b", metrics={"wns_ps": -2000.0}, resources={}),
            ev.StageStarted(stage=0, parents=["b"], plan=plan)]


class Writer(threading.Thread):
    def __init__(self, path: Path, start_seq: int, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.path, self.seq, self.rate, self.seconds = path, start_seq, rate, seconds
        self.written = start_seq

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        t0 = time.perf_counter()
        i = 0
        while (now := time.perf_counter()) - t0 < self.seconds:
            due = int((now - t0) * self.rate)
            batch = []
            while self.written < self.seq + due:
                k = i // 2 % TRIALS
                e = (ev.TrialStarted(case_id=f"b_0_{k}") if i % 2 == 0 else
                     ev.TrialFinished(case_id=f"b_0_{k}", metrics={"wns_ps": -2000.0 + (i % 997), "tns_ps": -9000.0},
                                      resources={"wall_s": 0.1}))
                self.written += 1
                e.seq, e.t = self.written, time.time()
                batch.append(ev.encode(e))
                i += 1
            if batch:
                os.write(fd, b"".join(batch))
            time.sleep(0.002)
        os.close(fd)


async def measure(pilot, screen: StudyScreen, seconds: float, writer: Writer | None, start_seq: int) -> dict:
    """Key latency is press -> the bound action running (what an operator feels), not
    Pilot's wait for an idle app, which a 10 Hz redraw loop rarely is."""
    lags, keys = [], []
    handled: list[float] = []
    real = screen.action_follow
    screen.action_follow = lambda: (handled.append(time.perf_counter()), real())  # type: ignore[method-assign]
    r0 = screen.redraws
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        k = time.perf_counter()
        n = len(handled)
        await pilot.press("f")
        while len(handled) == n:
            await asyncio.sleep(0.001)
        keys.append(handled[-1] - k)
        written = writer.written if writer else start_seq
        lags.append(written - screen.state.seq)
        await pilot.pause(0.1)
    screen.action_follow = real  # type: ignore[method-assign]
    elapsed = time.perf_counter() - t0
    keys.sort()
    lags.sort()
    return {"redraws_s": (screen.redraws - r0) / elapsed, "lag_p50": statistics.median(lags),
            "lag_p95": lags[int(len(lags) * 0.95) - 1], "key_p50_ms": statistics.median(keys) * 1e3,
            "key_p95_ms": keys[int(len(keys) * 0.95) - 1] * 1e3, "folded": screen.state.seq}


async def main(rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
        d = Path(tmp) / "studies" / "load"
        evs = header(d)
        for k, e in enumerate(evs, 1):
            e.seq, e.t = k, time.time()
        (d / "journal.jsonl").write_bytes(b"".join(ev.encode(e) for e in evs))
        app = Noodle2App(d.parent, theme="dark", open_study=d)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.5)
            screen = pilot.app.screen
            assert isinstance(screen, StudyScreen)
            idle = await measure(pilot, screen, seconds / 2, None, len(evs))
            w = Writer(d / "journal.jsonl", len(evs), rate, seconds)
            w.start()
            load = await measure(pilot, screen, seconds, w, len(evs))
            w.join()
            await pilot.pause(1.0)
            caught_up = w.written - screen.state.seq
    print(f"console under load: {TRIALS} trials in one stage, {rate:.0f} events/s for {seconds:.0f} s, 160x48")
    print(f"{'phase':<8}{'redraws/s':>10}{'lag p50':>9}{'lag p95':>9}{'key p50 ms':>12}{'key p95 ms':>12}")
    for name, r in (("idle", idle), ("load", load)):
        print(f"{name:<8}{r['redraws_s']:>10.1f}{r['lag_p50']:>9.0f}{r['lag_p95']:>9.0f}{r['key_p50_ms']:>12.1f}"
              f"{r['key_p95_ms']:>12.1f}")
    print(f"key p95 under load / idle: {load['key_p95_ms'] / max(idle['key_p95_ms'], 1e-9):.2f}x; "
          f"events behind 1 s after the burst: {caught_up}")


if __name__ == "__main__":
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 500.0
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
    asyncio.run(main(rate, secs))
