"""Headless output for --unattended, `watch` and CI: one line per finished trial, a summary per
stage; or, with --json, the raw event stream."""
from __future__ import annotations

import sys
from typing import TextIO

from noodle2.console.view import plural
from noodle2.engine.fmt import decision_text, fmt_ns
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.files import agreement_line
from noodle2.engine.reports.status import trial_line


class Printer:
    def __init__(self, out: TextIO = sys.stdout, json: bool = False) -> None:
        self.out: TextIO | None = out
        self.json = json
        self.cluster_shown = False

    def __call__(self, e: ev.Event, s: StudyState) -> None:
        text = ev.encode(e).decode() if self.json else self.line(e, s)
        if text is None or self.out is None:
            return
        try:
            self.out.write(text if self.json else text + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away (`| head`): the study goes on
            self.out = None
            _silence_stdout()

    def line(self, e: ev.Event, s: StudyState) -> str | None:
        if isinstance(e, ev.StudyStarted):
            done, total = s.counts()
            return (f"● study {e.name}: {plural(len(e.stages), 'stage')}, {plural(total, 'trial')} + base case, "
                    f"max_parallel {e.max_parallel}")
        if isinstance(e, ev.StudyResumed):
            return (f"● resumed {s.name} (pid {e.pid}); re-running {plural(len(e.requeued), 'trial')} that "
                    f"{'was' if len(e.requeued) == 1 else 'were'} in flight")
        if isinstance(e, ev.StudyAmended):
            return "● took the corrected study file: " + "; ".join(e.changes)
        if isinstance(e, ev.ClusterStatus):  # once, at start; the console shows it live
            if self.cluster_shown:
                return None
            self.cluster_shown = True
            return "◎ " + cluster_line(s.cluster or {})
        if isinstance(e, ev.StageStarted):
            st = s.stages[e.stage]
            return (f"▶ stage {st.name} [{st.mode}]: {plural(len(e.plan), 'trial')} from "
                    f"{plural(len(e.parents), 'parent')}")
        if isinstance(e, (ev.TrialFinished, ev.TrialCancelled)) or (isinstance(e, ev.TrialFailed) and not e.retry):
            return "  " + trial_line(s.trials[e.case_id])
        if isinstance(e, ev.TrialFailed):
            return f"  ↻ {e.case_id} {e.failure['type']}: retrying"
        if isinstance(e, ev.StageFinished):
            st = s.stages[e.stage]
            ts = s.stage_trials(e.stage)
            ok = sum(t.status == "done" for t in ts)
            if e.status != "done":
                return f"■ stage {st.name} {e.status}: {e.reason}"
            failed = sum(t.status == "failed" for t in ts)
            cancelled = sum(t.status == "cancelled" for t in ts)
            head = f"■ stage {st.name}: {ok}/{len(ts)} ok, {failed} failed" + (f", {cancelled} cancelled" if cancelled else "")
            if not st.survivors:  # every trial failed or broke a rail
                why = next(iter(st.excluded.values()), "no trial finished")
                return f"{head}; no survivor ({plural(len(st.excluded), 'trial')} excluded by the rails: {why})"
            best = s.trials[st.survivors[0]].metrics or {}
            line = (f"{head}; {'survivor' if len(st.survivors) == 1 else 'survivors'} {', '.join(st.survivors)}; "
                    f"best WNS {fmt_ns(best.get('wns_ps'))} ns")
            return line + (f"\n  {agreement_line(st.agreement)}" if st.agreement else "")
        if isinstance(e, ev.PolicyDecision):
            return f"! {decision_text(e.action, e.subject)}: {e.reason}"
        if isinstance(e, ev.ControlAck):
            return f"» {e.request} {e.target} {'accepted' if e.accepted else 'refused'} {e.detail}".rstrip()
        if isinstance(e, ev.Log) and e.level in ("warning", "error"):
            return f"! {e.level}: {e.msg}"
        if isinstance(e, ev.StudyFinished):
            mark = {"complete": "✓", "failed": "✗", "blocked": "⛔"}.get(e.status, "?")
            return f"{mark} study {s.name} {e.status}" + (f": {e.reason}" if e.reason else "")
        if isinstance(e, ev.StudyInterrupted):
            return f"⏸ study {s.name} interrupted ({e.reason}); resume with: {e.resume}"
        return None


def say(text: str, out: TextIO | None = None) -> None:
    """print() for what a headless run says: a reader that went away silences it, never stops it."""
    out = out or sys.stdout
    try:
        out.write(text + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):
        if out is sys.stdout:
            _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit raises nothing either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def cluster_parts(c: dict) -> list[str]:
    """A Ray cluster as journaled: one part per line in the live view, joined in the headless line."""
    nodes = ", ".join(f"{n['host']}/{n['id']} {n['cpus']:g} CPU" for n in c.get("node_list", []) if n.get("cpus"))
    return [f"Ray {c.get('address', '?')}: {plural(c.get('nodes', 0), 'node')}, {c.get('memory_gb', 0):g} GB",
            f"CPUs {c.get('cpus_busy', 0):g}/{c.get('cpus', 0):g} busy; trials running {c.get('running', 0)}, "
            f"queued {c.get('queued', 0)}",
            f"dashboard {c.get('dashboard') or 'not running'}"] + ([f"workers: {nodes}"] if nodes else [])


def cluster_line(c: dict) -> str:
    return "; ".join(cluster_parts(c))
