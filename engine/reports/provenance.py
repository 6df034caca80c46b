"""`noodle2 provenance`: how one case was made, as a document you can hand to someone.

Every input with its hash, the technology files, the tool versions and the exact command lines,
the study file and its hash, and the chain of cases from the base to the case: each ECO with its
class, parameters, planning seed, proof and outputs, and the journal lines it came from.  All of
it is read from the journal and the study directory; nothing is recomputed.

`verify` re-checks every hash the document names, then replays the chain: each step's netlist
changes (reports/changes) applied by `sta` to its parent's netlist must give the step's netlist,
edit for edit, and on a plain single-corner study the last step's WNS and TNS must be the
journaled ones to the picosecond.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from noodle2.engine.catalog.ecos import CATALOG
from noodle2.engine.errors import N2Error
from noodle2.engine.fmt import fmt_metric, metric_unit
from noodle2.engine.fsutil import read_json_object, sha256_file
from noodle2.engine.journal.state import StudyState, TrialState
from noodle2.engine.journal.store import JOURNAL, read_events
from noodle2.engine.quote import tcl_word
from noodle2.engine.reports.status import best_case, lineage

FORMAT = 1
HEADLINE = ("wns_ps", "tns_ps", "power_total_w", "area_um2", "instances")


def pick_case(s: StudyState, case: str | None) -> TrialState:
    """The named case, or the winner; a coded error for a case the study does not have."""
    if case is None:
        best = best_case(s)
        if best is None:
            raise N2Error.one("N2-E216", f"study {s.name} has no finished case yet",
                              hint="give a case by name once one has finished (`noodle2 status DIR` lists them)")
        return best
    t = s.trials.get(case)
    if t is None:
        near = sorted(s.trials)[:5]
        raise N2Error.one("N2-E216", f"study {s.name} has no case {case!r}",
                          hint=f"case names look like {', '.join(near)}")
    return t


def _journal_ranges(d: Path, cases: set[str]) -> tuple[dict[str, list[int]], int]:
    """case -> [first, last] journal seq of its events, and the journal's last seq."""
    out: dict[str, list[int]] = {}
    last = 0
    for e in read_events(d / JOURNAL, 0, final=False).events:
        last = e.seq
        c = getattr(e, "case_id", None)
        if c in cases:
            r = out.setdefault(c, [e.seq, e.seq])
            r[1] = e.seq
    return out, last


def build(d: Path, s: StudyState, t: TrialState) -> dict[str, Any]:
    """The provenance document of case `t` in the study at `d`."""
    prov = read_json_object(d / "provenance.json")
    snap = prov.get("snapshot") or {}
    chain = lineage(s, t.case_id)
    ranges, last_seq = _journal_ranges(d, {c.case_id for c in chain})
    seed = (s.spec.get("study") or {}).get("seed")
    steps = []
    for c in chain:
        stage = s.stages[c.stage] if 0 <= c.stage < len(s.stages) else None
        eco = CATALOG.get(c.eco)
        steps.append({
            "case": c.case_id, "parent": c.parent, "stage": stage.name if stage else "base",
            "mode": stage.mode if stage else "base", "eco": c.eco, "eco_class": eco.eco_class.value if eco else "custom",
            "params": c.params, "planning_seed": f"{seed}:{c.stage}:{stage.name}" if stage else None,
            "status": c.status, "attempt": c.attempt,
            "metrics": {k: (c.metrics or {}).get(k) for k in HEADLINE if k in (c.metrics or {})},
            "proof": c.proof, "outputs": c.outputs, "directory": c.artifacts or f"trials/{c.case_id}",
            "command": (c.resources or {}).get("command"), "warm_trial": (c.resources or {}).get("warm_trial"),
            "node": (c.resources or {}).get("node"), "journal_seq": ranges.get(c.case_id)})
    return {
        "noodle2_provenance": FORMAT, "case": t.case_id, "study": s.name, "study_dir": str(d),
        "status": t.status, "metrics": {k: v for k, v in (t.metrics or {}).items() if not isinstance(v, (list, dict))},
        "study_file": {"path": "inputs/study.toml", "sha256": prov.get("inputs", {}).get("study.toml"),
                       "spec_hash": s.spec_hash, "copied_from": prov.get("source_study")},
        "inputs": {f"inputs/{k}": v for k, v in sorted(prov.get("inputs", {}).items()) if k != "study.toml"},
        "snapshot": dict(sorted(s.inputs.items())),
        "technology": {"name": snap.get("tech"), "liberty": snap.get("liberty", []),
                       "files": {k: v for k, v in sorted(s.inputs.items()) if k.startswith("snapshot/tech/")}},
        "tools": {k: snap[k] for k in ("sta", "yosys") if k in snap},
        "synthesis_script": snap.get("script"),
        "chain": steps,
        "journal": {"path": JOURNAL, "seq_range": [min((r[0] for r in ranges.values()), default=0),
                                                   max((r[1] for r in ranges.values()), default=0)],
                    "last_seq": last_seq},
        "created": {"study": prov.get("created"), "host": prov.get("host"), "python": prov.get("python")}}


def markdown(doc: dict[str, Any]) -> str:
    """The readable twin of the JSON document."""
    out = [f"# Provenance of {doc['case']} ({doc['study']})", "",
           f"Status **{doc['status']}**; " + ", ".join(f"{metric_unit(k)[0]} {fmt_metric(k, doc['metrics'].get(k))}"
                                                     for k in HEADLINE if k in doc["metrics"]) + ".", "",
           f"Study directory `{doc['study_dir']}`, created {doc['created'].get('study')} on {doc['created'].get('host')}.",
           f"Study file `{doc['study_file']['path']}` sha256 `{doc['study_file']['sha256']}` "
           f"(spec hash `{doc['study_file']['spec_hash'][:16]}`, copied from `{doc['study_file']['copied_from']}`).", "",
           "## The chain from the base", "",
           "| # | case | stage | ECO (class) | parameters | proof | WNS ns | command | journal |",
           "|---|---|---|---|---|---|---|---|---|"]
    for i, st in enumerate(doc["chain"]):
        params = ", ".join(f"{k}={v}" for k, v in st["params"].items()) or "—"
        proof = st["proof"]
        proved = "—" if not proof else f"{'proven' if proof.get('proven') else 'NOT proven'} ({proof.get('method')})"
        seq = st["journal_seq"] or ["?", "?"]
        out.append(f"| {i} | {st['case']} | {st['stage']} | {st['eco']} ({st['eco_class']}) | {params} | {proved} | "
                   f"{fmt_metric('wns_ps', st['metrics'].get('wns_ps'), unit=False)} | `{st['command'] or '—'}` | "
                   f"{seq[0]}–{seq[1]} |")
    out += ["", "Each step ran in its directory (`trials/<case>`); planning seeds are `seed:stage:name`.", "",
            "## Inputs", "", "| file | sha256 |", "|---|---|"]
    out += [f"| {k} | `{v}` |" for k, v in {**doc["inputs"], **doc["snapshot"]}.items()]
    out += ["", "## Tools", ""]
    out += [f"- {k}: {v}" for k, v in doc["tools"].items()] or ["- (not recorded)"]
    if doc["technology"]["name"]:
        out.append(f"- technology: {doc['technology']['name']} ({', '.join(doc['technology']['liberty'])})")
    out += ["", "## Outputs of each step", ""]
    for st in doc["chain"]:
        for rel, sha in st["outputs"].items():
            out.append(f"- {st['directory']}/{rel} `{sha}`")
    out += ["", f"Journal `{doc['journal']['path']}` lines {doc['journal']['seq_range'][0]}–"
                f"{doc['journal']['seq_range'][1]} (of {doc['journal']['last_seq']}).",
            "", f"Re-check: `noodle2 provenance {doc['study_dir']} {doc['case']} --verify`", ""]
    return "\n".join(out)


def _hash_checks(d: Path, doc: dict[str, Any]) -> list[tuple[str, bool, str]]:
    out = []
    files = {doc["study_file"]["path"]: doc["study_file"]["sha256"], **doc["inputs"], **doc["snapshot"]}
    for st in doc["chain"]:
        files.update({f"{st['directory']}/{rel}": sha for rel, sha in st["outputs"].items()})
    for rel, sha in files.items():
        if not sha:
            continue
        try:
            got = sha256_file(d / rel)
        except (OSError, ValueError) as e:
            out.append((f"hash {rel}", False, f"cannot read: {e}"))
            continue
        out.append((f"hash {rel}", got == sha, "matches" if got == sha else f"sha256 {got[:16]}… ≠ recorded {sha[:16]}…"))
    return out


def _replay(d: Path, s: StudyState, doc: dict[str, Any], work: Path) -> list[tuple[str, bool, str]]:
    """Each step's changes replayed by sta on its parent's netlist."""
    from noodle2.engine.reports import changes
    from noodle2.engine.tools.netlist import NetlistError, parse_netlist
    from noodle2.engine.tools.timing.design import snapshot_timing_libs

    top = (s.spec.get("design") or {}).get("top", "")
    snap = d / "snapshot"
    libs = snapshot_timing_libs(snap)
    sta = shutil.which("sta")
    if sta is None:
        return [("replay", False, "OpenSTA (sta) is not on PATH")]
    plain = (len(libs) == 1 and not (snap / f"{top}.spef").exists()
             and not (s.spec.get("design") or {}).get("corners"))
    out = []
    for i, st in enumerate(doc["chain"][1:], 1):
        prev = doc["chain"][i - 1]
        pv = d / prev["directory"] / f"{top}.v"
        cv = d / st["directory"] / f"{top}.v"
        if st["mode"] not in ("sta", "sta_power"):
            out.append((f"replay {st['case']}", True, f"not replayed: a {st['mode']} step (placed and routed)"))
            continue
        try:
            c = changes.diff(parse_netlist(pv.read_text()), parse_netlist(cv.read_text()))
            step = work / st["case"]
            step.mkdir(parents=True)
            head = "\n".join([*(f"read_liberty {tcl_word(str(p))}" for p in libs), f"read_verilog {tcl_word(str(pv))}",
                              f"link_design {tcl_word(top)}", f"read_sdc {tcl_word(str(snap / (top + '.sdc')))}"])
            tail = "report_wns -digits 3\nreport_tns -digits 3\nwrite_verilog replayed.v"
            (step / "replay.tcl").write_text(changes.replay_tcl(c, head, tail))
        except (OSError, NetlistError, ValueError) as e:
            out.append((f"replay {st['case']}", False, f"cannot build the replay: {e}"))
            continue
        r = subprocess.run([sta, "-no_init", "-no_splash", "-exit", "replay.tcl"], cwd=step, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0 or "Error" in r.stdout + r.stderr or not (step / "replayed.v").is_file():
            out.append((f"replay {st['case']}", False, f"sta failed: {(r.stdout + r.stderr)[-300:]}"))
            continue
        same = changes.diff(parse_netlist(cv.read_text()), parse_netlist((step / "replayed.v").read_text())).empty
        what = (f"{len(c.resized)} resized, {len(c.added)} added, {len(c.swapped)} swapped, "
                f"{len(c.reconnected)} reconnected, {len(c.removed)} removed")
        out.append((f"replay {st['case']}", same, f"{what}: " + ("the step's netlist, edit for edit" if same
                                                                  else "the replayed netlist differs from the step's")))
        if plain and i == len(doc["chain"]) - 1:
            out.append(_timing(st, r.stdout))
    if not plain and len(doc["chain"]) > 1:
        out.append(("replay timing", True, "not compared: the study times several corners, SPEF or split Liberty "
                                           "files, which the replay script does not read"))
    return out


def _timing(st: dict[str, Any], stdout: str) -> tuple[str, bool, str]:
    import re

    m = {k: re.search(rf"^{k} (\S+)", stdout, re.M) for k in ("wns", "tns")}
    if not all(m.values()):
        return ("replay timing", False, "sta printed no wns/tns")
    got = {k: round(float(v.group(1)) * 1000) for k, v in m.items() if v}
    want = {"wns": st["metrics"].get("wns_ps"), "tns": st["metrics"].get("tns_ps")}
    ok = all(isinstance(want[k], (int, float)) and round(want[k]) == got[k] for k in got)
    return ("replay timing", ok, f"WNS {got['wns']} ps, TNS {got['tns']} ps; journaled {want['wns']} and {want['tns']}")


def verify(d: Path, s: StudyState, doc: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for every hash, then every replayed step."""
    checks = _hash_checks(d, doc)
    with tempfile.TemporaryDirectory(prefix="n2-verify-") as tmp:
        checks += _replay(d, s, doc, Path(tmp))
    return checks


def write(d: Path, s: StudyState, t: TrialState, out: Path | None = None) -> dict[str, Any]:
    """provenance-<case>.json and .md into `out` (default <study>/report)."""
    import orjson

    from noodle2.engine.fsutil import atomic_write, study_subdir

    out = study_subdir(d, "report") if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    doc = build(d, s, t)
    js, md = out / f"provenance-{t.case_id}.json", out / f"provenance-{t.case_id}.md"
    atomic_write(js, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    atomic_write(md, markdown(doc).encode())
    return {"doc": doc, "json": js, "md": md}
