"""Survivor ranking at scale, and what it costs the event loop, measured in one process.

    .venv/bin/python benchmarks/ranking_scale.py

1. Pareto ranking (non-dominated sort + crowding) of 1k, 3k and 10k candidates, 2 and 3
   objectives, against the former all-pairs front peeling run in the same process.
2. A whole engine stage of 10,000 trials with Pareto survivors (an in-process executor, no
   subprocesses): wall time, and the longest the event loop went without running a 10 ms ticker.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noodle2.engine.executors.base import ExecResult, Job
from noodle2.engine.policy.failures import Outcome
from noodle2.engine.policy.ranking import Candidate, _dominates, select_survivors
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir
from noodle2.engine.study.load import parse_study
from noodle2.engine.study.models import Ranking
from noodle2.engine.tools import make_tool


def old_fronts(points: dict[str, tuple[float, ...]]) -> list[list[str]]:
    """The former implementation: peel fronts by comparing every remaining pair."""
    ids = sorted(points)
    remaining = set(ids)
    fronts = []
    while remaining:
        front = [i for i in ids if i in remaining and not any(_dominates(points[j], points[i]) for j in remaining if j != i)]
        fronts.append(front)
        remaining -= set(front)
    return fronts


def candidates(n: int, m: int, rng: random.Random) -> list[Candidate]:
    keys = ["wns_ps", "area_um2", "power_total_w"][:m]
    return [Candidate(f"c_0_{i}", {k: rng.uniform(-3000, 0) if k == "wns_ps" else rng.uniform(1, 100) for k in keys})
            for i in range(n)]


def ranking_table() -> None:
    rng = random.Random(1)
    print(f"{'pareto ranking':<34}{'N':>7}{'s (new)':>10}{'s (old)':>10}{'speed-up':>10}")
    for m in (2, 3):
        r = Ranking(kind="pareto", objectives=["wns_ps", "area_um2", "power_total_w"][:m])
        for n in (1000, 3000, 10000):
            cands = candidates(n, m, rng)
            t = time.perf_counter()
            sel = select_survivors(cands, r, 10, None, None)
            new = time.perf_counter() - t
            old = None
            if n <= 3000:
                pts = {c.case_id: (c.metrics["wns_ps"], *(-c.metrics[k] for k in r.objectives[1:])) for c in cands}
                t = time.perf_counter()
                old_fronts(pts)
                old = time.perf_counter() - t
            print(f"{f'{m} objectives':<34}{n:>7}{new:>10.3f}{(f'{old:.3f}' if old else '—'):>10}"
                  f"{(f'{old / new:.0f}×' if old else ''):>10}")
            assert len(sel.survivors) == 10


STUDY = """
[study]
name = "scale"
[design]
top = "none"
[tool]
kind = "command"
command = ["true"]
[execution]
max_parallel = 2
[ranking]
kind = "pareto"
objectives = ["wns_ps", "area_um2"]
[[stages]]
name = "wide"
trials = {n}
survivors = 10
ecos = ["resize_critical"]
"""


class InlineExecutor:
    """Runs no process: prepares the trial directory and writes metrics as a tool would."""

    def __init__(self) -> None:
        self.rng = random.Random(7)

    async def run(self, job: Job) -> tuple[ExecResult, None]:
        def work() -> ExecResult:
            cmd = job.prepare()
            (cmd.cwd / "metrics.json").write_bytes(orjson.dumps(
                {"wns_ps": -self.rng.uniform(0, 3000), "tns_ps": -1.0, "area_um2": self.rng.uniform(1, 100)}))
            cmd.stdout.write_bytes(b"")
            now = time.time()
            return ExecResult(Outcome(rc=0), now, now, command=cmd)
        return await anyio.to_thread.run_sync(work), None

    def close(self) -> None:
        pass


def stage_run(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1], prefix=".bench-") as tmp:
        study = parse_study(STUDY.format(n=n), Path(tmp) / "study.toml")
        d = new_study_dir(study, Path(tmp) / "studies")
        eng = Engine(d, study, make_tool(study, d), executor=InlineExecutor())
        worst = 0.0

        async def main() -> str:
            nonlocal worst

            async def ticker() -> None:
                nonlocal worst
                while True:
                    t = time.perf_counter()
                    await anyio.sleep(0.01)
                    worst = max(worst, time.perf_counter() - t - 0.01)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                status = await eng.run()
                tg.cancel_scope.cancel()
            return status

        t = time.perf_counter()
        assert anyio.run(main) == "complete"
        wall = time.perf_counter() - t
        assert len(eng.state.stages[0].survivors) == 10
    return wall, worst


def main() -> None:
    ranking_table()
    print()
    for n in (1000, 10000):
        wall, lag = stage_run(n)
        print(f"engine stage of {n} trials, pareto survivors: {wall:.1f} s end to end, "
              f"longest event-loop stall {lag * 1e3:.0f} ms")
    print("target: ranking off the event loop; a 10,000-trial stage never stalls the loop for seconds")


if __name__ == "__main__":
    main()
