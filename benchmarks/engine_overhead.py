"""Engine overhead per no-op trial against the raw launch floors, measured in one process.

    .venv/bin/python benchmarks/engine_overhead.py [N]

Prints a table: per-trial cost of the engine (durable journal, max_parallel=2) next to
anyio.run_process and a blocking subprocess.run in 2 threads; then journal append,
checkpoint and resume costs at 1k and 10k trials.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import replay
from noodle2.engine.journal.store import JOURNAL, JournalWriter, recover, write_checkpoint
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir
from noodle2.engine.study.load import parse_study
from noodle2.engine.tools import make_tool

STUDY = """
[study]
name = "overhead"
[design]
top = "none"
[tool]
kind = "command"
command = ["/bin/true"]
metrics_file = ""
[execution]
max_parallel = 2
[[stages]]
name = "noop"
trials = {n}
survivors = 1
ecos = ["noop"]
"""


def engine_run(n: int, tmp: Path) -> tuple[float, int]:
    study = parse_study(STUDY.format(n=n), tmp / "study.toml")
    d = new_study_dir(study, tmp / "studies")
    eng = Engine(d, study, make_tool(study, d))
    t = time.perf_counter()
    status = anyio.run(eng.run)
    wall = time.perf_counter() - t
    assert status == "complete", status
    return wall, eng.journal.fsyncs


def floor_anyio(n: int) -> float:
    async def main() -> None:
        lim = anyio.CapacityLimiter(2)

        async def one() -> None:
            async with lim:
                await anyio.run_process(["/bin/true"], check=False)

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)

    t = time.perf_counter()
    anyio.run(main)
    return time.perf_counter() - t


def floor_threads(n: int) -> float:
    def work(k: int) -> None:
        for _ in range(k):
            subprocess.run(["/bin/true"], check=False)

    t = time.perf_counter()
    ths = [threading.Thread(target=work, args=(n // 2,)) for _ in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.perf_counter() - t


def floor_filesystem(n: int, tmp: Path) -> float:
    """What the trial directories cost on this disk, made the way the engine makes them: by 2
    workers at once, each a mkdir + 3 files (input, stdout, stderr) + sealing the input."""
    root = tmp / "fsfloor"
    root.mkdir()

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            d = root / f"c{i}"
            d.mkdir()
            for name in ("trial.json", "stdout.log", "stderr.log"):
                (d / name).write_bytes(b"{}")
            (d / "trial.json").chmod(0o444)

    t = time.perf_counter()
    ths = [threading.Thread(target=work, args=(k * n // 2, (k + 1) * n // 2)) for k in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.perf_counter() - t


def synthetic(n: int) -> list[ev.Event]:
    plan = [{"case_id": f"b_0_{i}", "index": i, "parent": "b", "eco": "resize_critical", "params": {"paths": 3}}
            for i in range(n)]
    out: list[ev.Event] = [
        ev.StudyStarted(name="x", spec_hash="h", spec={}, base_case="b", max_parallel=2, safety_domain="guarded",
                        stages=[{"name": "s", "mode": "sta", "trials": n, "survivors": 1, "after": []}]),
        ev.StageStarted(stage=0, parents=["b"], plan=plan)]
    for i in range(n):
        out.append(ev.TrialStarted(case_id=f"b_0_{i}"))
        out.append(ev.TrialFinished(case_id=f"b_0_{i}", metrics={"wns_ps": -1000.0 + i, "tns_ps": -5000.0,
                                    "power_total_w": 0.001, "area_um2": 12345.6},
                                    resources={"rc": 0, "wall_s": 0.1, "cpu_s": 0.09, "maxrss_kb": 15000},
                                    artifacts=f"trials/b_0_{i}"))
    for k, e in enumerate(out, 1):
        e.seq = k
    return out


def journal_costs(tmp: Path) -> list[tuple[str, float]]:
    rows = []
    evs = synthetic(1000)
    w = JournalWriter(tmp / "append.jsonl", 0)
    t = time.perf_counter()
    for e in evs:
        w.append(e)
    rows.append(("journal append (no fsync), per event", (time.perf_counter() - t) / len(evs)))
    t = time.perf_counter()
    for e in evs[:500]:
        w.append(e)
        w.sync_now()
    rows.append(("journal append + fsync, per event", (time.perf_counter() - t) / 500))
    w.close()
    for n in (1000, 10000):
        d = tmp / f"s{n}"
        d.mkdir()
        evs = synthetic(n)
        (d / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in evs))
        state = replay(evs)
        t = time.perf_counter()
        write_checkpoint(d, state, (d / JOURNAL).stat().st_size)
        rows.append((f"checkpoint write, {n} trials", time.perf_counter() - t))
        t = time.perf_counter()
        rec = recover(d)
        rows.append((f"resume from checkpoint, {n} trials", time.perf_counter() - t))
        assert rec.from_checkpoint and len(rec.state.trials) == n + 1
        (d / "checkpoint.json").unlink()
        t = time.perf_counter()
        recover(d)
        rows.append((f"resume by full journal replay, {n} trials", time.perf_counter() - t))
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    # Under the repo, where studies live: on some machines /tmp metadata ops cost 20x more.
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1], prefix=".bench-") as tmp:
        tmp = Path(tmp)
        threads = floor_threads(n) / n
        anyio_floor = floor_anyio(n) / n
        fs = floor_filesystem(n, tmp) / n
        wall, fsyncs = engine_run(n, tmp)
        eng = wall / n
        shm = None
        if Path("/dev/shm").is_dir():  # engine cost without the disk: fsync on tmpfs proves nothing
            with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="n2bench-") as mem:
                shm_fs = floor_filesystem(n, Path(mem)) / n
                shm = (engine_run(n, Path(mem))[0] / n, shm_fs)
        print(f"no-op trials: N={n}, max_parallel=2, /bin/true, journal fsynced at every completion")
        print(f"{'measure':<44}{'ms/trial':>10}{'× threads floor':>17}")
        for name, v in [("subprocess.run in 2 threads (floor)", threads), ("anyio.run_process, limiter 2", anyio_floor),
                        ("trial dir + 3 files, 2 threads (fs floor)", fs),
                        ("launch floor + fs floor", threads + fs),
                        ("noodle2 engine, end to end", eng)]:
            print(f"{name:<44}{v * 1e3:>10.3f}{v / threads:>17.2f}")
        if shm is not None:
            print(f"{'same on tmpfs: fs floor':<44}{shm[1] * 1e3:>10.3f}{shm[1] / threads:>17.2f}")
            print(f"{'same on tmpfs: engine (not durable)':<44}{shm[0] * 1e3:>10.3f}{shm[0] / threads:>17.2f}")
        print(f"engine fsyncs: {fsyncs} for {n + 1} completions (group commit)   target: engine ≤ 2.000 ms/trial")
        print()
        print(f"{'journal / checkpoint':<44}{'ms':>10}")
        for name, v in journal_costs(tmp):
            print(f"{name:<44}{v * 1e3:>10.3f}")
        print("target: resume of a 10k-trial study ≤ 1000 ms")


if __name__ == "__main__":
    main()
