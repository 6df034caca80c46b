"""Typed journal events.  One orjson line each in journal.jsonl; `decode` reverses `encode`.

Payloads that tools produce (metrics, failure, resources) stay plain dicts: they are data,
and keeping them dicts keeps encode/decode a single C call.

Line format 2: `{"type":T,"v":2,<fields>,"crc":"<crc32 of everything before ,"crc">"}`.
Format 1 lines (no "v", no "crc") are still read.  Fields this version does not know are
ignored, and an event type it does not know is skipped when its checksum is good (a newer
noodle2 wrote it), so old and new engines read each other's journals.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import orjson

VERSION = 2
_CRC_KEY = b',"crc":"'
_CRC_LEN = len(_CRC_KEY) + 8 + 2  # ,"crc":"xxxxxxxx"}


@dataclass(slots=True, kw_only=True)
class Event:
    type: ClassVar[str] = "event"
    seq: int = 0
    t: float = 0.0


@dataclass(slots=True, kw_only=True)
class StudyStarted(Event):
    type: ClassVar[str] = "study_started"
    name: str
    spec_hash: str
    spec: dict[str, Any]
    base_case: str
    stages: list[dict[str, Any]]  # name, mode, trials, survivors, after (indices)
    max_parallel: int
    safety_domain: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class StudyResumed(Event):
    type: ClassVar[str] = "study_resumed"
    pid: int
    requeued: list[str] = field(default_factory=list)  # in-flight trials that will re-run


@dataclass(slots=True, kw_only=True)
class StageStarted(Event):
    type: ClassVar[str] = "stage_started"
    stage: int
    parents: list[str]
    plan: list[dict[str, Any]]  # case_id, index, parent, eco, params


@dataclass(slots=True, kw_only=True)
class TrialStarted(Event):
    type: ClassVar[str] = "trial_started"
    case_id: str
    attempt: int = 1


@dataclass(slots=True, kw_only=True)
class TrialToolExited(Event):
    """The trial's tool is done and its slot free; its outputs are being read and checked."""

    type: ClassVar[str] = "trial_tool_exited"
    case_id: str


@dataclass(slots=True, kw_only=True)
class TrialFinished(Event):
    type: ClassVar[str] = "trial_finished"
    case_id: str
    metrics: dict[str, Any]
    resources: dict[str, Any]
    artifacts: str = ""  # trial directory, relative to the study
    outputs: dict[str, str] = field(default_factory=dict)  # file -> sha256 of what children read


@dataclass(slots=True, kw_only=True)
class EquivalenceChecked(Event):
    """A trial's netlist compared with its parent's: proven equal, or not (then a TrialFailed
    not_equivalent follows)."""

    type: ClassVar[str] = "equivalence_checked"
    case_id: str
    against: str  # the parent case
    proven: bool
    method: str  # structural | sat | none
    seconds: float
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class SnapshotReady(Event):
    """The base design every trial reads (netlist, SDC, Liberty), hashed when it was made."""

    type: ClassVar[str] = "snapshot_ready"
    files: dict[str, str]  # path relative to the study dir -> sha256
    info: dict[str, Any] = field(default_factory=dict)  # cells, cache hit, tool versions


@dataclass(slots=True, kw_only=True)
class GatesChecked(Event):
    """Gates the engine checked at one decision point, passed or failed, with their values."""

    type: ClassVar[str] = "gates_checked"
    stage: int | None
    gates: list[dict[str, Any]]


@dataclass(slots=True, kw_only=True)
class EcoStats(Event):
    """The ECO effectiveness a decision used (imported priors included): the leaderboard."""

    type: ClassVar[str] = "eco_stats"
    stage: int | None  # planned stage; None for the study's final table
    rows: list[dict[str, Any]]


@dataclass(slots=True, kw_only=True)
class TrialFailed(Event):
    type: ClassVar[str] = "trial_failed"
    case_id: str
    failure: dict[str, Any]  # type, severity, reason, excerpt
    resources: dict[str, Any]
    retry: bool = False  # True: another attempt follows
    retry_at: float | None = None  # when it may start (backoff), as time.time()


@dataclass(slots=True, kw_only=True)
class TrialCancelled(Event):
    type: ClassVar[str] = "trial_cancelled"
    case_id: str
    reason: str


@dataclass(slots=True, kw_only=True)
class SurvivorsChosen(Event):
    type: ClassVar[str] = "survivors_chosen"
    stage: int
    survivors: list[str]
    ranking: list[str]  # every eligible case, best first
    excluded: dict[str, str] = field(default_factory=dict)  # case -> rail it failed
    front: list[str] = field(default_factory=list)  # Pareto front (pareto ranking only)


@dataclass(slots=True, kw_only=True)
class RankAgreement(Event):
    """A route stage: did ranking on pre-route numbers predict the post-route ranking?"""

    type: ClassVar[str] = "rank_agreement"
    stage: int
    pre_ranking: list[str]  # the stage's ranked trials, by their pre-route metrics
    post_ranking: list[str]  # the same trials, by their post-route metrics (the stage's ranking)
    spearman: float | None  # rank correlation; None with fewer than two trials
    winner_pre_rank: int  # where the post-route winner stood pre-route (1 = first there too; 0 = all tied)


@dataclass(slots=True, kw_only=True)
class ClusterStatus(Event):
    """A remote executor's cluster as the engine saw it (at start, then on change)."""

    type: ClassVar[str] = "cluster_status"
    address: str
    nodes: int
    cpus: float
    cpus_busy: float
    memory_gb: float = 0.0
    dashboard: str = ""
    running: int = 0  # trials whose tool runs now
    queued: int = 0  # trials of running stages not started yet
    node_list: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class NotificationSent(Event):
    """One attempt to notify ([notify]): which channel, for what, and how it went."""

    type: ClassVar[str] = "notification_sent"
    channel: str  # webhook | command
    trigger: str  # complete | failed | blocked | stage_aborted | interrupted
    attempt: int
    ok: bool
    detail: str


@dataclass(slots=True, kw_only=True)
class StudyAmended(Event):
    """A resume took a corrected study file: only keys that leave recorded results as they are."""

    type: ClassVar[str] = "study_amended"
    changes: list[str]  # "key: old → new"
    spec_hash: str
    spec: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class StageFinished(Event):
    type: ClassVar[str] = "stage_finished"
    stage: int
    status: str  # done | aborted | skipped
    reason: str = ""
    best: str = ""  # done: the study's best case from then on (policy.ranking.study_best)


@dataclass(slots=True, kw_only=True)
class PolicyDecision(Event):
    """A containment, prior or rail decision, with the values that led to it."""

    type: ClassVar[str] = "policy_decision"
    scope: str  # eco | eco_class | stage | study
    action: str  # disable_eco | disable_class | skip_eco | abort_stage | block_study | plateau | goal_met | stop_early
    subject: str
    reason: str
    stage: int | None = None


@dataclass(slots=True, kw_only=True)
class StudyFinished(Event):
    type: ClassVar[str] = "study_finished"
    status: str  # complete | failed | blocked
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class StudyInterrupted(Event):
    type: ClassVar[str] = "study_interrupted"
    reason: str
    resume: str


@dataclass(slots=True, kw_only=True)
class CheckpointWritten(Event):
    type: ClassVar[str] = "checkpoint_written"
    upto_seq: int


@dataclass(slots=True, kw_only=True)
class ControlAck(Event):
    type: ClassVar[str] = "control_ack"
    request: str  # pause | resume | stop | cancel
    target: str = ""
    accepted: bool = True
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class Log(Event):
    type: ClassVar[str] = "log"
    level: str
    msg: str
    case_id: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in [StudyStarted, StudyResumed, StageStarted, TrialStarted, TrialFinished, TrialFailed,
                TrialCancelled, SurvivorsChosen, StageFinished, PolicyDecision, StudyFinished,
                StudyInterrupted, CheckpointWritten, ControlAck, Log, SnapshotReady, GatesChecked, EcoStats,
                EquivalenceChecked, TrialToolExited, RankAgreement, NotificationSent, ClusterStatus, StudyAmended]
}


_FIELDS = {name: frozenset(f.name for f in fields(cls)) for name, cls in EVENT_TYPES.items()}


class CorruptLine(ValueError):
    """A journal line that is not an event of any version: bad JSON, bad checksum, bad fields."""


def encode(ev: Event) -> bytes:
    # orjson serialises slotted dataclasses natively; the ClassVar tag goes in front.
    body = b'{"type":"' + ev.type.encode() + b'","v":2,' + orjson.dumps(ev)[1:-1]
    return body + b'%s%08x"}\n' % (_CRC_KEY, zlib.crc32(body))


def has_checksum(line: bytes) -> bool:
    """Whether a line (without its newline) ends in a format-2 checksum field."""
    raw = line.rstrip(b"\r\n")
    return raw[-_CRC_LEN:-10] == _CRC_KEY and raw[-2:] == b'"}'


def decode(line: bytes | str) -> Event | None:
    """The event on one line (without its newline); None for a well-formed event of a type
    this version does not know.  Raises CorruptLine for anything else."""
    raw = (line.encode() if isinstance(line, str) else line).rstrip(b"\r\n")
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CorruptLine(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise CorruptLine("not a JSON object")
    checked = "crc" in d
    if checked:
        if raw[-_CRC_LEN:-10] != _CRC_KEY or raw[-2:] != b'"}' or \
                f"{zlib.crc32(raw[:-_CRC_LEN]):08x}" != d["crc"]:
            raise CorruptLine("checksum mismatch")
    elif d.get("v", 1) != 1:
        raise CorruptLine("a version-2 line without its checksum")
    cls = EVENT_TYPES.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        if checked:
            return None
        raise CorruptLine(f"unknown event type {d.get('type')!r}")
    known = _FIELDS[cls.type]
    try:
        return cls(**{k: v for k, v in d.items() if k in known})
    except TypeError as e:
        raise CorruptLine(f"{cls.type}: {e}") from None


def as_dict(ev: Event) -> dict[str, Any]:
    return orjson.loads(encode(ev))
