"""One trial: its context, its tool run through the executor, its outputs collected and sealed,
its outcome journaled durably.  Failures are classified here; a fault of the machine (a full
disk, a changed input) is raised as EnvironmentFault and never charged to the trial's ECO."""
from __future__ import annotations

import os
import shutil
import stat
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import anyio
import orjson

from noodle2.engine.catalog.ecos import ROUTE_MODES
from noodle2.engine.catalog.metrics import check_metrics, post_route_only
from noodle2.engine.errors import EnvironmentFault, env_fault
from noodle2.engine.executors.base import Command, ExecResult, Executor, Job
from noodle2.engine.executors.contain import MARKER
from noodle2.engine.fsutil import sha256_file
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import TrialState
from noodle2.engine.policy.failures import RETRYABLE, backoff_s, classify, failure
from noodle2.engine.policy.ranking import metrics_of
from noodle2.engine.run import isolation
from noodle2.engine.run.control import Controls
from noodle2.engine.run.host import Host
from noodle2.engine.run.proofs import Prover, counterexample
from noodle2.engine.tools.base import TrialContext, TrialFailure, tail
from noodle2.engine.tools.custom_metrics import ExtractError, extract_custom

DISK_MIN_FREE = 1 << 20  # a failed trial on a disk with less free space than this is the disk's fault
LOGS = {"stdout.log", "stderr.log"}


@dataclass
class Collected:
    metrics: dict[str, Any] | None
    failure: dict[str, Any] | None
    outputs: dict[str, str]
    proof: dict[str, Any] | None = None  # equivalence with the parent, when checked here


@dataclass
class Slots:
    tools: anyio.CapacityLimiter  # running tools (and a cluster's queue)
    collectors: anyio.CapacityLimiter  # output parsing and proofs, after the tool


class TrialRunner:
    def __init__(self, host: Host, executor: Executor, controls: Controls, slots: Slots, prover: Prover,
                 check_ranked: bool = True) -> None:
        self.host = host
        self.executor = executor
        self.controls = controls
        self.slots = slots
        self.prover = prover
        self.check_ranked = check_ranked  # a trial without the metrics its stage ranks on is a parse_failure
        self._verified: dict[str, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, inode) hashed ok
        self.watch = isolation.Watch(host.dir)
        self._alone: set[str] = set()  # cases that saw an escaped write beside others: they run again alone
        self._done_by_key: dict[tuple, str] | None = None  # (parent, eco, mode, params) -> a finished case
        self._alone_lock = anyio.Lock()
        self._refusals: set[str] = set()  # why warm workers could not start, as logged once

    async def run(self, t: TrialState, mode: str, skip: Callable[[TrialState], str | None] | None = None) -> None:
        """The tool slots bound running tools only: parsing outputs and the durable journal append
        happen after the slot is free, so the next tool starts at once.  `skip`, asked once a slot
        is free: why the trial should not run after all (a stage that stopped early)."""
        h = self.host
        try:
            while h.stop_reason is None:
                if t.retry_at is not None and (left := t.retry_at - time.time()) > 0:
                    await anyio.sleep(left)  # a retry's backoff, as journaled
                await self.controls.wait_unpaused()
                async with (self._every_slot() if t.case_id in self._alone else self.slots.tools):
                    if self.controls.paused:
                        continue
                    if skip is not None and (why := skip(t)) is not None:
                        h.emit(ev.TrialCancelled(case_id=t.case_id, reason=why))
                        return
                    if h.spec.execution.reuse and t.attempt == 0 and await self._reuse(t, mode):
                        return  # asked once a slot is free: a twin may have finished meanwhile
                    ran = await self._run_tool(t, mode)
                if ran is None:
                    return
                ctx, result, got = ran
                if got is None:  # collected apart (a proof follows): the tool's slot is free meanwhile
                    h.emit(ev.TrialToolExited(case_id=t.case_id))
                    async with self.slots.collectors:
                        got = await anyio.to_thread.run_sync(self._collect, ctx, result)
                if not await self._record(t, ctx, result, got):
                    return
        except EnvironmentFault as f:
            h.machine_fault(f)  # the trial stays in flight in the journal: it runs again on resume

    def _key(self, t: TrialState, mode: str) -> tuple:
        return t.parent, t.eco, mode, orjson.dumps(t.params, option=orjson.OPT_SORT_KEYS)

    def twin(self, t: TrialState, mode: str) -> TrialState | None:
        """A finished trial with this one's parent, ECO, parameters and mode: the same netlist."""
        s = self.host.state
        if self._done_by_key is None:
            self._done_by_key = {}
            for x in s.trials.values():
                if x.status == "done" and x.stage >= 0 and not (x.resources or {}).get("reused_from"):
                    self._done_by_key.setdefault(self._key(x, s.stages[x.stage].mode), x.case_id)
        c = self._done_by_key.get(self._key(t, mode))
        return s.trials[c] if c is not None and c != t.case_id else None

    async def _reuse(self, t: TrialState, mode: str) -> bool:
        """Take a finished twin's result instead of running the tool: its files are copied (they
        are this trial's children's inputs) and journaled with the twin's hashes."""
        h = self.host
        twin = self.twin(t, mode)
        if twin is None:
            return False
        src, dst = h.dir / (twin.artifacts or f"trials/{twin.case_id}"), h.dir / "trials" / t.case_id
        try:
            await anyio.to_thread.run_sync(_copy_trial, src, dst)
        except OSError as e:
            raise env_fault(e, f"copying {twin.case_id}'s result for {t.case_id}") or e from None
        await anyio.to_thread.run_sync(_relabel, dst, t.case_id, h.spec.stages[t.stage].name, twin.case_id)
        h.emit(ev.TrialStarted(case_id=t.case_id, attempt=1))
        if twin.proof is not None:
            h.emit(ev.EquivalenceChecked(case_id=t.case_id, against=twin.proof.get("against", t.parent or ""),
                                         proven=twin.proof.get("proven", False), method=twin.proof.get("method", ""),
                                         seconds=0.0, detail=f"as {twin.case_id} (the same netlist)"))
        h.emit(ev.TrialFinished(case_id=t.case_id, metrics=twin.metrics or {}, outputs=twin.outputs,
                                resources={"reused_from": twin.case_id, "wall_s": 0.0},
                                artifacts=str(dst.relative_to(h.dir))))
        await h.sync()
        return True

    @asynccontextmanager
    async def _every_slot(self) -> AsyncIterator[None]:
        """Every tool slot at once, one such holder at a time: no other tool runs meanwhile."""
        async with self._alone_lock:
            lim, held = self.slots.tools, []
            try:
                for _ in range(int(lim.total_tokens)):
                    b = object()
                    await lim.acquire_on_behalf_of(b)
                    held.append(b)
                yield
            finally:
                for b in held:
                    lim.release_on_behalf_of(b)

    def context(self, t: TrialState, mode: str) -> TrialContext:
        h, x = self.host, self.host.spec.execution
        parent = h.state.trials.get(t.parent) if t.parent else None
        parent_dir = (h.dir / "trials" / t.parent) if t.parent else h.dir / "snapshot"
        expect = {str(h.dir / rel): sha for rel, sha in h.state.inputs.items() if sha}
        if parent is not None:
            expect.update({str(parent_dir / rel): sha for rel, sha in parent.outputs.items()})
        return TrialContext(
            study_dir=h.dir, case_id=t.case_id, trial_dir=h.dir / "trials" / t.case_id,
            parent_dir=parent_dir, parent_metrics=parent.metrics if parent else None, eco=t.eco, params=t.params,
            mode=mode, soft_timeout_s=x.soft_timeout_s, hard_timeout_s=x.hard_timeout_s or x.soft_timeout_s * 1.25 + 5,
            memory_limit_mb=x.memory_limit_mb, expect=expect, attempt=t.attempt + 1)

    async def _run_tool(self, t: TrialState, mode: str) -> tuple[TrialContext, ExecResult, Collected | None] | None:
        """Prepare and run one attempt (one executor job: directory set-up rides with the tool, as
        metadata syscalls must not stall the loop).  Its outputs are collected in the same job
        unless a proof follows (proofs take the collectors' slots).  None when the attempt ended here."""
        h = self.host
        ctx = self.context(t, mode)
        h.emit(ev.TrialStarted(case_id=t.case_id, attempt=t.attempt + 1))
        result = None
        with self.controls.cancellable(t.case_id) as scope:
            try:
                reads = getattr(h.tool, "reads", lambda c: [])(ctx)
                inline = None if h.spec.verify.equivalence == "all" else (lambda _cmd, res: self._collect(ctx, res))
                result, got = await self.executor.run(Job(partial(self._prepare, ctx), inline, ctx.soft_timeout_s,
                                                        ctx.hard_timeout_s, inputs=sorted(ctx.expect) + list(map(str, reads)),
                                                        name=f"{t.case_id} {t.eco}"))
            except TrialFailure as f:
                await self._failed(t, f.failure, {}, retry=False)
                return None
        if scope.cancelled_caught or result is None:
            self.watch.drop(t.case_id)  # else every later trial would count as having run beside it
            h.emit(ev.TrialCancelled(case_id=t.case_id, reason="cancelled by operator"))
            await h.sync()
            return None
        return ctx, result, got

    async def _record(self, t: TrialState, ctx: TrialContext, result: ExecResult, got: Collected) -> bool:
        """Journal the outcome durably.  True when a retry follows."""
        h = self.host
        if result.warm_refused and result.warm_refused not in self._refusals:
            self._refusals.add(result.warm_refused)
            h.log("warning", f"a warm worker could not start ({result.warm_refused}): its trials run cold, "
                             "one process each", t.case_id)
        if got.proof is not None:
            self.prover.record(t.case_id, t.parent or "", got.proof)
        if got.failure is not None and got.failure["type"] == "escaped_write" and got.failure.get("overlapped"):
            self._alone.add(t.case_id)  # which of the trials beside it wrote: each runs again alone
            h.log("warning", f"{t.case_id} saw a write outside its directory while other trials ran: "
                             "it runs again alone to tell which trial wrote")
            return await self._failed(t, got.failure, result.resources(), retry=True, wait=False)
        self._alone.discard(t.case_id)
        if got.failure is not None:
            retry = got.failure["type"] in RETRYABLE and t.attempt <= h.spec.execution.retries
            return await self._failed(t, got.failure, result.resources(), retry)
        h.emit(ev.TrialFinished(case_id=t.case_id, metrics=got.metrics or {}, resources=result.resources(),
                                artifacts=str(ctx.trial_dir.relative_to(h.dir)), outputs=got.outputs))
        if self._done_by_key is not None:
            self._done_by_key.setdefault(self._key(t, ctx.mode), t.case_id)
        h.sync_soon()
        return False

    async def _failed(self, t: TrialState, fail: dict, resources: dict, retry: bool, wait: bool = True) -> bool:
        """Journal a failure; a retry gets its backoff (`wait`) as a time it may start, so a
        resume keeps the schedule."""
        h, x = self.host, self.host.spec.execution
        at = None
        if retry and wait:
            at = time.time() + backoff_s(h.spec.study.seed, t.case_id, t.attempt, x.retry_backoff_s, x.retry_backoff_max_s)
        self.host.emit(ev.TrialFailed(case_id=t.case_id, failure=fail, resources=resources, retry=retry, retry_at=at))
        self.host.sync_soon()
        return retry

    def required(self, ctx: TrialContext) -> set[str]:
        """The metrics the trial's stage ranks on that its mode produces (the base case: the
        study's ranking, as far as a timing run measures it)."""
        if not self.check_ranked:
            return set()
        h = self.host
        t = h.state.trials.get(ctx.case_id)
        stage = t.stage if t is not None else -1
        need = set(metrics_of(h.spec.stage_ranking(stage) if stage >= 0 else h.spec.ranking))
        if ctx.mode not in ROUTE_MODES:
            need = {m for m in need if not post_route_only(m.split("@", 1)[0])}
        return need

    def _prepare(self, ctx: TrialContext) -> Command:
        """Executor side: the inputs checked, a clean trial directory, the tool's inputs in it."""
        try:
            self._verify(ctx.expect)
            _clean_dir(ctx.trial_dir)
            cmd = self.host.tool.prepare(ctx)
        except OSError as e:
            raise env_fault(e, f"preparing {ctx.case_id}") or e from None
        self.watch.start(ctx.case_id, ctx.parent_dir)  # last: just before the tool
        cmd.env = {**(cmd.env or os.environ), **self.host.spec.tool.env, MARKER: str(ctx.trial_dir)}
        cmd.contain_key = f"{ctx.case_id}.{ctx.attempt}"
        shared = [self.host.dir / "snapshot", self.host.dir / "inputs"]
        cmd.shared_read_only = tuple(str(p) for p in shared if p.is_dir())
        cmd.read_only = (str(ctx.parent_dir),) if ctx.parent_dir not in shared and ctx.parent_dir.is_dir() else ()
        cmd.log_cap_bytes = self.host.spec.execution.max_log_mb << 20
        return cmd

    def _verify(self, expect: dict[str, str]) -> None:
        """Files a trial reads must be the ones the journal recorded: a changed or missing input
        stops the study (N2-E209) instead of being charged to the trial's ECO."""
        for path, sha in expect.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise EnvironmentFault("N2-E209", f"input {path} is missing") from None
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            if self._verified.get(path) == key:
                continue
            try:
                same = sha256_file(Path(path)) == sha
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
        esc, overlapped = self.watch.end(ctx.case_id)
        if result.escaped:  # on a remote worker's own scratch copy: no other trial shares it
            esc, overlapped = sorted({*esc, *result.escaped}), False
        if esc and (fail or {}).get("type") != "cancelled":
            more = f" (+{len(esc) - 5} more)" if len(esc) > 5 else ""
            fail = failure("escaped_write", f"the trial wrote outside its directory: {'; '.join(esc[:5])}{more}"
                           + (" (seen while other trials ran)" if overlapped else ""), "\n".join(esc[:50]))
            return Collected(None, {**fail, "overlapped": True} if overlapped else fail, {})
        if fail is None:
            try:
                return self._outputs(ctx, result)
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

    def _outputs(self, ctx: TrialContext, result: ExecResult) -> Collected:
        h = self.host
        metrics = h.tool.collect(ctx, result)
        if h.spec.custom.metrics:
            try:
                metrics = {**metrics, **extract_custom(h.spec.custom.metrics, ctx.trial_dir)}
            except ExtractError as e:
                raise TrialFailure("parse_failure", str(e)) from None
        if (why := check_metrics(metrics, self.required(ctx))) is not None:
            raise TrialFailure("parse_failure", f"the tool's metrics are not usable: {why}")
        outputs = {rel: sha256_file(ctx.trial_dir / rel) for rel in h.tool.outputs(ctx)}
        _read_only(ctx.trial_dir)
        proof = None
        if h.spec.verify.equivalence == "all" and ctx.case_id != h.state.base_case:
            proof = h.tool.prove(ctx.trial_dir, ctx.parent_dir)
            if proof is not None and not proof["proven"]:
                return Collected(None, failure("not_equivalent", f"not proven equivalent to its parent: "
                                               f"{proof['detail']}", counterexample(ctx.trial_dir)), {}, proof)
        return Collected(metrics, None, outputs, proof)


def _copy_trial(src: Path, dst: Path) -> None:
    """A twin's files into a clean directory of this trial's own, read-only like any result."""
    _clean_dir(dst)
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_symlink():
            continue
        if p.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst / rel)
    _read_only(dst)


def _relabel(tdir: Path, case: str, stage: str, twin: str) -> None:
    """The copied artifact index names this trial, and the one whose result it took."""
    p = tdir / "artifact_index.json"
    try:
        index = orjson.loads(p.read_bytes())
    except (OSError, ValueError):
        return
    if isinstance(index, list):
        for entry in index:
            if isinstance(entry, dict):
                entry.update(case=case, stage=stage, reused_from=twin)
        p.unlink()
        p.write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
        os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


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
