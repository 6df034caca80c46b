"""The one reducer: `fold(state, event)` turns journal events into study state.

The engine folds to resume, the console to draw, reports to summarise.  `fold` updates the
state in place and returns it (a 10k-trial replay must stay well under a second).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Iterator

from noodle2.engine.journal import events as ev

STATUSES = ("planned", "running", "done", "failed", "cancelled")  # a trial's, in a stage's tally
TERMINAL = {"done", "failed", "cancelled"}
PEAK_METRICS = ("wns_ps", "tns_ps")  # a running stage's best so far, kept as trials finish


@dataclass(slots=True)
class TrialState:
    case_id: str
    stage: int  # -1 for the base case
    index: int
    parent: str | None
    eco: str
    params: dict[str, Any]
    status: str = "planned"  # planned | running | done | failed | cancelled
    attempt: int = 0
    metrics: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    artifacts: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # file -> sha256, read by children
    proof: dict[str, Any] | None = None  # equivalence with the parent: proven, method, seconds
    tool_done: bool = False  # running, but its tool has exited: outputs are being read
    retry_at: float | None = None  # a retry's backoff: not started before this


@dataclass(slots=True)
class StageState:
    index: int
    name: str
    mode: str
    budget: int
    survivor_count: int
    after: list[int]
    status: str = "pending"  # pending | running | done | aborted | skipped
    parents: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    ranking: list[str] = field(default_factory=list)
    front: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    agreement: dict[str, Any] | None = None  # route stages: pre- vs post-route ranking
    tally: dict[str, int] = field(default_factory=dict)  # its trials by status: counts never walk 100k trials
    peak: dict[str, float] = field(default_factory=dict)  # PEAK_METRICS' highest among its finished trials
    started_at: float | None = None
    ended_at: float | None = None
    reason: str = ""


@dataclass(slots=True)
class StudyState:
    name: str = ""
    status: str = "new"  # new | running | interrupted | complete | failed | blocked
    reason: str = ""
    spec_hash: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    base_case: str = ""
    safety_domain: str = ""
    max_parallel: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    stages: list[StageState] = field(default_factory=list)
    trials: dict[str, TrialState] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)  # the safety trace, as checked
    eco_stats: list[dict[str, Any]] = field(default_factory=list)  # the latest leaderboard used
    eco_stats_stage: int | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # snapshot file -> sha256
    controls: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    cluster: dict[str, Any] | None = None  # the Ray cluster, as last journaled
    paused: bool = False
    seq: int = 0
    started_at: float | None = None
    last_event_at: float | None = None
    resumes: int = 0
    amendments: list[dict[str, Any]] = field(default_factory=list)  # corrected study files a resume took
    best: str = ""  # the study's answer, as the engine journaled it with its last finished stage

    # --- derived views (computed, never stored) ---
    def base(self) -> TrialState | None:
        return self.trials.get(self.base_case)

    def stage_trials(self, i: int) -> list[TrialState]:
        return [self.trials[c] for c in self.stages[i].cases]

    def running(self) -> list[TrialState]:
        return [t for t in self.trials.values() if t.status == "running"]

    def in_flight(self) -> int:
        """Trials handed to the executor whose tool has not exited (a cluster may queue some)."""
        return sum(1 for t in self.trials.values() if t.status == "running" and not t.tool_done)

    def busy(self) -> int:
        """Tools running now: never more than max_parallel (reading outputs holds no slot).  The
        Ray executor queues up to max_parallel more, which its CPUs do not let run yet."""
        n = self.in_flight()
        return min(n, self.max_parallel) if self.max_parallel else n

    def paused_since(self) -> float | None:
        if not self.paused:
            return None
        return next((c.get("t") for c in reversed(self.controls) if c["request"] == "pause" and c["accepted"]), None)

    def counts(self) -> tuple[int, int]:
        """(finished trials, planned total) across the study, base case excluded."""
        total = sum(s.budget for s in self.stages)
        done = sum(st.tally.get(k, 0) for st in self.stages for k in TERMINAL)
        return done, total


class FoldError(ValueError):
    """An event that does not fit the state: a case or stage the journal never planned."""


def fold(s: StudyState, e: ev.Event) -> StudyState:
    handler = _HANDLERS.get(type(e))
    if handler is not None:
        try:
            handler(s, e)
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise FoldError(f"{e.type} (seq {e.seq}) does not fit the study: {type(err).__name__} {err}") from None
    s.seq = e.seq
    s.last_event_at = e.t
    return s


def replay(events: list[ev.Event], s: StudyState | None = None) -> StudyState:
    s = s or StudyState()
    for e in events:
        fold(s, e)
    return s


def _study_started(s: StudyState, e: ev.StudyStarted) -> None:
    s.name, s.spec_hash, s.spec, s.base_case = e.name, e.spec_hash, e.spec, e.base_case
    s.safety_domain, s.max_parallel, s.provenance = e.safety_domain, e.max_parallel, e.provenance
    s.status, s.started_at = "running", e.t
    s.stages = [StageState(i, d["name"], d["mode"], d["trials"], d["survivors"], list(d["after"]))
                for i, d in enumerate(e.stages)]
    s.trials[e.base_case] = TrialState(e.base_case, -1, 0, None, "noop", {})


def _study_resumed(s: StudyState, e: ev.StudyResumed) -> None:
    s.status, s.reason, s.paused = "running", "", False
    s.resumes += 1
    for c in e.requeued:
        t = s.trials[c]
        _status(s, t, "planned")
        t.metrics, t.failure, t.resources = None, None, None


def _amended(s: StudyState, e: ev.StudyAmended) -> None:
    s.spec_hash, s.spec = e.spec_hash, e.spec
    s.amendments.append({"seq": e.seq, "t": e.t, "changes": list(e.changes)})


def _stage_started(s: StudyState, e: ev.StageStarted) -> None:
    st = s.stages[e.stage]
    st.status, st.parents, st.started_at = "running", list(e.parents), e.t
    st.cases = [p["case_id"] for p in e.plan]
    for p in e.plan:
        s.trials[p["case_id"]] = TrialState(p["case_id"], e.stage, p["index"], p["parent"], p["eco"], p["params"])
    st.tally = dict.fromkeys(STATUSES, 0) | {"planned": len(st.cases)}


def _trial_started(s: StudyState, e: ev.TrialStarted) -> None:
    t = s.trials[e.case_id]
    _status(s, t, "running")
    t.attempt, t.started_at, t.ended_at, t.proof, t.tool_done = e.attempt, e.t, None, None, False


def _tool_exited(s: StudyState, e: ev.TrialToolExited) -> None:
    s.trials[e.case_id].tool_done = True


def _trial_finished(s: StudyState, e: ev.TrialFinished) -> None:
    t = s.trials[e.case_id]
    _status(s, t, "done")
    t.metrics, t.resources, t.ended_at, t.artifacts = e.metrics, e.resources, e.t, e.artifacts
    if t.stage >= 0:
        _peak(s.stages[t.stage], e.metrics)
    t.failure, t.outputs = None, dict(e.outputs)


def _equivalence(s: StudyState, e: ev.EquivalenceChecked) -> None:
    s.trials[e.case_id].proof = {"against": e.against, "proven": e.proven, "method": e.method,
                                 "seconds": e.seconds, "detail": e.detail}


def _snapshot(s: StudyState, e: ev.SnapshotReady) -> None:
    s.inputs = dict(e.files)


def _gates(s: StudyState, e: ev.GatesChecked) -> None:
    s.gates.extend(e.gates)


def _eco_stats(s: StudyState, e: ev.EcoStats) -> None:
    s.eco_stats, s.eco_stats_stage = list(e.rows), e.stage


def _trial_failed(s: StudyState, e: ev.TrialFailed) -> None:
    t = s.trials[e.case_id]
    t.failure, t.resources, t.ended_at = e.failure, e.resources, e.t
    _status(s, t, "planned" if e.retry else "failed")
    t.retry_at = e.retry_at if e.retry else None


def _trial_cancelled(s: StudyState, e: ev.TrialCancelled) -> None:
    t = s.trials[e.case_id]
    _status(s, t, "cancelled")
    t.ended_at = e.t
    t.failure = {"type": "cancelled", "severity": "info", "reason": e.reason, "excerpt": ""}


def _status(s: StudyState, t: TrialState, status: str) -> None:
    """Every change of a trial's status goes through here, to keep its stage's tally."""
    if t.stage >= 0:
        n = s.stages[t.stage].tally
        n[t.status] -= 1
        n[status] += 1
    t.status = status


def _peak(st: StageState, m: dict[str, Any] | None) -> None:
    """Keys in PEAK_METRICS' order whatever the order trials finished in: a checkpoint folds
    to the same bytes as a replay."""
    peak = {}
    for k in PEAK_METRICS:
        old, v = st.peak.get(k), (m or {}).get(k)
        if type(v) in (int, float) and (old is None or v > old):  # type(): a bool is no WNS
            old = v
        if old is not None:
            peak[k] = old
    st.peak = peak


def _recount(st: StageState, trials: dict[str, TrialState]) -> None:
    """A stage's tally and peak from its trials, in one pass (100k trials: 0.08 s)."""
    tally = dict.fromkeys(STATUSES, 0)
    best: dict[str, Any] = dict.fromkeys(PEAK_METRICS)
    for c in st.cases:
        t = trials[c]
        tally[t.status] += 1
        if t.status == "done" and t.metrics:
            for k in PEAK_METRICS:
                v = t.metrics.get(k)
                if type(v) in (int, float) and (best[k] is None or v > best[k]):
                    best[k] = v
    st.tally, st.peak = tally, {k: v for k, v in best.items() if v is not None}


def _survivors(s: StudyState, e: ev.SurvivorsChosen) -> None:
    st = s.stages[e.stage]
    st.survivors, st.ranking, st.excluded, st.front = list(e.survivors), list(e.ranking), dict(e.excluded), list(e.front)


def _agreement(s: StudyState, e: ev.RankAgreement) -> None:
    s.stages[e.stage].agreement = {"pre_ranking": list(e.pre_ranking), "post_ranking": list(e.post_ranking),
                                   "spearman": e.spearman, "winner_pre_rank": e.winner_pre_rank}


def _cluster(s: StudyState, e: ev.ClusterStatus) -> None:
    s.cluster = {k: getattr(e, k) for k in ("address", "nodes", "cpus", "cpus_busy", "memory_gb", "dashboard", "running",
                                            "queued", "node_list")}


def _notified(s: StudyState, e: ev.NotificationSent) -> None:
    s.notifications.append({"channel": e.channel, "trigger": e.trigger, "attempt": e.attempt, "ok": e.ok,
                            "detail": e.detail, "t": e.t})


def _stage_finished(s: StudyState, e: ev.StageFinished) -> None:
    st = s.stages[e.stage]
    st.status, st.reason, st.ended_at = e.status, e.reason, e.t
    if e.best:
        s.best = e.best


def _decision(s: StudyState, e: ev.PolicyDecision) -> None:
    s.decisions.append({"seq": e.seq, "scope": e.scope, "action": e.action, "subject": e.subject,
                        "reason": e.reason, "stage": e.stage})


def _study_finished(s: StudyState, e: ev.StudyFinished) -> None:
    s.status, s.reason = e.status, e.reason
    for t in s.trials.values():
        if t.status == "running":  # a trial still open at the end was cut off
            _status(s, t, "cancelled")


def _interrupted(s: StudyState, e: ev.StudyInterrupted) -> None:
    s.status, s.reason = "interrupted", e.reason


def _control(s: StudyState, e: ev.ControlAck) -> None:
    s.controls.append({"seq": e.seq, "t": e.t, "request": e.request, "target": e.target, "accepted": e.accepted,
                       "detail": e.detail})
    if e.accepted and e.request in ("pause", "resume"):
        s.paused = e.request == "pause"


_HANDLERS = {
    ev.StudyStarted: _study_started, ev.StudyResumed: _study_resumed, ev.StageStarted: _stage_started,
    ev.TrialStarted: _trial_started, ev.TrialFinished: _trial_finished, ev.TrialFailed: _trial_failed,
    ev.TrialCancelled: _trial_cancelled, ev.SurvivorsChosen: _survivors, ev.StageFinished: _stage_finished,
    ev.PolicyDecision: _decision, ev.StudyFinished: _study_finished, ev.StudyInterrupted: _interrupted,
    ev.ControlAck: _control, ev.SnapshotReady: _snapshot, ev.GatesChecked: _gates, ev.EcoStats: _eco_stats,
    ev.EquivalenceChecked: _equivalence, ev.TrialToolExited: _tool_exited, ev.RankAgreement: _agreement,
    ev.NotificationSent: _notified, ev.ClusterStatus: _cluster, ev.StudyAmended: _amended,
}


# --- snapshot (de)serialisation: orjson writes the dataclasses; this rebuilds them ---------

TRIAL_FIELDS = tuple(f.name for f in fields(TrialState))
_trial_row = operator.attrgetter(*TRIAL_FIELDS)


def to_snapshot(s: StudyState, lazy: bool = False) -> dict[str, Any]:
    """The state as a checkpoint holds it: trials as rows under one list of field names.  At
    100k trials that is three quarters of the bytes, parsed twice as fast and rebuilt four
    times as fast as one object per trial.  `rows` may be a list or an iterator (from_snapshot);
    `lazy`: an iterator, for a writer that takes them a line at a time."""
    d: dict[str, Any] = {f.name: getattr(s, f.name) for f in fields(StudyState) if f.name != "trials"}
    rows = map(_trial_row, s.trials.values())
    d["trial_rows"] = {"fields": TRIAL_FIELDS, "rows": rows if lazy else list(rows)}
    return d


def from_snapshot(d: dict[str, Any]) -> StudyState:
    """Fields added since the snapshot was written take their defaults; fields removed since
    are ignored.  Trials come as rows (to_snapshot) or, in older checkpoints, as objects."""
    d = dict(d)
    d["stages"] = [_known(StageState, x) for x in d["stages"]]
    if (rows := d.pop("trial_rows", None)) is not None:
        names = tuple(rows["fields"])
        if names == TRIAL_FIELDS:
            d["trials"] = {r[0]: TrialState(*r) for r in _drained(rows["rows"])}
        else:
            d["trials"] = {t.case_id: t for t in (_known(TrialState, dict(zip(names, r))) for r in _drained(rows["rows"]))}
    else:
        d["trials"] = {k: _known(TrialState, v) for k, v in d["trials"].items()}
    for st in d["stages"]:
        if st.tally.keys() != set(STATUSES):  # a checkpoint from before tallies
            _recount(st, d["trials"])
    return _known(StudyState, d)


def detached(s: StudyState) -> StudyState:
    """A copy of the state that later folds cannot change, for a worker thread to read while
    the loop folds on.  What the reducer changes in place is copied (the state's and the
    stages' fields and lists, a stage's tally and peak, every trial's fields); what it only
    ever replaces is shared (a trial's metrics, params, resources, outputs).  At 100k trials:
    0.25 s and ~25 MB, where a state rebuilt from the checkpoint's bytes took 0.6 s and 190 MB."""
    d = {f.name: getattr(s, f.name) for f in fields(StudyState)}
    for name in ("decisions", "gates", "controls", "notifications", "amendments"):
        d[name] = list(d[name])
    d["stages"] = [StageState(*_stage_row(st)) for st in s.stages]
    for st in d["stages"]:
        st.tally, st.peak = dict(st.tally), dict(st.peak)
    d["trials"] = {c: TrialState(*_trial_row(t)) for c, t in s.trials.items()}
    return StudyState(**d)


_stage_row = operator.attrgetter(*(f.name for f in fields(StageState)))


def _drained(rows: Iterable[Any]) -> Iterator[Any]:
    """Rows one by one; a list's entries are dropped as they are taken (a lower peak)."""
    if isinstance(rows, list):
        for k, r in enumerate(rows):
            rows[k] = None
            yield r
    else:
        yield from rows


_FIELDS: dict[type, frozenset[str]] = {}


def _known(cls: Any, d: dict[str, Any]) -> Any:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in fields(cls))
    return cls(**d) if names.issuperset(d) else cls(**{k: v for k, v in d.items() if k in names})
