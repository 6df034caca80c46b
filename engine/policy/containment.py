"""Which ECOs a stage may use, and what a failure disables.  Pure functions over state."""
from __future__ import annotations

from engine import events as ev
from engine.spec import StudySpec
from engine.state import StudyState, TrialState


def disabled_ecos(state: StudyState) -> set[str]:
    return {d["subject"] for d in state.decisions if d["action"] == "disable_eco"}


def usable_ecos(spec: StudySpec, state: StudyState, stage: int, implemented: set[str]) -> list[str]:
    off = disabled_ecos(state)
    return [e for e in spec.stages[stage].ecos if e in implemented and e not in off]


def pending_decisions(spec: StudySpec, state: StudyState, stage: int) -> list[ev.Event]:
    return []


def after_failure(spec: StudySpec, state: StudyState, trial: TrialState) -> list[ev.Event]:
    return []
