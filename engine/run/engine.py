"""The engine: a coordinator over parts with one job each.

    Engine ── emits every event: journal (durable) → fold into state → listeners
      ├─ Controls        signals, control files, the pause gate, cancel scopes     (control.py)
      ├─ StageScheduler  stages as a DAG: plan, run, rank, finish                  (stages.py)
      │    ├─ TrialRunner   one trial through the executor and the tool adapter     (trials.py)
      │    └─ Prover        survivors proven equivalent to their parents          (proofs.py)
      ├─ Notifier        [notify] commands and webhooks                            (notify.py)
      └─ ClusterWatch    a remote executor's cluster status                        (cluster.py)

Everything the engine knows is in `self.state`, folded from the events it emits; resuming is
recovering that state from disk and carrying on from it.
"""
from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any, Callable

import anyio

from noodle2.engine.errors import EnvironmentFault, N2Error, env_fault
from noodle2.engine.executors.base import Executor
from noodle2.engine.executors.cgroupfs import usable_cpus
from noodle2.engine.executors.contain import kill_marked
from noodle2.engine.executors.local import LocalExecutor
from noodle2.engine.executors.warm import WORKER_MARK, WarmLimits
from noodle2.engine.fsutil import StudyLock, atomic_write, refuse_symlink, remove_stale_tmp
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import TERMINAL, StudyState, detached, fold
from noodle2.engine.journal.store import JOURNAL, JournalWriter, freeze_loaded, recover, thaw, write_checkpoint
from noodle2.engine.policy import priors, safety
from noodle2.engine.policy.trace import gate
from noodle2.engine.reports.files import write_reports
from noodle2.engine.reports.status import final_summary
from noodle2.engine.run import snapshot
from noodle2.engine.run.cluster import ClusterWatch
from noodle2.engine.run.control import CONTROL_DIR, STOP_SIGNALS, Controls
from noodle2.engine.run.isolation import WRITTEN_FILES
from noodle2.engine.run.notify import Notifier
from noodle2.engine.run.proofs import Prover
from noodle2.engine.run.stages import StageScheduler, leaf_fault
from noodle2.engine.run.studydir import INPUTS, update_provenance
from noodle2.engine.run.trials import Slots, TrialRunner
from noodle2.engine.study.imports import load_imported_priors
from noodle2.engine.study.models import Study
from noodle2.engine.tools.base import ToolAdapter

Listener = Callable[[ev.Event, StudyState], None]


class Engine:
    def __init__(self, study_dir: Path, study: Study, tool: ToolAdapter, *, executor: Executor | None = None,
                 listeners: list[Listener] | None = None, provenance: dict | None = None,
                 resume_command: str = "noodle2 resume", amendment: Any = None) -> None:
        self.dir = study_dir
        self.amendment = amendment  # studydir.Amendment: a corrected study file this resume takes
        self.study = amendment.study if amendment is not None else study
        self.spec = self.study.spec
        self.tool = tool
        self.max_parallel = self.spec.execution.max_parallel or usable_cpus()
        self.executor = executor or make_executor(self.study, study_dir, self.max_parallel)
        self.listeners = listeners or []
        self.provenance = provenance or {}
        self.resume_command = resume_command  # how this engine was started, for the hint a stop prints
        self.hold_signals_at_end = False  # block STOP_SIGNALS once the study has ended (the CLI's choice)
        self.state = StudyState()
        self.stop_reason: str | None = None
        self.fault: EnvironmentFault | None = None  # why the engine stopped, when the machine failed it
        self._work: anyio.CancelScope | None = None
        self._checkpoint_lock = anyio.Lock()

        ahead = getattr(self.executor, "queue_ahead", lambda n: 0)(self.max_parallel)
        slots = Slots(anyio.CapacityLimiter(self.max_parallel + ahead), anyio.CapacityLimiter(self.max_parallel))
        self.imported_priors = load_imported_priors(self.study)
        self.controls = Controls(self)
        self.notifier = Notifier(self)
        self.prover = Prover(self, slots.collectors)
        self.trials = TrialRunner(self, self.executor, self.controls, slots, self.prover,
                                  getattr(tool, "reports_metrics", True))
        self.stages = StageScheduler(self, self.trials, self.prover, self.imported_priors, self.max_parallel)
        status = getattr(self.executor, "status", None)
        self.cluster = ClusterWatch(self, status) if status is not None else None

    # --- events: the one way state changes ----------------------------------------------------
    def emit(self, e: ev.Event) -> None:
        e.seq, e.t = self.state.seq + 1, time.time()
        self.journal.append(e)  # raises EnvironmentFault on a full disk; then nothing was folded
        fold(self.state, e)
        for cb in self.listeners:
            cb(e, self.state)
        if isinstance(e, ev.StageFinished) and e.status == "aborted":
            self.notifier.send("stage_aborted", f"stage {self.state.stages[e.stage].name} aborted: {e.reason}")

    def log(self, level: str, msg: str, case_id: str | None = None) -> None:
        self.emit(ev.Log(level=level, msg=msg, case_id=case_id))

    async def sync(self) -> None:
        await self.journal.sync()

    def sync_soon(self) -> None:
        """Group commit behind the trials: a power cut loses at most the outcomes of one fsync's
        window, and those trials run again on resume; a kill -9 loses nothing (the bytes are in
        the OS's cache).  Stage ends and checkpoints sync before they act."""
        self.journal.sync_soon()

    async def checkpoint(self) -> None:
        """A detached copy of the state is taken on the loop, with the journal's length and CRC
        (consistent); the checkpoint and the derived reports are written from it in a worker
        thread (at 100k trials: 0.25 s on the loop, where serialising there took 0.37 s)."""
        self.journal.sync_now()
        view, offset, crc = detached(self.state), self.journal.offset, self.journal.crc
        async with self._checkpoint_lock:  # branches end together: the newer snapshot is written last
            await anyio.to_thread.run_sync(self._write_checkpoint, view, offset, crc)
        self.emit(ev.CheckpointWritten(upto_seq=view.seq))

    def _write_checkpoint(self, view: StudyState, offset: int, crc: int) -> None:
        write_checkpoint(self.dir, view, offset, crc)
        write_reports(self.dir, self.spec, view)

    # --- stopping ---------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        self.notifier.stopping.set()
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._work is not None:
            self._work.cancel()

    def machine_fault(self, f: EnvironmentFault) -> None:
        if self.fault is None:
            self.fault = f
        self.stop(f"environment fault: {f.problem.code} {f}")

    # --- lifecycle --------------------------------------------------------------------------
    async def run(self) -> str:
        """Run or resume to the end.  Returns the final status (complete/failed/blocked/interrupted)."""
        self._refuse_replaced_paths()
        lock = StudyLock(self.dir)
        lock.acquire()
        try:
            remove_stale_tmp(self.dir)
            rec = recover(self.dir)
            self.state = rec.state
            freeze_loaded()
            self.journal = JournalWriter(self.dir / JOURNAL, rec.end, rec.crc)
            try:
                return await self._run(rec.warnings)
            finally:
                self.journal.close()
                self.executor.close()
        finally:
            thaw()
            lock.release()

    def _refuse_replaced_paths(self) -> None:
        for sub in ("trials", CONTROL_DIR, "snapshot", "stages", JOURNAL):
            refuse_symlink(self.dir / sub)
        for name in WRITTEN_FILES:  # a symlink or a FIFO is replaced whole by atomic_write; a folder cannot be
            if (self.dir / name).is_dir() and not (self.dir / name).is_symlink():
                raise N2Error.one("N2-E210", f"{self.dir / name} is a folder where noodle2 writes a file",
                                  hint="move it out of the study directory")

    async def _run(self, warnings: list[str]) -> str:
        if self.state.status in ("complete", "failed", "blocked"):
            raise N2Error.one("N2-E204", f"study {self.state.name} already ended ({self.state.status})")
        async with anyio.create_task_group() as guard:
            # before the first event, a signal is never lost; and it stays up while
            # notifications go out, so a stop then cuts them short too
            await guard.start(self.controls.watch_signals)
            async with self.notifier.open():  # waits for notifications, each bounded
                status = await self._run_body(warnings)
                self.notifier.send(status)
            if self.hold_signals_at_end:  # the caller takes them from here (a late signal keeps the exit code)
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            guard.cancel_scope.cancel()
        return status

    async def _run_body(self, warnings: list[str]) -> str:
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as self._work:
                    self._begin(warnings)
                    tg.start_soon(self.controls.watch_inbox)
                    if self.cluster is not None:
                        tg.start_soon(self.cluster.watch)
                    await self._main()
                tg.cancel_scope.cancel()
        except* EnvironmentFault as eg:  # task groups wrap what their tasks raise
            self.machine_fault(leaf_fault(eg))
        if self.stop_reason is not None:
            with anyio.CancelScope(shield=True):
                try:
                    self.emit(ev.StudyInterrupted(reason=self.stop_reason,
                                                  resume=f"{self.resume_command} {shlex.quote(str(self.dir))}"))
                    await self.checkpoint()
                except EnvironmentFault as f:  # the disk is still full: the journal ends at its last whole line
                    self.machine_fault(f)
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
            if pids := kill_marked(marks, prefixes=(f"{self.dir / 'trials'}/{WORKER_MARK}",)):
                self.log("warning", f"killed {len(pids)} orphaned tool process(es) of the previous engine")
        for w in warnings:
            self.log("warning", w)
        self.log("info", f"trial processes contained by {getattr(self.executor, 'containment', 'the executor')}")
        if self.cluster is not None:
            self.cluster.record(self.executor.status(), force=True)  # type: ignore[attr-defined]

    def _amend(self) -> None:
        """The corrected study file becomes the study's own copy, and the journal says what changed."""
        try:
            atomic_write(self.dir / INPUTS / "study.toml", self.amendment.source.encode("utf-8"))
            update_provenance(self.dir, {"spec_hash": self.study.spec_hash()})
        except OSError as e:
            raise env_fault(e, "taking the corrected study file") or e from None
        self.emit(ev.StudyAmended(changes=self.amendment.changes, spec_hash=self.study.spec_hash(),
                                  spec=self.spec.model_dump()))
        self.log("info", f"took the corrected study file: {'; '.join(self.amendment.changes)}")

    # --- the study --------------------------------------------------------------------------
    async def _main(self) -> None:
        base = self.state.base()
        assert base is not None
        if base.status not in TERMINAL and await snapshot.prepare(self, base):
            await self.trials.run(base, mode=self.spec.stages[0].mode)
        if self.stop_reason is not None:
            return
        if base.status != "done":
            return await self._block_on_base()
        if not any(g["gate"] == "base_case" for g in self.state.gates):
            self.emit(ev.GatesChecked(stage=None, gates=[gate("base_case", base.case_id, True,
                                                              {"wns_ps": (base.metrics or {}).get("wns_ps")})]))
        await self.stages.run_all()
        if self.stop_reason is None:
            await self._finish()

    async def _block_on_base(self) -> None:
        base = self.state.base()
        assert base is not None
        f = base.failure or {}
        reason = f"base case {base.case_id} failed its no-op run: {f.get('type')}: {f.get('reason')}"
        self.emit(ev.GatesChecked(stage=None, gates=[gate("base_case", base.case_id, False,
                                                          {"failure": f.get("type")})]))
        self.emit(ev.PolicyDecision(scope="study", action="block_study", subject=base.case_id, reason=reason))
        self.emit(ev.StudyFinished(status="blocked", reason=reason))
        await self.checkpoint()

    async def _finish(self) -> None:
        end = self.stages.end
        why = end[1] if end else ""
        for st in self.state.stages:  # stages an early end never reached, or cut off in a branch
            if st.status == "pending":
                self.emit(ev.StageFinished(stage=st.index, status="skipped", reason=why))
            elif st.status == "running":
                self.emit(ev.StageFinished(stage=st.index, status="aborted", reason=f"cut off: {why}"))
        effects = priors.effectiveness(self.state, self.state.trials.values(), self.spec.priors, self.imported_priors,
                                       self.spec.ranking)
        self.emit(ev.EcoStats(stage=None, rows=priors.leaderboard(effects)))
        status, reason = end or ("complete", final_summary(self.state))
        self.emit(ev.StudyFinished(status=status, reason=reason))
        await self.checkpoint()


def make_executor(study: Study, study_dir: Path, max_parallel: int) -> Executor:
    x = study.spec.execution
    warm = WarmLimits(x.warm_max_trials, x.warm_max_mb) if x.warm else None
    if x.executor == "ray":
        from noodle2.engine.executors.ray_exec import RayExecutor  # Ray is an extra: imported when asked for

        try:
            ray = RayExecutor(study_dir, x.address, x.shared_dir, warm)
        except Exception as e:  # noqa: BLE001 - Ray's connection errors: the cluster, not the study
            raise N2Error.one("N2-E211", f"cannot reach the Ray cluster at {x.address}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}", "execution.address") from None
        if (why := ray.infeasible(x.memory_limit_mb)) is not None:  # Ray would queue such a task forever
            ray.close()
            raise N2Error.one("N2-E217", f"no node of the Ray cluster at {x.address} can run a trial: {why}",
                              "execution.memory_limit_mb")
        return ray
    return LocalExecutor(max_parallel, warm, x.read_only_mounts)
