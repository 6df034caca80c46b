"""The engine: base-case gate, stages as a DAG, trials under a CapacityLimiter, one journal.

Everything the engine knows is in `self.state`, folded from the events it emits; resuming is
recovering that state from disk and carrying on from it.
"""
from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import stat
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

import anyio
import orjson
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict

from engine import events as ev
from engine.ecos import ROUTE_MODES
from engine.errors import EnvironmentFault, N2Error, env_fault, validation_reason
from engine.executors import (
    Command,
    ExecResult,
    Executor,
    Job,
    LocalExecutor,
    kill_marked,
)
from engine.executors.contain import MARKER
from engine.fsutil import NOFOLLOW, StudyLock, read_capped, refuse_symlink, remove_stale_tmp, sha256_file
from engine.journal import JOURNAL, JournalWriter, checkpoint_bytes, recover
from engine.metrics import ExtractError, check_metrics, extract_custom
from engine.policy import containment, priors, safety
from engine.policy.failures import RETRYABLE, classify, failure
from engine.policy.planning import plan_stage
from engine.policy.ranking import (
    Candidate,
    metrics_of,
    rank_agreement,
    select_survivors,
)
from engine.policy.trace import gate
from engine.reports import best_case, load_imported_priors, write_reports
from engine.spec import Study
from engine.state import TERMINAL, StudyState, TrialState, fold, from_snapshot
from engine.studydir import update_provenance
from engine.tools.base import ToolAdapter, TrialContext, TrialFailure, tail

Listener = Callable[[ev.Event, StudyState], None]
CONTROL_DIR = "control"
CONTROL_MAX_BYTES = 4096
CONTROL_QUIET_S = 1.0  # an unparsable request unchanged this long is refused; before that it may be half-written
DISK_MIN_FREE = 1 << 20  # a failed trial on a disk with less free space than this is the disk's fault
LOGS = {"stdout.log", "stderr.log"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# files the engine (re)writes in the study directory, always with atomic_write
WRITTEN_FILES = ("checkpoint.json", "provenance.json", "eco_leaderboard.json", "eco_leaderboard.md", "safety_trace.jsonl",
                 "safety_trace.md", "lineage.dot", "postroute.md")


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    request: Literal["pause", "resume", "stop", "cancel"]
    target: str = ""


@dataclass
class Collected:
    metrics: dict[str, Any] | None
    failure: dict[str, Any] | None
    outputs: dict[str, str]
    proof: dict[str, Any] | None = None  # equivalence with the parent, when checked here


class Engine:
    def __init__(self, study_dir: Path, study: Study, tool: ToolAdapter, *, executor: Executor | None = None,
                 listeners: list[Listener] | None = None, provenance: dict | None = None,
                 resume_command: str = "noodle2 resume", amendment: Any = None) -> None:
        self.dir = study_dir
        self.amendment = amendment  # studydir.Amendment: a corrected study file this resume takes
        if amendment is not None:
            study = amendment.study
        self.study = study
        self.spec = study.spec
        self.tool = tool
        self.max_parallel = self.spec.execution.max_parallel or usable_cpus()
        self.executor = executor or make_executor(study, study_dir, self.max_parallel)
        self.listeners = listeners or []
        self.provenance = provenance or {}
        self.state = StudyState()
        ahead = getattr(self.executor, "queue_ahead", lambda n: 0)(self.max_parallel)
        self.limiter = anyio.CapacityLimiter(self.max_parallel + ahead)  # running tools (and a cluster's queue)
        self.collectors = anyio.CapacityLimiter(self.max_parallel)  # output parsing, after the tool
        self.stop_reason: str | None = None
        self.fault: EnvironmentFault | None = None  # why the engine stopped, when the machine failed it
        self._work: anyio.CancelScope | None = None
        self._notes: anyio.abc.TaskGroup | None = None  # notifications in flight; the run waits for them
        self._stopping = anyio.Event()  # set by stop(): notifications stop retrying
        self._cluster_seen: tuple = ()
        self._trial_scopes: dict[str, anyio.CancelScope] = {}
        self._unpause = anyio.Event()
        self._unpause.set()
        self._end: tuple[str, str] | None = None  # (status, reason) when a stage ends the study early
        self._verified: dict[str, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, inode) hashed ok
        self.imported_priors = load_imported_priors(study)
        self.required = set(metrics_of(self.spec.ranking)) if getattr(tool, "reports_metrics", True) else set()
        self.resume_command = resume_command  # how this engine was started, for the hint a stop prints
        self.hold_signals_at_end = False  # block STOP_SIGNALS once the study has ended (the CLI's choice)

    # --- a remote executor's cluster ---------------------------------------------------------
    def _cluster_status(self, force: bool = False, got: dict[str, Any] | None = None) -> None:
        st = got if got is not None else self.executor.status()  # type: ignore[attr-defined]
        s = self.state
        planned = sum(1 for x in s.stages if x.status == "running" for c in x.cases if s.trials[c].status == "planned")
        running = min(s.in_flight(), round(st["cpus_busy"]))  # the rest wait in Ray's queue
        st = {**st, "running": running, "queued": planned + s.in_flight() - running}
        key = tuple(st[k] for k in ("nodes", "cpus", "cpus_busy", "running", "queued"))
        if force or key != self._cluster_seen:
            self._cluster_seen = key
            self.emit(ev.ClusterStatus(**st))

    async def _watch_cluster(self) -> None:
        """Every 2 s while the study runs: journaled only when something changed."""
        failing = False
        while True:
            await anyio.sleep(2.0)
            try:
                got = await anyio.to_thread.run_sync(self.executor.status)  # type: ignore[attr-defined]
            except Exception as e:  # noqa: BLE001 - a status call that fails is not the study's failure
                if not failing:  # once per outage, not every 2 s of it
                    self.log("warning", f"cluster status unavailable: {type(e).__name__}: {e}")
                failing = True
                continue
            failing = False
            self._cluster_status(got=got)

    # --- notifications ([notify]) ------------------------------------------------------------
    def _notify(self, trigger: str, detail: str = "") -> None:
        n = self.spec.notify
        if trigger not in n.on or (n.command is None and n.webhook is None) or self._notes is None:
            return
        self._notes.start_soon(self._send_notifications, trigger, detail)

    async def _send_notifications(self, trigger: str, detail: str) -> None:
        from engine import notify

        n, s = self.spec.notify, self.state
        report = None
        if n.report and trigger in ("complete", "failed", "blocked"):
            from engine import summary

            try:
                got = await anyio.to_thread.run_sync(summary.write, self.dir, s)
                report = str(Path(got["out"]) / "summary.html")
            except Exception as e:  # noqa: BLE001 - a report that cannot be written never stops a notification
                self.log("warning", f"report for the notification not written: {e}")
        best, base = best_case(s), s.base()
        done, total = s.counts()
        payload = {"study": s.name, "trigger": trigger, "status": s.status if trigger != "interrupted" else "interrupted",
                   "reason": detail or s.reason, "study_dir": str(self.dir), "report": report,
                   "trials": {"finished": done, "planned": total},
                   "best": {"case": best.case_id, "metrics": _numbers(best.metrics)} if best else None,
                   "base": {"case": base.case_id, "metrics": _numbers(base.metrics)} if base else None}

        def record(channel: str) -> Callable[[int, Any], None]:
            def put(attempt: int, got: Any) -> None:
                try:
                    self.emit(ev.NotificationSent(channel=channel, trigger=trigger, attempt=attempt, ok=got.ok,
                                                  detail=got.detail))
                except EnvironmentFault:
                    pass  # a full disk stops the study elsewhere; a notification never adds to it
            return put
        async with anyio.create_task_group() as tg:
            if n.webhook:
                tg.start_soon(notify.deliver, "webhook", partial(notify.post_async, n.webhook, payload, n.timeout_s),
                              n.retries, n.backoff_s, record("webhook"), self._stopping)
            if n.command:
                tg.start_soon(notify.deliver, "command", partial(notify.run_command, n.command, payload, n.timeout_s),
                              n.retries, n.backoff_s, record("command"), self._stopping)

    # --- events ---------------------------------------------------------------------------
    def emit(self, e: ev.Event) -> None:
        e.seq, e.t = self.state.seq + 1, time.time()
        self.journal.append(e)  # raises EnvironmentFault on a full disk; then nothing was folded
        fold(self.state, e)
        for cb in self.listeners:
            cb(e, self.state)
        if isinstance(e, ev.StageFinished) and e.status == "aborted":
            self._notify("stage_aborted", f"stage {self.state.stages[e.stage].name} aborted: {e.reason}")

    def log(self, level: str, msg: str, case_id: str | None = None) -> None:
        self.emit(ev.Log(level=level, msg=msg, case_id=case_id))

    async def checkpoint(self) -> None:
        """Snapshot bytes are taken on the loop (a consistent state); the file and the derived
        reports are written in a worker thread, so a 10k-trial study never stalls the loop."""
        self.journal.sync_now()
        data = checkpoint_bytes(self.state, self.journal.offset, self.journal.crc)
        await anyio.to_thread.run_sync(self._write_checkpoint, data)
        self.emit(ev.CheckpointWritten(upto_seq=self.state.seq))

    def _write_checkpoint(self, data: bytes) -> None:
        from engine.fsutil import atomic_write
        from engine.journal import CHECKPOINT

        atomic_write(self.dir / CHECKPOINT, data)
        write_reports(self.dir, self.spec, from_snapshot(orjson.loads(data)["state"]))

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self) -> str:
        """Run or resume to the end.  Returns the final status (complete/failed/blocked/interrupted)."""
        for sub in ("trials", CONTROL_DIR, "snapshot", "stages", JOURNAL):
            refuse_symlink(self.dir / sub)
        for name in WRITTEN_FILES:  # a symlink or a FIFO is replaced whole by atomic_write; a folder cannot be
            if (self.dir / name).is_dir() and not (self.dir / name).is_symlink():
                raise N2Error.one("N2-E210", f"{self.dir / name} is a folder where noodle2 writes a file",
                                  hint="move it out of the study directory")
        lock = StudyLock(self.dir)
        lock.acquire()
        try:
            remove_stale_tmp(self.dir)
            rec = recover(self.dir)
            self.state = rec.state
            self.journal = JournalWriter(self.dir / JOURNAL, rec.end, rec.crc)
            try:
                return await self._run(rec.warnings)
            finally:
                self.journal.close()
                self.executor.close()
        finally:
            lock.release()

    async def _run(self, warnings: list[str]) -> str:
        s = self.state
        if s.status in ("complete", "failed", "blocked"):
            raise N2Error.one("N2-E204", f"study {s.name} already ended ({s.status})")
        async with anyio.create_task_group() as guard:
            # before the first event, a signal is never lost; and it stays up while
            # notifications go out, so a stop then cuts them short too
            await guard.start(self._watch_signals)
            async with anyio.create_task_group() as self._notes:  # waits for notifications, each bounded
                status = await self._run_body(warnings)
                self._notify(status)
            if self.hold_signals_at_end:  # the caller takes them from here (a late signal keeps the exit code)
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            guard.cancel_scope.cancel()
        return status

    async def _run_body(self, warnings: list[str]) -> str:
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as self._work:
                    self._begin(warnings)
                    tg.start_soon(self._watch_control)
                    if hasattr(self.executor, "status"):
                        tg.start_soon(self._watch_cluster)
                    await self._main()
                tg.cancel_scope.cancel()
        except* EnvironmentFault as eg:  # task groups wrap what their tasks raise
            self._fault(_leaf(eg))
        if self.stop_reason is not None:
            with anyio.CancelScope(shield=True):
                try:
                    self.emit(ev.StudyInterrupted(reason=self.stop_reason,
                                                  resume=f"{self.resume_command} {shlex.quote(str(self.dir))}"))
                    await self.checkpoint()
                except EnvironmentFault as f:  # the disk is still full: the journal ends at its last whole line
                    self._fault(f)
            return "interrupted"
        return self.state.status

    def _begin(self, warnings: list[str]) -> None:
        s = self.state
        if s.status == "new":
            self.emit(ev.StudyStarted(
                name=self.spec.study.name, spec_hash=self.study.spec_hash(), spec=self.spec.model_dump(),
                base_case=self.spec.base_case, max_parallel=self.max_parallel,
                safety_domain=self.spec.study.safety_domain, provenance=self.provenance,
                stages=[{"name": st.name, "mode": st.mode, "trials": st.trials, "survivors": st.survivors,
                         "after": deps} for st, deps in zip(self.spec.stages, self.spec.stage_deps())]))
            self.emit(ev.GatesChecked(stage=None, gates=safety.legality_gates(self.spec)))
        else:
            requeued = sorted(t.case_id for t in s.running())
            self.emit(ev.StudyResumed(pid=os.getpid(), requeued=requeued))
            if self.amendment is not None:
                self._amend()
            # tools of the dead engine (synthesis included) may still run; they must not write into re-runs
            marks = {str(self.dir / "trials" / c) for c in requeued} | {str(self.dir / "snapshot")}
            pids = kill_marked(marks)
            if pids:
                self.log("warning", f"killed {len(pids)} orphaned tool process(es) of the previous engine")
        for w in warnings:
            self.log("warning", w)
        self.log("info", f"trial processes contained by {getattr(self.executor, 'containment', 'the executor')}")
        if hasattr(self.executor, "status"):
            self._cluster_status(force=True)

    def _amend(self) -> None:
        """The corrected study file becomes the study's own copy, and the journal says what changed."""
        from engine.fsutil import atomic_write
        from engine.studydir import INPUTS

        try:
            atomic_write(self.dir / INPUTS / "study.toml", self.amendment.source.encode("utf-8"))
            update_provenance(self.dir, {"spec_hash": self.study.spec_hash()})
        except OSError as e:
            raise env_fault(e, "taking the corrected study file") or e from None
        self.emit(ev.StudyAmended(changes=self.amendment.changes, spec_hash=self.study.spec_hash(),
                                  spec=self.spec.model_dump()))
        self.log("info", f"took the corrected study file: {'; '.join(self.amendment.changes)}")

    def stop(self, reason: str) -> None:
        self._stopping.set()
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._work is not None:
            self._work.cancel()

    def _fault(self, f: EnvironmentFault) -> None:
        if self.fault is None:
            self.fault = f
        self.stop(f"environment fault: {f.problem.code} {f}")

    async def _watch_signals(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as sigs:
            task_status.started()
            async for sig in sigs:
                self.stop(f"received {signal.Signals(sig).name}")

    async def _watch_control(self) -> None:
        """Requests arrive as files in <study>/control/; each gets a ControlAck in the journal.
        Only small regular files are read, in a worker thread: a FIFO, a symlink or a huge file
        is refused with a warning and never blocks the loop."""
        cdir = self.dir / CONTROL_DIR
        cdir.mkdir(exist_ok=True)
        born = time.time()
        inbox = ControlInbox(cdir)
        try:
            while True:
                for name, req, sent, why in await anyio.to_thread.run_sync(inbox.poll, time.time()):
                    if req is None:
                        self.log("warning", f"control file {name} refused: {why}")
                    elif sent < born - 1.0:  # meant for an engine that is gone; a stale stop must not fire
                        self.emit(ev.ControlAck(request=req.request, target=req.target, accepted=False,
                                                detail="expired: sent before this engine started"))
                    else:
                        self._control(req.request, req.target)
                await anyio.sleep(0.1)
        except EnvironmentFault as f:
            self._fault(f)

    def _control(self, request: str, target: str) -> None:
        ok, detail = True, ""
        if request == "pause":
            if self._unpause.is_set():  # a second pause keeps the Event the waiting trials hold
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
        self.emit(ev.ControlAck(request=request, target=target, accepted=ok, detail=detail))
        if request == "stop":
            self.stop("operator requested stop")

    # --- the study ------------------------------------------------------------------------
    async def _main(self) -> None:
        base = self.state.base()
        assert base is not None
        if base.status not in TERMINAL and await self._setup_snapshot(base):
            await self._run_trial(base, mode=self.spec.stages[0].mode)
        if self.stop_reason is not None:
            return
        if base.status != "done":
            f = base.failure or {}
            reason = f"base case {base.case_id} failed its no-op run: {f.get('type')}: {f.get('reason')}"
            self.emit(ev.GatesChecked(stage=None, gates=[gate("base_case", base.case_id, False,
                                                              {"failure": f.get("type")})]))
            self.emit(ev.PolicyDecision(scope="study", action="block_study", subject=base.case_id, reason=reason))
            self.emit(ev.StudyFinished(status="blocked", reason=reason))
            await self.checkpoint()
            return
        if not any(g["gate"] == "base_case" for g in self.state.gates):
            self.emit(ev.GatesChecked(stage=None, gates=[gate("base_case", base.case_id, True,
                                                              {"wns_ps": (base.metrics or {}).get("wns_ps")})]))
        deps = self.spec.stage_deps()
        done = [anyio.Event() for _ in self.spec.stages]
        async with anyio.create_task_group() as tg:
            for i in range(len(self.spec.stages)):
                tg.start_soon(self._stage, i, deps[i], done, tg.cancel_scope)
        if self.stop_reason is not None:
            return
        why = self._end[1] if self._end else ""
        for st in self.state.stages:  # stages an early end never reached, or cut off in a branch
            if st.status == "pending":
                self.emit(ev.StageFinished(stage=st.index, status="skipped", reason=why))
            elif st.status == "running":
                self.emit(ev.StageFinished(stage=st.index, status="aborted", reason=f"cut off: {why}"))
        effects = priors.effectiveness(self.state, self.state.trials.values(), self.spec.priors, self.imported_priors,
                                       self.spec.ranking)
        self.emit(ev.EcoStats(stage=None, rows=priors.leaderboard(effects)))
        status, reason = self._end or ("complete", self._summary())
        self.emit(ev.StudyFinished(status=status, reason=reason))
        await self.checkpoint()

    async def _setup_snapshot(self, base: TrialState) -> bool:
        """The tool's one-time preparation (e.g. synthesis); a failure blocks the study.  The
        files every trial reads are hashed and journaled, and checked again before use."""
        if self.state.inputs:
            return True
        try:
            prov = await anyio.to_thread.run_sync(self.tool.setup)
            files = await anyio.to_thread.run_sync(self._hash_snapshot)
        except TrialFailure as f:
            self.emit(ev.TrialStarted(case_id=base.case_id, attempt=base.attempt + 1))
            self.emit(ev.TrialFailed(case_id=base.case_id, failure=f.failure, resources={}))
            return False
        except OSError as e:
            raise env_fault(e, "preparing the snapshot") or e from None
        if prov:
            await anyio.to_thread.run_sync(update_provenance, self.dir, {"snapshot": prov})
        info = {k: prov[k] for k in ("cells", "cache_hit", "snapshot_hash") if k in prov} if prov else {}
        self.emit(ev.SnapshotReady(files=files, info=info))
        if prov:
            cells = f", {prov['cells']} cells" if "cells" in prov else ""
            self.log("info", f"snapshot ready{cells}" + (" (cached)" if prov.get("cache_hit") else ""))
        return True

    def _hash_snapshot(self) -> dict[str, str]:
        out = {str(p.relative_to(self.dir)): sha256_file(p) for p in sorted(self.tool.snapshot_files())}
        return out or {"(none)": ""}

    def _summary(self) -> str:
        best = best_case(self.state)
        base = self.state.base()
        if best is None or base is None or not base.metrics:
            return ""
        w, w0 = best.metrics.get("wns_ps"), base.metrics.get("wns_ps")
        if not isinstance(w, (int, float)) or not isinstance(w0, (int, float)):
            return f"best {best.case_id}"
        pre = best.metrics.get("pre_wns_ps")
        if isinstance(pre, (int, float)):  # routed: the base was timed before routing only
            return (f"best {best.case_id}: post-route WNS {w / 1000:+.3f} ns (pre-route {pre / 1000:+.3f} ns; "
                    f"base pre-route {w0 / 1000:+.3f} ns)")
        return f"best {best.case_id}: WNS {w / 1000:+.3f} ns (base {w0 / 1000:+.3f} ns)"

    async def _stage(self, i: int, deps: list[int], done: list[anyio.Event], stages: anyio.CancelScope) -> None:
        try:
            for d in deps:
                await done[d].wait()
            if self.stop_reason is None:
                await self._stage_body(i, deps, stages)
        except* EnvironmentFault as eg:
            self._fault(_leaf(eg))
        finally:
            done[i].set()

    async def _stage_body(self, i: int, deps: list[int], stages: anyio.CancelScope) -> None:
        st = self.state.stages[i]
        if st.status in ("done", "aborted", "skipped"):
            return
        upstream = [self.state.stages[d] for d in deps]
        if any(u.status != "done" or not u.survivors for u in upstream):
            self.emit(ev.StageFinished(stage=i, status="skipped", reason="an upstream stage produced no survivors"))
            return
        if st.status == "pending":
            parents = list(dict.fromkeys(c for u in upstream for c in u.survivors)) or [self.state.base_case]
            ecos, decisions, gates, effects = containment.plan_ecos(self.spec, self.state, i, self.tool.implements(),
                                                                    self.imported_priors)
            self.emit(ev.EcoStats(stage=i, rows=priors.leaderboard(effects)))
            self.emit(ev.GatesChecked(stage=i, gates=gates))
            for d in decisions:
                self.emit(d)
            plan = await anyio.to_thread.run_sync(plan_stage, self.spec, i, parents, ecos)  # pure; 0.1 s at 10k
            self.emit(ev.StageStarted(stage=i, parents=parents, plan=plan))
        todo = iter([t for t in self.state.stage_trials(i) if t.status not in TERMINAL])

        async def worker() -> None:
            for t in todo:  # one shared iterator: each trial is taken once, in plan order
                await self._run_trial(t, st.mode)

        # More workers than tool slots: some collect results and wait on the journal fsync while
        # others run tools, and completions share one fsync (group commit).  A task
        # per trial would make a 10,000-trial stage one 0.7 s step of the event loop.
        async with anyio.create_task_group() as tg:
            for _ in range(min(len(st.cases), 4 * self.max_parallel + 4)):
                tg.start_soon(worker)
        if self.stop_reason is not None or self._end is not None:
            return  # a stop leaves the stage as it is, to be finished on resume
        await self._finish_stage(i, stages)
        await self.checkpoint()

    async def _finish_stage(self, i: int, stages: anyio.CancelScope) -> None:
        st = self.state.stages[i]
        trials = self.state.stage_trials(i)
        ok = [t for t in trials if t.status == "done"]
        decisions, gates = containment.after_stage(self.spec, self.state, i)
        self.emit(ev.GatesChecked(stage=i, gates=gates))
        if not ok:
            kinds = Counter((t.failure or {}).get("type", "no_trials") for t in trials) or Counter(no_trials=1)
            why = ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items()))
            reason = f"every trial of stage {st.name} failed ({why})" if trials else f"stage {st.name} had no usable ECO"
            self.emit(ev.PolicyDecision(scope="stage", action="abort_stage", subject=st.name, reason=reason, stage=i))
            self.emit(ev.StageFinished(stage=i, status="aborted", reason=reason))
            self._stop_study("failed", reason, stages)
            return
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
        cands = [Candidate(t.case_id, t.metrics or {}, self.state.trials[t.parent].metrics if t.parent else None,
                           _key(t)) for t in ok]
        if self.spec.stages[i].keep_parents:  # the parents compete too: a stage never loses ground
            cands += [Candidate(p, self.state.trials[p].metrics or {}, None, _key(self.state.trials[p]))
                      for p in st.parents if self.state.trials[p].status == "done"]
        select = partial(select_survivors, r=self.spec.ranking, count=st.survivor_count,
                         base=base.metrics if base else None,
                         max_wns_regression_ps=self.spec.rails.max_wns_regression_vs_parent_ps, stage=i,
                         limits=rail_limits(self.spec.rails))
        sel = await anyio.to_thread.run_sync(select, cands)
        if self.spec.verify.equivalence != "off":
            sel = await self._prove_survivors(i, sel, cands, select)
        if sel.gates:
            self.emit(ev.GatesChecked(stage=i, gates=sel.gates))
        if st.mode in ROUTE_MODES and (agree := rank_agreement(cands, sel.ranking, self.spec.ranking,
                                                                base.metrics if base else None)):
            self.emit(ev.RankAgreement(stage=i, **agree))
        self.emit(ev.SurvivorsChosen(stage=i, survivors=sel.survivors, ranking=sel.ranking,
                                     excluded=sel.excluded, front=sel.front))
        self.emit(ev.StageFinished(stage=i, status="done"))
        if "plateau" in actions:
            self._stop_study("complete", actions["plateau"], stages)

    async def _prove_survivors(self, stage: int, sel: Any, cands: list[Candidate], select: Callable) -> Any:
        """No survivor is promoted unproven: prove each against its parent (in parallel); one
        that is not equivalent fails as not_equivalent and the stage ranks again without it."""
        while True:
            mine = set(self.state.stages[stage].cases)  # a kept parent was proven in its own stage
            todo = [c for c in sel.survivors if c in mine and self.state.trials[c].proof is None]
            if not todo:
                return sel
            proofs: dict[str, dict | None] = {}

            async def one(case: str) -> None:
                t = self.state.trials[case]
                async with self.collectors:
                    proofs[case] = await anyio.to_thread.run_sync(
                        self.tool.prove, self.dir / "trials" / case, self.dir / "trials" / (t.parent or ""))

            async with anyio.create_task_group() as tg:
                for c in todo:
                    tg.start_soon(one, c)
            if any(p is None for p in proofs.values()):
                return sel  # the tool has nothing to prove (no netlist)
            for c in todo:  # journal in ranking order, whatever order the proofs finished in
                self._emit_proof(c, self.state.trials[c].parent or "", proofs[c])  # type: ignore[arg-type]
                self.emit(ev.GatesChecked(stage=stage, gates=[gate("equivalence", c, proofs[c]["proven"],
                                                                   {"method": proofs[c]["method"],
                                                                    "seconds": proofs[c]["seconds"]}, stage)]))
                if not proofs[c]["proven"]:
                    self.emit(ev.TrialFailed(case_id=c, resources=self.state.trials[c].resources or {}, failure=failure(
                        "not_equivalent", f"not proven equivalent to its parent: {proofs[c]['detail']}",
                        _cex(self.dir / "trials" / c))))
            if all(proofs[c]["proven"] for c in todo):
                return sel
            await self.journal.sync()
            cands = [c for c in cands if self.state.trials[c.case_id].status == "done"]
            sel = await anyio.to_thread.run_sync(select, cands)

    def _emit_proof(self, case: str, parent: str, p: dict) -> None:
        self.emit(ev.EquivalenceChecked(case_id=case, against=parent, proven=p["proven"], method=p["method"],
                                        seconds=p["seconds"], detail=p["detail"]))

    def _stop_study(self, status: str, reason: str, stages: anyio.CancelScope) -> None:
        if self._end is None:
            self._end = (status, reason)
        stages.cancel()

    # --- one trial ------------------------------------------------------------------------
    async def _run_trial(self, t: TrialState, mode: str) -> None:
        """The limiter bounds running tools only: parsing outputs and the durable journal append
        happen after the slot is free, so the next tool starts at once."""
        try:
            while self.stop_reason is None:
                await self._unpause.wait()
                async with self.limiter:
                    if not self._unpause.is_set():
                        continue
                    ran = await self._run_tool(t, mode)
                if ran is None:
                    return
                self.emit(ev.TrialToolExited(case_id=t.case_id))
                async with self.collectors:
                    got = await anyio.to_thread.run_sync(self._collect, *ran)
                if not await self._record(t, ran[0], ran[1], got):
                    return
        except EnvironmentFault as f:
            self._fault(f)  # the trial stays in flight in the journal: it runs again on resume

    def _context(self, t: TrialState, mode: str) -> TrialContext:
        x = self.spec.execution
        parent = self.state.trials.get(t.parent) if t.parent else None
        parent_dir = (self.dir / "trials" / t.parent) if t.parent else self.dir / "snapshot"
        expect = {str(self.dir / rel): h for rel, h in self.state.inputs.items() if h}
        if parent is not None:
            expect.update({str(parent_dir / rel): h for rel, h in parent.outputs.items()})
        return TrialContext(
            study_dir=self.dir, case_id=t.case_id, trial_dir=self.dir / "trials" / t.case_id,
            parent_dir=parent_dir, parent_metrics=parent.metrics if parent else None, eco=t.eco, params=t.params,
            mode=mode, soft_timeout_s=x.soft_timeout_s, hard_timeout_s=x.hard_timeout_s or x.soft_timeout_s * 1.25 + 5,
            memory_limit_mb=x.memory_limit_mb, expect=expect, attempt=t.attempt + 1)

    async def _run_tool(self, t: TrialState, mode: str) -> tuple[TrialContext, ExecResult] | None:
        """Prepare and run one attempt (one executor job: directory set-up rides with the tool, as
        metadata syscalls must not stall the loop).  None when the attempt ended here."""
        ctx = self._context(t, mode)
        self.emit(ev.TrialStarted(case_id=t.case_id, attempt=t.attempt + 1))
        result = None
        with anyio.CancelScope() as scope:
            self._trial_scopes[t.case_id] = scope
            try:
                reads = getattr(self.tool, "reads", lambda c: [])(ctx)
                result, _ = await self.executor.run(Job(partial(self._prepare, ctx), None, ctx.soft_timeout_s,
                                                        ctx.hard_timeout_s, inputs=sorted(ctx.expect) + list(map(str, reads))))
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

    async def _record(self, t: TrialState, ctx: TrialContext, result: ExecResult, got: Collected) -> bool:
        """Journal the outcome durably.  True when a retry follows."""
        if got.proof is not None:
            self._emit_proof(t.case_id, t.parent or "", got.proof)
        if got.failure is not None:
            retry = got.failure["type"] in RETRYABLE and t.attempt <= self.spec.execution.retries
            return await self._failed(t, got.failure, result.resources(), retry)
        self.emit(ev.TrialFinished(case_id=t.case_id, metrics=got.metrics or {}, resources=result.resources(),
                                   artifacts=str(ctx.trial_dir.relative_to(self.dir)), outputs=got.outputs))
        await self.journal.sync()
        return False

    def _prepare(self, ctx: TrialContext) -> Command:
        """Executor side: the inputs checked, a clean trial directory, the tool's inputs in it."""
        try:
            self._verify(ctx.expect)
            _clean_dir(ctx.trial_dir)
            cmd = self.tool.prepare(ctx)
        except OSError as e:
            raise env_fault(e, f"preparing {ctx.case_id}") or e from None
        cmd.env = {**(cmd.env or os.environ), MARKER: str(ctx.trial_dir)}
        cmd.contain_key = f"{ctx.case_id}.{ctx.attempt}"
        cmd.log_cap_bytes = self.spec.execution.max_log_mb << 20
        return cmd

    def _verify(self, expect: dict[str, str]) -> None:
        """Files a trial reads must be the ones the journal recorded: a changed or missing input
        stops the study (N2-E209) instead of being charged to the trial's ECO."""
        for path, h in expect.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise EnvironmentFault("N2-E209", f"input {path} is missing") from None
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            if self._verified.get(path) == key:
                continue
            try:
                same = sha256_file(Path(path)) == h
            except ValueError as e:
                raise EnvironmentFault("N2-E209", f"input {path} {e}") from None
            if not same:
                raise EnvironmentFault("N2-E209", f"input {path} changed since it was recorded (sha256 differs)")
            self._verified[path] = key

    def _collect(self, ctx: TrialContext, result: ExecResult) -> Collected:
        """Worker thread: classify the run, parse and validate the tool's outputs, seal the
        directory.  A failure on a full disk is the disk's, not the ECO's."""
        cmd = result.command
        assert cmd is not None
        fail = classify(result.outcome, lambda: tail(cmd.stderr) or tail(cmd.stdout))
        if fail is None:
            try:
                metrics = self.tool.collect(ctx, result)
                if self.spec.custom.metrics:
                    try:
                        metrics = {**metrics, **extract_custom(self.spec.custom.metrics, ctx.trial_dir)}
                    except ExtractError as e:
                        raise TrialFailure("parse_failure", str(e)) from None
                if (why := check_metrics(metrics, self.required)) is not None:
                    raise TrialFailure("parse_failure", f"the tool's metrics are not usable: {why}")
                outputs = {rel: sha256_file(ctx.trial_dir / rel) for rel in self.tool.outputs(ctx)}
                _read_only(ctx.trial_dir)
                proof = None
                if self.spec.verify.equivalence == "all" and ctx.case_id != self.state.base_case:
                    proof = self.tool.prove(ctx.trial_dir, ctx.parent_dir)
                    if proof is not None and not proof["proven"]:
                        return Collected(None, failure("not_equivalent", f"not proven equivalent to its parent: "
                                                       f"{proof['detail']}", _cex(ctx.trial_dir)), {}, proof)
                return Collected(metrics, None, outputs, proof)
            except TrialFailure as f:
                fail = f.failure
            except OSError as e:
                if (fault := env_fault(e, f"collecting {ctx.case_id}")) is not None:
                    raise fault from None
                fail = failure("parse_failure", f"cannot read the tool's outputs: {e}")
            except Exception as e:  # an adapter bug must not take the study down; say what it was
                fail = failure("parse_failure", f"adapter error: {type(e).__name__}: {e}")
        if fail["type"] != "cancelled" and (_disk_nearly_full(ctx.trial_dir)
                                            or "No space left on device" in fail.get("excerpt", "")):
            raise EnvironmentFault("N2-E208", f"no space left on the study's disk: {ctx.case_id} failed "
                                   f"({fail['type']}: {fail['reason'][:120]}) on a full disk")
        return Collected(None, fail, {})

    async def _failed(self, t: TrialState, fail: dict, resources: dict, retry: bool) -> bool:
        self.emit(ev.TrialFailed(case_id=t.case_id, failure=fail, resources=resources, retry=retry))
        await self.journal.sync()
        return retry


def _leaf(eg: BaseExceptionGroup) -> EnvironmentFault:
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    assert isinstance(e, EnvironmentFault)
    return e


class ControlInbox:
    """<study>/control/, read in a worker thread: every *.json entry becomes a request or a
    refusal and is removed.  The folder is opened without following a symlink and its entries
    are read and removed through that handle, so a control/ swapped for a link never reaches
    the link's target.  An empty or half-written request (a writer that creates the file, then
    fills it) is read again until it has not been modified for `quiet_s`."""

    def __init__(self, cdir: Path, quiet_s: float = CONTROL_QUIET_S) -> None:
        self.dir = cdir
        self.quiet_s = quiet_s
        self.stuck: set[str] = set()  # entries that could not be removed: read once, never again
        self.refused_dir = False

    def poll(self, now: float) -> list[tuple[str, ControlRequest | None, float, str]]:
        try:
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR) and not self.refused_dir:
                self.refused_dir = True
                return [(CONTROL_DIR, None, now, "is a symlink or not a folder; control requests are ignored "
                                                 "until it is a folder again")]
            return []
        self.refused_dir = False
        try:
            names = sorted(n for n in os.listdir(dfd) if n.endswith(".json") and n not in self.stuck)
            return [got for name in names if (got := self._one(dfd, name, now)) is not None]
        finally:
            os.close(dfd)

    def _one(self, dfd: int, name: str, now: float) -> tuple[str, ControlRequest | None, float, str] | None:
        req, why, sent = None, "", now
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            sent = st.st_mtime
            data = read_capped(name, CONTROL_MAX_BYTES, dir_fd=dfd)
            try:
                raw = orjson.loads(data)
            except orjson.JSONDecodeError:
                if abs(now - st.st_mtime) < self.quiet_s:  # may still be being written (abs: a skewed clock)
                    return None
                raise
            req = ControlRequest.model_validate(raw)
        except FileNotFoundError:
            return None
        except ValueError as e:  # JSONDecodeError and ValidationError are ValueErrors
            why = f"not a control request ({validation_reason(e)})"
        except OSError as e:
            why = e.strerror or str(e)
        try:
            os.unlink(name, dir_fd=dfd)  # the entry itself: a symlink is removed, never followed
        except FileNotFoundError:
            pass
        except OSError as e:
            self.stuck.add(name)
            req, why = None, f"cannot be removed ({e.strerror}); ignored from now on"
        return name, req, sent, why


def make_executor(study: Study, study_dir: Path, max_parallel: int) -> Executor:
    x = study.spec.execution
    if x.executor == "ray":
        from engine.executors.ray_exec import RayExecutor

        try:
            return RayExecutor(study_dir, x.address, x.shared_dir)
        except Exception as e:  # noqa: BLE001 - Ray's connection errors: the cluster, not the study
            raise N2Error.one("N2-E211", f"cannot reach the Ray cluster at {x.address}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}", "execution.address") from None
    return LocalExecutor(max_parallel)


def _numbers(m: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (m or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def rail_limits(r: Any) -> dict[str, tuple[float | None, float | None]]:
    """[rails] max/min as metric -> (min, max)."""
    return {m: (r.min.get(m), r.max.get(m)) for m in sorted(set(r.max) | set(r.min))}


def _key(t: TrialState) -> str:
    """What a trial produced, for telling equal designs apart: the hash of its outputs."""
    return ",".join(f"{k}={v}" for k, v in sorted(t.outputs.items()))


def _cex(trial_dir: Path) -> str:
    """The counterexample a failed proof left, for the failure's excerpt."""
    try:
        return (trial_dir / "equiv" / "counterexample.txt").read_text(errors="replace")[:1200]
    except OSError:
        return ""


def _clean_dir(tdir: Path) -> None:
    """An attempt starts in an empty directory of its own; a symlink there is removed, not followed."""
    try:
        st = os.lstat(tdir)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(tdir)
        else:
            tdir.unlink()
    tdir.mkdir(parents=True)


def _disk_nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < DISK_MIN_FREE


def _read_only(tdir: Path) -> None:
    """A finished trial's artifacts are its children's inputs: make them read-only."""
    with os.scandir(tdir) as entries:
        for e in entries:
            if e.name not in LOGS and e.is_file(follow_symlinks=False):
                os.chmod(e.path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
