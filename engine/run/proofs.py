"""No survivor is promoted unproven: each is proven equivalent to its parent, and a stage
whose pick fails its proof ranks again without it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import anyio

from noodle2.engine.journal import events as ev
from noodle2.engine.policy.failures import failure
from noodle2.engine.policy.ranking import Candidate
from noodle2.engine.policy.trace import gate
from noodle2.engine.run.host import Host


def counterexample(trial_dir: Path) -> str:
    """The counterexample a failed proof left, for the failure's excerpt."""
    try:
        return (trial_dir / "equiv" / "counterexample.txt").read_text(errors="replace")[:1200]
    except OSError:
        return ""


class Prover:
    def __init__(self, host: Host, workers: anyio.CapacityLimiter) -> None:
        self.host = host
        self.workers = workers  # proofs share the limiter of output collection, not the tools' slots

    def record(self, case: str, parent: str, p: dict[str, Any]) -> None:
        self.host.emit(ev.EquivalenceChecked(case_id=case, against=parent, proven=p["proven"], method=p["method"],
                                             seconds=p["seconds"], detail=p["detail"]))

    async def survivors(self, stage: int, sel: Any, cands: list[Candidate], select: Callable) -> Any:
        """Prove each new survivor against its parent (in parallel); one that is not equivalent
        fails as not_equivalent, and `select` runs again over the candidates still standing."""
        h = self.host
        while True:
            mine = set(h.state.stages[stage].cases)  # a kept parent was proven in its own stage
            todo = [c for c in sel.survivors if c in mine and h.state.trials[c].proof is None]
            if not todo:
                return sel
            proofs = await self._prove(todo)
            if any(p is None for p in proofs.values()):
                return sel  # the tool has nothing to prove (no netlist)
            for c in todo:  # journal in ranking order, whatever order the proofs finished in
                self._judge(stage, c, proofs[c])  # type: ignore[arg-type]
            if all(proofs[c]["proven"] for c in todo):  # type: ignore[index]
                return sel
            await h.sync()
            cands = [c for c in cands if h.state.trials[c.case_id].status == "done"]
            sel = await anyio.to_thread.run_sync(select, cands)

    async def _prove(self, cases: list[str]) -> dict[str, dict | None]:
        h = self.host
        proofs: dict[str, dict | None] = {}

        async def one(case: str) -> None:
            t = h.state.trials[case]
            async with self.workers:
                proofs[case] = await anyio.to_thread.run_sync(
                    h.tool.prove, h.dir / "trials" / case, h.dir / "trials" / (t.parent or ""))

        async with anyio.create_task_group() as tg:
            for c in cases:
                tg.start_soon(one, c)
        return proofs

    def _judge(self, stage: int, case: str, p: dict[str, Any]) -> None:
        h = self.host
        self.record(case, h.state.trials[case].parent or "", p)
        h.emit(ev.GatesChecked(stage=stage, gates=[gate("equivalence", case, p["proven"],
                                                        {"method": p["method"], "seconds": p["seconds"]}, stage)]))
        if not p["proven"]:
            h.emit(ev.TrialFailed(case_id=case, resources=h.state.trials[case].resources or {}, failure=failure(
                "not_equivalent", f"not proven equivalent to its parent: {p['detail']}",
                counterexample(h.dir / "trials" / case))))
