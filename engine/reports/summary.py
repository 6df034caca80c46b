"""`noodle2 report`: what a study did, for people who were not watching.

One document model, two renderings: summary.md (images beside it) and summary.html (one file,
images inlined, opens offline).  Everything comes from the journal's folded state and the files
the study wrote; nothing is recomputed that the engine decided.  Also: trials.csv, lineage.svg
(Graphviz, when `dot` is installed), the winner's change list and its replay Tcl.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noodle2.engine.fmt import decision_text, fmt_local, fmt_metric, fmt_ns, fmt_num, metric_axis, metric_unit
from noodle2.engine.fsutil import atomic_write, read_json_object, study_subdir
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.files import agreement_line, decision_cases, lineage_dot
from noodle2.engine.reports.status import best_case, eco_call, lineage, stage_best, wns_delta


@dataclass
class Doc:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, text: str) -> None:
        self.blocks.append(("h", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, head: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", (head, rows)))

    def img(self, path: str, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))


def _cell(v: Any) -> str:
    return "—" if v is None else str(v)


def to_md(doc: Doc) -> str:
    out = [f"# {doc.title}", ""]
    for kind, v in doc.blocks:
        if kind == "h":
            out += [f"## {v}", ""]
        elif kind == "p":
            out += [v, ""]
        elif kind == "pre":
            out += ["```", v.rstrip(), "```", ""]
        elif kind == "img":
            out += [f"![{v[1]}]({v[0]})", "", f"*{v[1]}*", ""]
        elif kind == "table":
            head, rows = v
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in r) + " |" for r in rows] + [""]
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f2f2f2}img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
.better{color:#060}.worse{color:#a00}"""


def to_html(doc: Doc, base: Path) -> str:
    """Self-contained: images become data: URIs; nothing is fetched when it opens."""
    out = ["<!doctype html>", "<html lang=en><head><meta charset=utf-8>", f"<title>{html.escape(doc.title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(doc.title)}</h1>"]
    for kind, v in doc.blocks:
        if kind == "h":
            out.append(f"<h2>{html.escape(v)}</h2>")
        elif kind == "p":
            out.append(f"<p>{html.escape(v)}</p>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(v)}</pre>")
        elif kind == "img":
            path, caption = v
            data = (base / path).read_bytes()
            mime = "image/svg+xml" if path.endswith(".svg") else "image/png"
            out.append(f'<figure><img alt="{html.escape(caption)}" src="data:{mime};base64,'
                       f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        elif kind == "table":
            head, rows = v
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- content -------------------------------------------------------------------------------------

def _ns(v: Any) -> str:
    return fmt_ns(v) if isinstance(v, (int, float)) else "—"


HEADLINE = [(k, metric_axis(k, column=True), metric_unit(k)[2], metric_unit(k)[3])
            for k in ("wns_ps", "tns_ps", "failing_endpoints", "power_total_w", "area_um2", "instances", "hold_worst_ps",
                      "cap_violations", "hot_ratio", "wirelength_um")]


def _v(m: dict[str, Any], key: str, scale: float, digits: int) -> str:
    v = m.get(key)
    return f"{v * scale:,.{digits}f}" if isinstance(v, (int, float)) else "—"


def build(d: Path, s: StudyState, images: list[tuple[str, str]], skipped: str | None,
          changes: tuple[str, list[list[str]]] | None, lineage_svg: bool = False) -> Doc:
    """The summary of the study in `d`; image paths are relative to where the report goes."""
    doc = Doc(f"noodle2 study {s.name}")
    _study(doc, d, s)
    _result(doc, s)
    _stages(doc, s)
    _winner(doc, s, changes, lineage_svg)
    _ecos_and_safety(doc, s)
    _nodes(doc, d, s)
    doc.h("Plots")
    if skipped:
        doc.p(skipped)
    for path, caption in images:
        doc.img(path, caption)
    return doc


def _study(doc: Doc, d: Path, s: StudyState) -> None:
    spec = s.spec or {}
    meta = spec.get("study", {})
    prov = read_json_object(d / "provenance.json")
    snap = prov.get("snapshot") or {}
    doc.h("Study")
    doc.table(["", ""], [
        ["name", s.name], ["description", meta.get("description", "")], ["author", meta.get("author", "")],
        ["tags", ", ".join(meta.get("tags", []))], ["status", f"{s.status} {('— ' + s.reason) if s.reason else ''}"],
        ["safety domain", s.safety_domain], ["stages", len(s.stages)],
        ["trials", f"{s.counts()[0]} finished of {s.counts()[1]} planned, {s.resumes} resume(s)"],
        ["design", f"{spec.get('design', {}).get('top', '?')} on {spec.get('design', {}).get('tech', 'custom Liberty')}"],
        ["tools", "; ".join(x for x in (f"OpenSTA {snap.get('sta', '?')}", snap.get("yosys", "")) if x)],
        ["snapshot", f"{snap.get('cells', '?')} cells" + (f", sha256 {snap['snapshot_hash'][:16]}"
                                                           if snap.get("snapshot_hash") else "")],
        ["created", f"{fmt_local(s.started_at, seconds=True) if s.started_at else prov.get('created', '')} on "
                    f"{prov.get('host', '')}, from {prov.get('source_study', '')}"],
        ["study directory", str(d)]])


def _result(doc: Doc, s: StudyState) -> None:
    best, base = best_case(s), s.base()
    bm, b0 = (best.metrics or {}) if best else {}, (base.metrics or {}) if base else {}
    doc.h("Result")
    doc.p(f"best case {best.case_id if best else '—'}: WNS {_ns(bm.get('wns_ps'))} ns against the base's "
          f"{_ns(b0.get('wns_ps'))} ns" + (" (post-route; the base was timed before routing)" if "pre_wns_ps" in bm else ""))
    cols = ["metric", "base", "best", *[f"best of {st.name}" for st in s.stages]]
    stage_bests = [s.trials[st.survivors[0]].metrics or {} if st.survivors else {} for st in s.stages]
    rows = []
    for key, label, scale, digits in HEADLINE:
        if key in bm or key in b0:
            rows.append([label, _v(b0, key, scale, digits), _v(bm, key, scale, digits),
                         *[_v(m, key, scale, digits) for m in stage_bests]])
    doc.table(cols, rows)


def _stages(doc: Doc, s: StudyState) -> None:
    doc.h("Stage funnel")
    doc.table(["stage", "mode", "status", "planned", "ok", "failed", "cancelled", "survivors", "best WNS ns", "best TNS ns"],
              [[st.name, st.mode, st.status, st.budget,
                sum(s.trials[c].status == "done" for c in st.cases), sum(s.trials[c].status == "failed" for c in st.cases),
                sum(s.trials[c].status == "cancelled" for c in st.cases), len(st.survivors),
                _ns(stage_best(s, st)), _ns(stage_best(s, st, "tns_ps"))] for st in s.stages])
    for st in s.stages:
        if st.agreement:
            doc.p(f"{st.name}: {agreement_line(st.agreement)}")
    shown = [d for d in s.decisions if d["action"] != "order_ecos"]
    if shown:
        doc.h("Decisions")
        doc.table(["stage", "decision", "why"],
                  [[s.stages[d["stage"]].name if d.get("stage") is not None and d["stage"] < len(s.stages) else "—",
                    decision_text(d["action"], d["subject"]), d["reason"]] for d in shown])
    planned = sum(st.budget for st in s.stages)
    skipped = sum(st.budget for st in s.stages if st.status == "skipped")
    not_run = sum(1 for t in s.trials.values() if t.status == "cancelled" and
                  str((t.failure or {}).get("reason", "")).startswith("not run"))
    reused = sum(1 for t in s.trials.values() if (t.resources or {}).get("reused_from"))
    if skipped or not_run or reused:
        doc.p(f"Of {planned} planned trials, {skipped + not_run} were not run (early stops: {skipped} in stages "
              f"skipped, {not_run} after a stage stopped early) and {reused} took an identical trial's result "
              "instead of running the tool.")


SHOW_CHANGES = 200  # rows of the change list in the report page; the file has them all


def _winner(doc: Doc, s: StudyState, changes: tuple[str, list[list[str]]] | None, lineage_svg: bool) -> None:
    best = best_case(s)
    if best is not None:
        doc.h("The winner's lineage")
        chain = lineage(s, best.case_id)
        doc.table(["case", "stage", "ECO", "WNS ns", "Δ WNS ns", "TNS ns", "proof"],
                  [[t.case_id, s.stages[t.stage].name if t.stage >= 0 else "base", eco_call(t),
                    _ns((t.metrics or {}).get("wns_ps")),
                    wns_delta((t.metrics or {}).get("wns_ps"), (s.trials[t.parent].metrics or {}).get("wns_ps")) if t.parent else "",
                    _ns((t.metrics or {}).get("tns_ps")),
                    ("proven" if t.proof["proven"] else "NOT proven") if t.proof else ""] for t in chain])
        doc.p(f"How it was made, from which inputs, by which tools and commands: provenance-{best.case_id}.json "
              f"(and .md) beside this page; `noodle2 provenance {s.name}-DIR {best.case_id} --verify` re-checks every "
              "hash and replays the chain in sta.")
    if changes is not None:
        head, body = changes
        doc.h("The winner's changes against the base netlist")
        doc.p(f"{head}.  winner_changes.md lists them; winner_replay.tcl applies them to the base netlist in sta."
              if body else "The winner's netlist is the base netlist: no change.")
        if body:
            doc.table(["change", "where", "what"], body[:SHOW_CHANGES])
        if len(body) > SHOW_CHANGES:
            doc.p(f"… {len(body) - SHOW_CHANGES} more in winner_changes.md")
    if lineage_svg:
        doc.h("Lineage")
        what = "every case" if len(s.trials) <= DRAW_ALL else "every stage's survivors and their ancestors (lineage.dot has every case)"
        doc.img("lineage.svg", f"{what} from its parent, labelled with its ECO and ΔWNS; the winner's path in bold")


def node_rows(s: StudyState, seen: list[dict[str, Any]]) -> list[list[Any]]:
    """Per Ray node: trials run, busy time, utilisation of its CPUs over the study, and whether
    it was lost (in one journaled cluster status, missing from a later one)."""
    by: dict[str, list[float]] = {}
    for t in s.trials.values():
        node = (t.resources or {}).get("node")
        if node and t.status in ("done", "failed"):
            by.setdefault(node.split(":")[-1], []).append((t.resources or {}).get("wall_s") or 0.0)
    cpus = {n["id"]: n.get("cpus", 0) for c in seen for n in c.get("node_list", [])}
    host = {n["id"]: n.get("host", "") for c in seen for n in c.get("node_list", [])}
    lost = {n["id"] for i, c in enumerate(seen) for n in c.get("node_list", [])
            if any(n["id"] not in {m["id"] for m in later.get("node_list", [])} for later in seen[i + 1:])}
    span = (s.last_event_at or 0) - (s.started_at or 0)
    rows = []
    for node in sorted(set(by) | {k for k, v in cpus.items() if v}):
        busy = sum(by.get(node, []))
        util = f"{100 * busy / (span * cpus[node]):.0f}%" if span > 0 and cpus.get(node) else "—"
        rows.append([f"{host.get(node, '')}/{node}", len(by.get(node, [])), f"{busy:.1f}", util,
                     "lost" if node in lost else ""])
    return rows


def _nodes(doc: Doc, d: Path, s: StudyState) -> None:
    if s.cluster is None:
        return
    from noodle2.engine.journal.store import JOURNAL, read_events

    events = read_events(d / JOURNAL, 0, final=False).events
    seen = [{"node_list": e.node_list} for e in events if e.type == "cluster_status"]
    lost_trials = sum(1 for e in events if e.type == "trial_failed" and e.failure.get("type") == "worker_lost")
    doc.h("Ray nodes")
    doc.table(["node", "trials run", "busy s", "utilisation", "lost"], node_rows(s, seen))
    doc.p(f"{lost_trials} trial attempt(s) lost their worker and ran again" if lost_trials else
          "No trial lost its worker.")


def _learned(doc: Doc, s: StudyState) -> None:
    """Per ECO and parameter, what the trials measured; the recommendation for the next study."""
    from noodle2.engine.policy.learn import lessons, recommendations, study_ranking

    obj, got = lessons(s, study_ranking(s))
    doc.h("What was learned")
    g = (lambda v: fmt_metric(obj, v, sign=True, unit=False))
    doc.table(["ECO", "trials", "failed", f"mean gain {metric_axis(obj, column=True)}", "spread", "best gain",
               "best values", "better third spans", "verdict"],
              [[e.eco, e.trials, e.failed, g(e.mean), g(e.spread).lstrip("+"), g(e.best),
                ", ".join(f"{p.name}={fmt_num(p.best_value)}" for p in e.params) or "—",
                ", ".join(f"{p.name} {fmt_num(p.keep[0])}–{fmt_num(p.keep[1])}" for p in e.params if p.keep) or "—",
                "drop" if e.drop else "keep"] for e in got])
    doc.p("Gain: each trial's change of " + obj + " over its parent, in the direction the ranking prefers.  "
          "Recommendation: " + "; ".join(recommendations(obj, got)) + ".  `noodle2 suggest DIR` writes the next "
          "study file from it.")


def _ecos_and_safety(doc: Doc, s: StudyState) -> None:
    doc.h("ECO leaderboard")
    doc.table(["ECO", "prior", "trials", "improved", "failed", "mean ΔWNS ns", "best ΔWNS ns"],
              [[r["eco"], r["prior"], r["trials"], r["successes"], r["failures"],
                fmt_metric("wns_ps", r.get("mean_dwns"), sign=True, unit=False),
                fmt_metric("wns_ps", r.get("best_dwns"), sign=True, unit=False)] for r in s.eco_stats])
    _learned(doc, s)
    doc.h("Safety trace")
    gates = Counter((g["gate"], g["result"]) for g in s.gates)
    names = sorted({g for g, _ in gates})
    doc.table(["gate", "passed", "failed"], [[g, gates[(g, "pass")], gates[(g, "fail")]] for g in names])
    doc.h("Failures by class")
    fails = Counter(((t.failure or {}).get("type", "?"), t.eco) for t in s.trials.values() if t.status == "failed")
    doc.table(["class", "ECO", "trials"], [[k, e, n] for (k, e), n in sorted(fails.items())] or [["(none)", "", 0]])


# --- the other files ------------------------------------------------------------------------------

def trials_csv(s: StudyState) -> str:
    """One row per trial: case, stage, parent, ECO, status, failure class, every param and metric."""
    trials = sorted(s.trials.values(), key=lambda t: (t.stage, t.index))
    params = sorted({k for t in trials for k in t.params})
    metrics = sorted({k for t in trials for k, v in (t.metrics or {}).items() if isinstance(v, (int, float))})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["case", "stage", "parent", "eco", "status", "failure", *[f"param.{p}" for p in params], *metrics])
    for t in trials:
        w.writerow([t.case_id, s.stages[t.stage].name if t.stage >= 0 else "base", t.parent or "", t.eco, t.status,
                    (t.failure or {}).get("type", ""), *[t.params.get(p, "") for p in params],
                    *[(t.metrics or {}).get(m, "") for m in metrics]])
    return buf.getvalue()


DRAW_ALL = 60  # cases: above this the report draws the decisions, not every trial


def render_svg(dot_text: str, out: Path) -> str | None:
    """lineage.svg with Graphviz; why not, when it is not installed or fails."""
    if shutil.which("dot") is None:
        return "Graphviz `dot` is not installed (sudo apt-get install graphviz): lineage.dot only"
    try:
        r = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "dot took over 120 s: lineage.dot only"
    if r.returncode:
        return f"dot failed: {r.stderr.decode(errors='replace')[:300]}"
    atomic_write(out, r.stdout)
    return None


def put(path: Path, text: str) -> None:
    """A report file, written whole (a symlink in its place is replaced, never followed)."""
    atomic_write(path, text.encode())


def write(d: Path, s: StudyState, out: Path | None = None) -> dict[str, Any]:
    """Every report file into `out` (default <study>/report); returns what was written and skipped."""
    from noodle2.engine.reports import changes, plots
    from noodle2.engine.tools.netlist import NetlistError, parse_netlist

    if out is None:
        out = study_subdir(d, "report")
    else:
        out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    notes: list[str] = []
    put(out / "trials.csv", trials_csv(s))
    written.append("trials.csv")
    dot = lineage_dot(s)
    put(out / "lineage.dot", dot)
    written.append("lineage.dot")
    if len(s.trials) > DRAW_ALL:  # unreadable in a page, and Graphviz takes minutes: the decisions only
        keep = decision_cases(s)
        dot = lineage_dot(s, keep)
        notes.append(f"lineage.svg draws the survivors and their ancestors ({len(keep)} of {len(s.trials)} cases); "
                     "lineage.dot has every case")
    if (why := render_svg(dot, out / "lineage.svg")) is None:
        written.append("lineage.svg")
    else:
        notes.append(why)
    change_rows = None
    best = best_case(s)
    top = (s.spec.get("design") or {}).get("top", "")
    base_v, win_v = d / "snapshot" / f"{top}.v", d / "trials" / (best.case_id if best else "") / f"{top}.v"
    if best is not None and base_v.is_file() and win_v.is_file():
        try:
            base_n, win_n = parse_netlist(base_v.read_text()), parse_netlist(win_v.read_text())
            c = changes.diff(base_n, win_n)
            change_rows = changes.rows(c)
            put(out / "winner_changes.md", f"# {best.case_id}: changes against the base netlist\n\n" + changes.table_md(c))
            put(out / "winner_replay.tcl", changes.replay_tcl(c, *replay_frame(d, out, s, top)))
            written += ["winner_changes.md", "winner_replay.tcl"]
        except (NetlistError, ValueError) as e:
            notes.append(f"no change list: {e}")
    if best is not None:  # how the winner was made, linked from the page
        from noodle2.engine.reports import provenance

        got = provenance.write(d, s, best, out)
        written += [got["json"].name, got["md"].name]
    images, skipped = plots.render_all(s, out)
    written += [p for p, _ in images]
    doc = build(d, s, images, skipped, change_rows, "lineage.svg" in written)
    if skipped:
        notes.append(skipped)
    if notes:
        doc.p("Notes: " + "; ".join(notes))
    put(out / "summary.md", to_md(doc))
    put(out / "summary.html", to_html(doc, out))
    written += ["summary.md", "summary.html"]
    return {"out": str(out), "written": written, "notes": notes}


def replay_frame(d: Path, out: Path, s: StudyState, top: str) -> tuple[str, str]:
    """The replay script's head and tail: read the base from the study's snapshot, time it after."""
    import os

    from noodle2.engine.quote import tcl_word
    from noodle2.engine.tools.timing.design import snapshot_timing_libs

    snap = d / "snapshot"
    libs = snapshot_timing_libs(snap)
    rel = (lambda p: tcl_word(os.path.relpath(p, out)))
    head = "\n".join([f"# noodle2: the winner of {s.name} as edits on the base netlist; run from this directory:",
                      "#   sta -no_init -no_splash -exit winner_replay.tcl",
                      *(f"read_liberty {rel(p)}" for p in libs), f"read_verilog {rel(snap / (top + '.v'))}",
                      f"link_design {tcl_word(top)}", f"read_sdc {rel(snap / (top + '.sdc'))}"])
    tail = "\n".join(["report_wns -digits 3", "report_tns -digits 3", "write_verilog winner_replayed.v"])
    return head, tail

