"""The engine: base-case gate, stages as a DAG, trials under a CapacityLimiter, one journal.

Everything the engine knows is in `self.state`, folded from the events it emits; resuming is
recovering that state from disk and carrying on from it.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable

import anyio
import orjson

from engine import events as ev
from engine.errors import N2Error
from engine.executors import Command, ExecResult, Executor, Job, LocalExecutor, kill_orphans
from engine.fsutil import StudyLock
from engine.journal import JOURNAL, JournalWriter, recover, write_checkpoint
from engine.policy import containment
from engine.policy.failures import RETRYABLE, classify, failure
from engine.policy.planning import plan_stage
from engine.policy.ranking import Candidate, select_survivors
from engine.reports import best_case, load_imported_priors, write_reports
from engine.spec import Study
from engine.studydir import update_provenance
from engine.state import TERMINAL, StudyState, TrialState, fold
from engine.tools.base import ToolAdapter, TrialContext, TrialFailure, tail

Listener = Callable[[ev.Event, StudyState], None]
CONTROL_DIR = "control"
TRIAL_ENV = "N2_TRIAL_DIR"  # in every tool's environment; finds orphans after a crash


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


class Engine:
    def __init__(self, study_dir: Path, study: Study, tool: ToolAdapter, *, executor: Executor | None = None,
                 listeners: list[Listener] | None = None, provenance: dict | None = None) -> None:
        self.dir = study_dir
        self.study = study
        self.spec = study.spec
        self.tool = tool
        self.max_parallel = self.spec.execution.max_parallel or usable_cpus()
        self.executor = executor or LocalExecutor(self.max_parallel)
        self.listeners = listeners or []
        self.provenance = provenance or {}
        self.state = StudyState()
        self.limiter = anyio.CapacityLimiter(self.max_parallel)  # running tools
        self.collectors = anyio.CapacityLimiter(self.max_parallel)  # output parsing, after the tool
        self.stop_reason: str | None = None
        self._work: anyio.CancelScope | None = None
        self._trial_scopes: dict[str, anyio.CancelScope] = {}
        self._unpause = anyio.Event()
        self._unpause.set()
        self._end: tuple[str, str] | None = None  # (status, reason) when a stage ends the study early
        self.imported_priors = load_imported_priors(study)

    # --- events ---------------------------------------------------------------------------
    def emit(self, e: ev.Event) -> None:
        e.seq, e.t = self.state.seq + 1, time.time()
        self.journal.append(e)
        fold(self.state, e)
        for cb in self.listeners:
            cb(e, self.state)

    def log(self, level: str, msg: str, case_id: str | None = None) -> None:
        self.emit(ev.Log(level=level, msg=msg, case_id=case_id))

    def checkpoint(self) -> None:
        self.journal.sync_now()
        write_checkpoint(self.dir, self.state, self.journal.offset)
        write_reports(self.dir, self.spec, self.state, self.imported_priors)
        self.emit(ev.CheckpointWritten(upto_seq=self.state.seq))

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self) -> str:
        """Run or resume to the end.  Returns the final status (complete/failed/blocked/interrupted)."""
        lock = StudyLock(self.dir)
        lock.acquire()
        try:
            rec = recover(self.dir)
            self.state = rec.state
            self.journal = JournalWriter(self.dir / JOURNAL, rec.end)
            try:
                return await self._run(rec.warnings)
            finally:
                self.journal.close()
        finally:
            lock.release()

    async def _run(self, warnings: list[str]) -> str:
        s = self.state
        if s.status == "new":
            self.emit(ev.StudyStarted(
                name=self.spec.study.name, spec_hash=self.study.spec_hash(), spec=self.spec.model_dump(),
                base_case=self.spec.base_case, max_parallel=self.max_parallel,
                safety_domain=self.spec.study.safety_domain, provenance=self.provenance,
                stages=[{"name": st.name, "mode": st.mode, "trials": st.trials, "survivors": st.survivors,
                         "after": deps} for st, deps in zip(self.spec.stages, self.spec.stage_deps())]))
        elif s.status in ("complete", "failed", "blocked"):
            raise N2Error.one("N2-E204", f"study {s.name} already ended ({s.status})")
        else:
            requeued = sorted(t.case_id for t in s.running())
            self.emit(ev.StudyResumed(pid=os.getpid(), requeued=requeued))
            if requeued:  # tools of the dead engine may still run; they must not write into re-runs
                pids = kill_orphans(TRIAL_ENV, {str(self.dir / "trials" / c) for c in requeued})
                if pids:
                    self.log("warning", f"killed {len(pids)} orphaned tool process(es) of the previous engine")
        for w in warnings:
            self.log("warning", w)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            tg.start_soon(self._watch_control)
            with anyio.CancelScope() as self._work:
                await self._main()
            tg.cancel_scope.cancel()
        if self.stop_reason is not None:
            with anyio.CancelScope(shield=True):
                self.emit(ev.StudyInterrupted(reason=self.stop_reason, resume=f"noodle2 resume {self.dir}"))
                self.checkpoint()
            return "interrupted"
        return self.state.status

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._work is not None:
            self._work.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
            async for sig in sigs:
                self.stop(f"received {signal.Signals(sig).name}")

    async def _watch_control(self) -> None:
        """Requests arrive as files in <study>/control/; each gets a ControlAck in the journal."""
        cdir = self.dir / CONTROL_DIR
        cdir.mkdir(exist_ok=True)
        born = time.time()
        while True:
            for f in sorted(cdir.glob("*.json")):  # writers rename into place: no partial files
                try:
                    req, sent = orjson.loads(f.read_bytes()), f.stat().st_mtime
                except (OSError, orjson.JSONDecodeError):
                    continue
                f.unlink(missing_ok=True)
                what, target = str(req.get("request", "")), str(req.get("target", ""))
                if sent < born - 1.0:  # meant for an engine that is gone; a stale stop must not fire
                    self.emit(ev.ControlAck(request=what, target=target, accepted=False,
                                            detail="expired: sent before this engine started"))
                    continue
                self._control(what, target)
            await anyio.sleep(0.1)

    def _control(self, request: str, target: str) -> None:
        ok, detail = True, ""
        if request == "pause":
            self._unpause = anyio.Event()
            detail = "no new trials start; running ones finish"
        elif request == "resume":
            self._unpause.set()
        elif request == "stop":
            detail = "stopping gracefully"
        elif request == "cancel":
            scope = self._trial_scopes.get(target)
            ok = scope is not None
            if scope is not None:
                scope.cancel()
            else:
                detail = f"{target} is not running"
        else:
            ok, detail = False, "unknown request"
        self.emit(ev.ControlAck(request=request, target=target, accepted=ok, detail=detail))
        if request == "stop":
            self.stop("operator requested stop")

    # --- the study ------------------------------------------------------------------------
    async def _main(self) -> None:
        base = self.state.base()
        assert base is not None
        if base.status not in TERMINAL and await self._setup_snapshot(base):
            await self._run_trial(base, mode=self.spec.stages[0].mode)
        if base.status != "done":
            f = base.failure or {}
            reason = f"base case {base.case_id} failed its no-op run: {f.get('type')}: {f.get('reason')}"
            self.emit(ev.PolicyDecision(scope="study", action="block_study", subject=base.case_id, reason=reason))
            self.emit(ev.StudyFinished(status="blocked", reason=reason))
            self.checkpoint()
            return
        deps = self.spec.stage_deps()
        done = [anyio.Event() for _ in self.spec.stages]
        async with anyio.create_task_group() as tg:
            for i in range(len(self.spec.stages)):
                tg.start_soon(self._stage, i, deps[i], done, tg.cancel_scope)
        why = self._end[1] if self._end else ""
        for st in self.state.stages:  # stages an early end never reached, or cut off in a branch
            if st.status == "pending":
                self.emit(ev.StageFinished(stage=st.index, status="skipped", reason=why))
            elif st.status == "running":
                self.emit(ev.StageFinished(stage=st.index, status="aborted", reason=f"cut off: {why}"))
        status, reason = self._end or ("complete", self._summary())
        self.emit(ev.StudyFinished(status=status, reason=reason))
        self.checkpoint()

    async def _setup_snapshot(self, base: TrialState) -> bool:
        """The tool's one-time preparation (e.g. synthesis); a failure blocks the study."""
        try:
            prov = await anyio.to_thread.run_sync(self.tool.setup)
        except TrialFailure as f:
            self.emit(ev.TrialStarted(case_id=base.case_id, attempt=base.attempt + 1))
            self.emit(ev.TrialFailed(case_id=base.case_id, failure=f.failure, resources={}))
            return False
        if prov:
            update_provenance(self.dir, {"snapshot": prov})
            cells = f", {prov['cells']} cells" if "cells" in prov else ""
            self.log("info", f"snapshot ready{cells}" + (" (cached)" if prov.get("cache_hit") else ""))
        return True

    def _summary(self) -> str:
        best = best_case(self.state)
        base = self.state.base()
        if best is None or base is None or not base.metrics:
            return ""
        return f"best {best.case_id}: wns_ps {best.metrics.get('wns_ps')} (base {base.metrics.get('wns_ps')})"

    async def _stage(self, i: int, deps: list[int], done: list[anyio.Event], stages: anyio.CancelScope) -> None:
        for d in deps:
            await done[d].wait()
        st = self.state.stages[i]
        try:
            if st.status in ("done", "aborted", "skipped"):
                return
            upstream = [self.state.stages[d] for d in deps]
            if any(u.status != "done" or not u.survivors for u in upstream):
                self.emit(ev.StageFinished(stage=i, status="skipped", reason="an upstream stage produced no survivors"))
                return
            if st.status == "pending":
                parents = list(dict.fromkeys(c for u in upstream for c in u.survivors)) or [self.state.base_case]
                ecos, decisions = containment.plan_ecos(self.spec, self.state, i, self.tool.implements(),
                                                        self.imported_priors)
                for d in decisions:
                    self.emit(d)
                self.emit(ev.StageStarted(stage=i, parents=parents, plan=plan_stage(self.spec, i, parents, ecos)))
            async with anyio.create_task_group() as tg:
                for t in self.state.stage_trials(i):
                    if t.status not in TERMINAL:
                        tg.start_soon(self._run_trial, t, st.mode)
            self._finish_stage(i, stages)
            self.checkpoint()
        finally:
            done[i].set()

    def _finish_stage(self, i: int, stages: anyio.CancelScope) -> None:
        st = self.state.stages[i]
        trials = self.state.stage_trials(i)
        ok = [t for t in trials if t.status == "done"]
        if not ok:
            kinds = Counter((t.failure or {}).get("type", "no_trials") for t in trials) or Counter(no_trials=1)
            why = ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items()))
            reason = f"every trial of stage {st.name} failed ({why})" if trials else f"stage {st.name} had no usable ECO"
            self.emit(ev.PolicyDecision(scope="stage", action="abort_stage", subject=st.name, reason=reason, stage=i))
            self.emit(ev.StageFinished(stage=i, status="aborted", reason=reason))
            self._stop_study("failed", reason, stages)
            return
        decisions = containment.after_stage(self.spec, self.state, i)
        for d in decisions:
            self.emit(d)
        actions = {d.action: d.reason for d in decisions}
        if "block_study" in actions:
            self.emit(ev.StageFinished(stage=i, status="aborted", reason=actions["block_study"]))
            self._stop_study("blocked", actions["block_study"], stages)
            return
        if "abort_stage" in actions:
            self.emit(ev.StageFinished(stage=i, status="aborted", reason=actions["abort_stage"]))
            self._stop_study("failed", f"stage {st.name} aborted: {actions['abort_stage']}", stages)
            return
        base = self.state.base()
        cands = [Candidate(t.case_id, t.metrics or {}, self.state.trials[t.parent].metrics if t.parent else None)
                 for t in ok]
        sel = select_survivors(cands, self.spec.ranking, st.survivor_count, base.metrics if base else None,
                               self.spec.rails.max_wns_regression_vs_parent_ps)
        self.emit(ev.SurvivorsChosen(stage=i, survivors=sel.survivors, ranking=sel.ranking,
                                     excluded=sel.excluded, front=sel.front))
        self.emit(ev.StageFinished(stage=i, status="done"))
        if "plateau" in actions:
            self._stop_study("complete", actions["plateau"], stages)

    def _stop_study(self, status: str, reason: str, stages: anyio.CancelScope) -> None:
        if self._end is None:
            self._end = (status, reason)
        stages.cancel()

    # --- one trial ------------------------------------------------------------------------
    async def _run_trial(self, t: TrialState, mode: str) -> None:
        """The limiter bounds running tools only: parsing outputs and the durable journal append
        happen after the slot is free, so the next tool starts at once."""
        while True:
            await self._unpause.wait()
            async with self.limiter:
                if not self._unpause.is_set():
                    continue
                ran = await self._run_tool(t, mode)
            if ran is None:
                return
            async with self.collectors:
                metrics, fail = await anyio.to_thread.run_sync(self._collect, *ran)
            if not await self._record(t, ran[0], ran[1], metrics, fail):
                return

    def _context(self, t: TrialState, mode: str) -> TrialContext:
        x = self.spec.execution
        parent = self.state.trials.get(t.parent) if t.parent else None
        return TrialContext(
            study_dir=self.dir, case_id=t.case_id, trial_dir=self.dir / "trials" / t.case_id,
            parent_dir=(self.dir / "trials" / t.parent) if t.parent else self.dir / "snapshot",
            parent_metrics=parent.metrics if parent else None, eco=t.eco, params=t.params, mode=mode,
            soft_timeout_s=x.soft_timeout_s, hard_timeout_s=x.hard_timeout_s or x.soft_timeout_s * 1.25 + 5,
            memory_limit_mb=x.memory_limit_mb)

    async def _run_tool(self, t: TrialState, mode: str) -> tuple[TrialContext, ExecResult] | None:
        """Prepare and run one attempt (one executor job: directory set-up rides with the tool, as
        metadata syscalls must not stall the loop).  None when the attempt ended here."""
        ctx = self._context(t, mode)
        self.emit(ev.TrialStarted(case_id=t.case_id, attempt=t.attempt + 1))
        result = None
        with anyio.CancelScope() as scope:
            self._trial_scopes[t.case_id] = scope
            try:
                result, _ = await self.executor.run(Job(partial(self._prepare, ctx), None, ctx.soft_timeout_s,
                                                        ctx.hard_timeout_s))
            except TrialFailure as f:
                await self._failed(t, f.failure, {}, retry=False)
                return None
            finally:
                self._trial_scopes.pop(t.case_id, None)
        if scope.cancelled_caught or result is None:
            self.emit(ev.TrialCancelled(case_id=t.case_id, reason="cancelled by operator"))
            await self.journal.sync()
            return None
        return ctx, result

    async def _record(self, t: TrialState, ctx: TrialContext, result: ExecResult, metrics: dict | None,
                      fail: dict | None) -> bool:
        """Journal the outcome durably.  True when a retry follows."""
        if fail is not None:
            retry = fail["type"] in RETRYABLE and t.attempt <= self.spec.execution.retries
            return await self._failed(t, fail, result.resources(), retry)
        self.emit(ev.TrialFinished(case_id=t.case_id, metrics=metrics, resources=result.resources(),
                                   artifacts=str(ctx.trial_dir.relative_to(self.dir))))
        await self.journal.sync()
        return False

    def _prepare(self, ctx: TrialContext) -> Command:
        """Executor side: a clean trial directory and the tool's inputs in it."""
        if ctx.trial_dir.exists():  # an attempt cut off earlier: start clean
            shutil.rmtree(ctx.trial_dir)
        ctx.trial_dir.mkdir(parents=True)
        cmd = self.tool.prepare(ctx)
        cmd.env = {**(cmd.env or os.environ), TRIAL_ENV: str(ctx.trial_dir)}
        return cmd

    def _collect(self, ctx: TrialContext, result: ExecResult) -> tuple[dict | None, dict | None]:
        """Worker thread: classify the run, parse the tool's outputs, seal the directory."""
        cmd = result.command
        assert cmd is not None
        fail = classify(result.outcome, lambda: tail(cmd.stderr) or tail(cmd.stdout))
        if fail is not None:
            return None, fail
        try:
            metrics = self.tool.collect(ctx, result)
        except TrialFailure as f:
            return None, f.failure
        except Exception as e:  # an adapter bug must not take the study down; say what it was
            return None, failure("parse_failure", f"adapter error: {type(e).__name__}: {e}")
        _read_only(ctx.trial_dir)
        return metrics, None

    async def _failed(self, t: TrialState, fail: dict, resources: dict, retry: bool) -> bool:
        self.emit(ev.TrialFailed(case_id=t.case_id, failure=fail, resources=resources, retry=retry))
        await self.journal.sync()
        return retry


LOGS = {"stdout.log", "stderr.log"}


def _read_only(tdir: Path) -> None:
    """A finished trial's artifacts are its children's inputs: make them read-only."""
    with os.scandir(tdir) as entries:
        for e in entries:
            if e.name not in LOGS and e.is_file(follow_symlinks=False):
                os.chmod(e.path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
