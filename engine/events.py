"""Typed journal events.  One orjson line each in journal.jsonl; `decode` reverses `encode`.

Payloads that tools produce (metrics, failure, resources) stay plain dicts: they are data,
and keeping them dicts keeps encode/decode a single C call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson


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
class TrialFinished(Event):
    type: ClassVar[str] = "trial_finished"
    case_id: str
    metrics: dict[str, Any]
    resources: dict[str, Any]
    artifacts: str = ""  # trial directory, relative to the study


@dataclass(slots=True, kw_only=True)
class TrialFailed(Event):
    type: ClassVar[str] = "trial_failed"
    case_id: str
    failure: dict[str, Any]  # type, severity, reason, excerpt
    resources: dict[str, Any]
    retry: bool = False  # True: another attempt follows


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
class StageFinished(Event):
    type: ClassVar[str] = "stage_finished"
    stage: int
    status: str  # done | aborted | skipped
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class PolicyDecision(Event):
    """A containment, prior or rail decision, with the values that led to it."""

    type: ClassVar[str] = "policy_decision"
    scope: str  # eco | eco_class | stage | study
    action: str  # disable_eco | disable_class | skip_eco | abort_stage | block_study | plateau
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
                StudyInterrupted, CheckpointWritten, ControlAck, Log]
}


def encode(ev: Event) -> bytes:
    # orjson serialises slotted dataclasses natively; the ClassVar tag goes in front.
    return b'{"type":"' + ev.type.encode() + b'",' + orjson.dumps(ev)[1:] + b"\n"


def decode(line: bytes | str) -> Event:
    d = orjson.loads(line)
    cls = EVENT_TYPES[d.pop("type")]
    return cls(**d)


def as_dict(ev: Event) -> dict[str, Any]:
    return orjson.loads(encode(ev))
