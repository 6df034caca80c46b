"""`noodle2 compare A B`: two studies side by side — best metrics (better or worse, coloured on a
terminal), ECO effectiveness from each study's journaled leaderboard, and the winners' change
lists against their base netlists."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from noodle2.engine.fmt import fmt_metric
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.changes import Changes, diff
from noodle2.engine.reports.status import best_case
from noodle2.engine.reports.summary import HEADLINE
from noodle2.engine.study.models import maximised

GREEN, RED, DIM, RESET = "\033[32m", "\033[31m", "\033[2m", "\033[0m"


def _changes(d: Path, s: StudyState) -> Changes | None:
    from noodle2.engine.tools.netlist import NetlistError, parse_netlist

    best = best_case(s)
    top = (s.spec.get("design") or {}).get("top", "")
    if best is None:
        return None
    try:
        return diff(parse_netlist((d / "snapshot" / f"{top}.v").read_text()),
                    parse_netlist((d / "trials" / best.case_id / f"{top}.v").read_text()))
    except (OSError, NetlistError):
        return None


def _short(name: str, most: int = 64) -> str:
    return name if len(name) <= most else name[:most - 1] + "…"


def _different_designs(a: tuple[Path, StudyState], b: tuple[Path, StudyState]) -> str | None:
    """Why two studies do not time the same design (top, technology, base netlist), or None."""
    def ident(d: Path, s: StudyState) -> tuple[str, str, str]:
        design = s.spec.get("design") or {}
        top = design.get("top", "")
        try:
            sha = hashlib.sha256((d / "snapshot" / f"{top}.v").read_bytes()).hexdigest()
        except OSError:
            sha = ""
        return top, str(design.get("tech") or design.get("liberty") or ""), sha
    (ta, xa, ha), (tb, xb, hb) = ident(*a), ident(*b)
    if (ta, xa) != (tb, xb):
        return f"{ta} on {xa} against {tb} on {xb}"
    if ha and hb and ha != hb:
        return f"{ta} on {xa} in both, from different base netlists"
    return None


def compare(a: tuple[Path, StudyState], b: tuple[Path, StudyState], colour: bool) -> str:
    (da, sa), (db, sb) = a, b

    def paint(text: str, better: bool | None) -> str:
        if not colour or better is None:
            return text
        return f"{GREEN if better else RED}{text}{RESET}"
    ba, bb = best_case(sa), best_case(sb)
    ma, mb = (ba.metrics or {}) if ba else {}, (bb.metrics or {}) if bb else {}
    w = 24
    names = [f"A: {sa.name}", f"B: {sb.name}", _short(da.resolve().name), _short(db.resolve().name)]
    c = max(22, *(len(x) + 2 for x in names))  # never cut a name: the column grows (two spaces between)
    out = [f"{'':{w}} {names[0]:>{c}} {names[1]:>{c}}   B against A",
           f"{'study dir':{w}} {names[2]:>{c}} {names[3]:>{c}}",
           f"{'status':{w}} {sa.status:>{c}} {sb.status:>{c}}",
           f"{'best case':{w}} {(ba.case_id if ba else '—'):>{c}} {(bb.case_id if bb else '—'):>{c}}",
           f"{'trials finished':{w}} {sa.counts()[0]:>{c}} {sb.counts()[0]:>{c}}"]
    if (why := _different_designs((da, sa), (db, sb))) is not None:
        out.insert(0, f"{paint('warning:', False)} A and B are different designs ({why}): the rows below are not "
                      "like for like")
    for key, label, scale, digits in HEADLINE:
        va, vb = ma.get(key), mb.get(key)
        if not isinstance(va, (int, float)) and not isinstance(vb, (int, float)):
            continue
        fa = f"{va * scale:,.{digits}f}" if isinstance(va, (int, float)) else "—"
        fb = f"{vb * scale:,.{digits}f}" if isinstance(vb, (int, float)) else "—"
        verdict, better = "", None
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va != vb:
            better = (vb > va) == bool(maximised(key))
            verdict = f"{(vb - va) * scale:+,.{digits}f} {'better' if better else 'worse'}"
        elif isinstance(va, (int, float)) and va == vb:
            verdict = "same"
        out.append(f"{label:{w}} {fa:>{c}} {paint(f'{fb:>{c}}', better)}   {paint(verdict, better)}")
    if ("pre_wns_ps" in ma) != ("pre_wns_ps" in mb):
        out.append(f"  note: {'A' if 'pre_wns_ps' in ma else 'B'}'s best was timed after routing, the other's before: "
                   "the timing rows are not like for like")
    out += ["", "ECO effectiveness (each study's leaderboard: trials, improved, mean ΔWNS ns)"]
    rows_a = {r["eco"]: r for r in sa.eco_stats}
    rows_b = {r["eco"]: r for r in sb.eco_stats}
    for eco in sorted(set(rows_a) | set(rows_b)):
        def cell(r: dict[str, Any] | None) -> str:
            if r is None:
                return "—"
            mean = fmt_metric("wns_ps", r.get("mean_dwns"), sign=True, unit=False)
            return f"{r['trials']:>3} {r['successes']:>3} {mean:>8}"
        ra, rb = rows_a.get(eco), rows_b.get(eco)
        better = None
        if ra and rb and ra.get("mean_dwns") is not None and rb.get("mean_dwns") is not None \
                and ra["mean_dwns"] != rb["mean_dwns"]:
            better = rb["mean_dwns"] > ra["mean_dwns"]
        out.append(f"  {eco:{w - 2}} {cell(ra):>{c}} {paint(f'{cell(rb):>{c}}', better)}")
    out += ["", "the winners' changes against their base netlists"]
    for tag, d, s in (("A", da, sa), ("B", db, sb)):
        c = _changes(d, s)
        if c is None:
            out.append(f"  {tag}: (no winner netlist)")
        else:
            out.append(f"  {tag}: {len(c.resized)} resized, {len(c.added)} added, {len(c.swapped)} pin swaps, "
                       f"{len(c.reconnected)} reconnected pins, {len(c.removed)} removed")
            for i, old, new in c.resized[:5]:
                out.append(f"     {DIM if colour else ''}resize {i}: {old} → {new}{RESET if colour else ''}")
    return "\n".join(out) + "\n"
