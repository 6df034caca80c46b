"""Stages as a DAG: each waits for the stages it comes after, plans its trials from their
survivors (policy code), runs them, and ranks and proves its own survivors."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import partial
from typing import Any

import anyio

from noodle2.engine.catalog.ecos import ROUTE_MODES
from noodle2.engine.errors import EnvironmentFault
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import TERMINAL, TrialState
from noodle2.engine.policy import containment, priors
from noodle2.engine.policy.planning import plan_stage
from noodle2.engine.policy.ranking import Candidate, rail_limits, rank_agreement, select_survivors, study_best
from noodle2.engine.run.host import Host
from noodle2.engine.run.proofs import Prover
from noodle2.engine.run.trials import TrialRunner


def output_key(t: TrialState) -> str:
    """What a trial produced, for telling equal designs apart: the hash of its outputs."""
    return ",".join(f"{k}={v}" for k, v in sorted(t.outputs.items()))


def leaf_fault(eg: BaseExceptionGroup) -> EnvironmentFault:
    """The EnvironmentFault a task group wrapped (in groups of groups, maybe)."""
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    assert isinstance(e, EnvironmentFault)
    return e


class StageScheduler:
    def __init__(self, host: Host, trials: TrialRunner, prover: Prover, imported_priors: dict[str, Any],
                 max_parallel: int) -> None:
        self.host = host
        self.trials = trials
        self.prover = prover
        self.imported_priors = imported_priors
        self.max_parallel = max_parallel
        self.end: tuple[str, str] | None = None  # (status, reason) when a stage ends the study early

    async def run_all(self) -> None:
        """Every stage, each as soon as the stages it comes after are done."""
        deps = self.host.spec.stage_deps()
        done = [anyio.Event() for _ in self.host.spec.stages]
        async with anyio.create_task_group() as tg:
            for i in range(len(self.host.spec.stages)):
                tg.start_soon(self._stage, i, deps[i], done, tg.cancel_scope)

    async def _stage(self, i: int, deps: list[int], done: list[anyio.Event], stages: anyio.CancelScope) -> None:
        try:
            for d in deps:
                await done[d].wait()
            if self.host.stop_reason is None:
                await self._body(i, deps, stages)
        except* EnvironmentFault as eg:
            self.host.machine_fault(leaf_fault(eg))
        finally:
            done[i].set()

    async def _body(self, i: int, deps: list[int], stages: anyio.CancelScope) -> None:
        h = self.host
        st = h.state.stages[i]
        if st.status in ("done", "aborted", "skipped"):
            return
        upstream = [h.state.stages[d] for d in deps]
        if any(u.status != "done" or not u.survivors for u in upstream):
            h.emit(ev.StageFinished(stage=i, status="skipped", reason="an upstream stage produced no survivors"))
            return
        if st.status == "pending":
            parents = list(dict.fromkeys(c for u in upstream for c in u.survivors)) or [h.state.base_case]
            await self._plan(i, parents)
        todo = iter([t for t in h.state.stage_trials(i) if t.status not in TERMINAL])
        scan = containment.FlatScan.of(h.state, i)
        cut = containment.flat_stop(h.spec, h.state, i, scan)  # a resume finds an early stop where it was

        def past_the_stop(t: TrialState) -> str | None:
            return f"not run: stage {st.name} stopped early" if cut is not None and t.index >= cut[0] else None

        async def worker() -> None:
            nonlocal cut
            for t in todo:  # one shared iterator: each trial is taken once, in plan order
                await self.trials.run(t, st.mode, past_the_stop)
                if cut is None and (cut := containment.flat_stop(h.spec, h.state, i, scan)) is not None \
                        and ("stop_early", st.name) not in {(d["action"], d["subject"]) for d in h.state.decisions}:
                    h.emit(ev.PolicyDecision(scope="stage", action="stop_early", subject=st.name, reason=cut[1],
                                             stage=i))

        # More workers than tool slots: some collect results and wait on the journal fsync while
        # others run tools, and completions share one fsync (group commit).  A task
        # per trial would make a 10,000-trial stage one 0.7 s step of the event loop.
        async with anyio.create_task_group() as tg:
            for _ in range(min(len(st.cases), 4 * self.max_parallel + 4)):
                tg.start_soon(worker)
        if h.stop_reason is not None or self.end is not None:
            return  # a stop leaves the stage as it is, to be finished on resume
        await self._finish(i, stages)
        await h.checkpoint()

    async def _plan(self, i: int, parents: list[str]) -> None:
        h = self.host
        ecos, decisions, gates, effects = containment.plan_ecos(h.spec, h.state, i, h.tool.implements(),
                                                                self.imported_priors)
        h.emit(ev.EcoStats(stage=i, rows=priors.leaderboard(effects)))
        h.emit(ev.GatesChecked(stage=i, gates=gates))
        for d in decisions:
            h.emit(d)
        base = h.state.base()
        plan = await anyio.to_thread.run_sync(plan_stage, h.spec, i, parents, ecos,  # pure; 0.1 s at 10k
                                              (base.metrics or {}) if base else {})
        h.emit(ev.StageStarted(stage=i, parents=parents, plan=plan))

    async def _finish(self, i: int, stages: anyio.CancelScope) -> None:
        """The policy's verdict on the stage, then its survivors: ranked, proven, journaled."""
        h = self.host
        st = h.state.stages[i]
        trials = h.state.stage_trials(i)
        cut = containment.flat_stop(h.spec, h.state, i)  # trials after an early stop never count
        ok = [t for t in trials if t.status == "done" and (cut is None or t.index < cut[0])]
        decisions, gates = containment.after_stage(h.spec, h.state, i)
        h.emit(ev.GatesChecked(stage=i, gates=gates))
        if not ok:
            kinds = Counter((t.failure or {}).get("type", "no_trials") for t in trials) or Counter(no_trials=1)
            why = ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items()))
            reason = f"every trial of stage {st.name} failed ({why})" if trials else f"stage {st.name} had no usable ECO"
            h.emit(ev.PolicyDecision(scope="stage", action="abort_stage", subject=st.name, reason=reason, stage=i))
            return self._abort(i, "failed", reason, reason, stages)
        for d in decisions:
            h.emit(d)
        actions = {d.action: d.reason for d in decisions}
        if "block_study" in actions:
            return self._abort(i, "blocked", actions["block_study"], actions["block_study"], stages)
        if "abort_stage" in actions:
            return self._abort(i, "failed", actions["abort_stage"], f"stage {st.name} aborted: {actions['abort_stage']}",
                               stages)
        await self._survivors(i, ok)
        h.emit(ev.StageFinished(stage=i, status="done", best=study_best(h.state, h.spec.ranking, finishing=i) or ""))
        if (goal := containment.goal_met(h.spec, h.state, i)) is not None:
            h.emit(goal)
            self._end_study("complete", goal.reason, stages)
        elif "plateau" in actions:
            self._end_study("complete", actions["plateau"], stages)

    async def _survivors(self, i: int, ok: list[TrialState]) -> None:
        h = self.host
        st, base = h.state.stages[i], h.state.base()
        cands = [Candidate(t.case_id, t.metrics or {}, h.state.trials[t.parent].metrics if t.parent else None,
                           output_key(t)) for t in ok]
        if h.spec.stages[i].keep_parents:  # the parents compete too: a stage never loses ground
            cands += [Candidate(p, h.state.trials[p].metrics or {}, None, output_key(h.state.trials[p]))
                      for p in st.parents if h.state.trials[p].status == "done"]
        select = partial(select_survivors, r=h.spec.stage_ranking(i), count=st.survivor_count,
                         base=base.metrics if base else None,
                         max_wns_regression_ps=h.spec.rails.max_wns_regression_vs_parent_ps, stage=i,
                         limits=rail_limits(h.spec.rails))
        spent, budget_gates = containment.over_budget(h.spec, h.state, [c.case_id for c in cands], i)
        cands = [c for c in cands if c.case_id not in spent]  # over its class's risk budget: cannot survive
        sel = await anyio.to_thread.run_sync(select, cands)
        if spent:
            sel = replace(sel, excluded={**spent, **sel.excluded}, gates=budget_gates + sel.gates)
        elif budget_gates:
            sel = replace(sel, gates=budget_gates + sel.gates)
        if h.spec.verify.equivalence != "off":
            sel = await self.prover.survivors(i, sel, cands, select)
        if sel.gates:
            h.emit(ev.GatesChecked(stage=i, gates=sel.gates))
        if st.mode in ROUTE_MODES and (agree := rank_agreement(cands, sel.ranking, h.spec.stage_ranking(i),
                                                                base.metrics if base else None)):
            h.emit(ev.RankAgreement(stage=i, **agree))
        h.emit(ev.SurvivorsChosen(stage=i, survivors=sel.survivors, ranking=sel.ranking,
                                  excluded=sel.excluded, front=sel.front))

    def _abort(self, i: int, status: str, why: str, reason: str, stages: anyio.CancelScope) -> None:
        self.host.emit(ev.StageFinished(stage=i, status="aborted", reason=why))
        self._end_study(status, reason, stages)

    def _end_study(self, status: str, reason: str, stages: anyio.CancelScope) -> None:
        if self.end is None:
            self.end = (status, reason)
        stages.cancel()
