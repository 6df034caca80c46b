"""Study directories: a fresh, self-contained one per run, and the checks before a resume."""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from noodle2.engine.errors import N2Error, Problem, env_fault
from noodle2.engine.fsutil import atomic_write, read_json_object, sha256_file
from noodle2.engine.journal.state import StudyState
from noodle2.engine.journal.store import INPUTS, recover, require_study_dir
from noodle2.engine.study.load import load_study, parse_study
from noodle2.engine.study.models import Study, given_inputs, stored_name


def new_study_dir(study: Study, root: Path = Path("studies"), explicit: Path | None = None) -> Path:
    """Create <root>/<name>-<timestamp>[-n] holding a copy of every input; a second run never
    overwrites the first.  Made whole or not at all: a failure (a full disk, an unreadable
    input) removes what was made, so no half study directory is left to resume."""
    try:
        d, made = _fresh_dir(study, root, explicit)
    except OSError as e:
        raise env_fault(e, "creating the study directory") or N2Error.one(
            "N2-E206", f"cannot create the study directory: {e.strerror or e}") from None
    try:
        _fill(study, d)
    except BaseException as e:
        shutil.rmtree(d, ignore_errors=True) if made else [_remove(p) for p in d.iterdir()]
        if isinstance(e, OSError):
            raise env_fault(e, "creating the study directory") or N2Error.one(
                "N2-E206", f"cannot create the study directory: {e.strerror or e}"
                f"{f' ({e.filename})' if e.filename else ''}") from None
        raise
    return d.resolve()


def _remove(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def _fill(study: Study, d: Path) -> None:
    inputs = d / INPUTS
    inputs.mkdir()
    hashes = {"study.toml": hashlib.sha256(study.source.encode()).hexdigest()}
    external = {}
    for _, given in given_inputs(study.spec):
        rel = stored_name(given)
        _copy_input(study.resolve(given), inputs / rel)
        hashes[rel] = sha256_file(inputs / rel)
        if rel.startswith("external/"):
            external[rel] = str(study.resolve(given).resolve())
    d_ = study.spec.design
    if d_.rtl and study.spec.tool.kind == "opensta":  # what the RTL includes, laid out as Yosys will find it
        from noodle2.engine.tools.base import TrialFailure
        from noodle2.engine.tools.synthesis.yosys import layout

        try:
            files = layout([study.resolve(r) for r in d_.rtl], [stored_name(r) for r in d_.rtl],
                           [study.resolve(x) for x in d_.include_dirs], [stored_name(x) for x in d_.include_dirs])
        except TrialFailure as e:
            raise N2Error.one("N2-E109", e.failure["reason"], "design.rtl") from None
        for f, rel in files:
            if rel not in hashes:
                _copy_input(f, inputs / rel)
                hashes[rel] = sha256_file(inputs / rel)
        for x in d_.include_dirs:
            (inputs / stored_name(x)).mkdir(parents=True, exist_ok=True)
    from noodle2.engine.study.imports import import_sources, imported_provenance

    for given, f in zip(study.spec.priors.import_from, import_sources(study)):
        rel = stored_name(given)
        dest = inputs / rel / "eco_leaderboard.json" if study.resolve(given).is_dir() else inputs / rel
        _copy_input(f, dest)
        hashes[str(dest.relative_to(inputs))] = sha256_file(dest)
    prov = {"source_study": str(study.path), "spec_hash": study.spec_hash(), "inputs": hashes,
            "external_inputs": external, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "pid": os.getpid(), "python": platform.python_version()}
    from noodle2.engine.policy.safety import legality_report

    if study.spec.priors.import_from:
        prov["priors_imported"] = imported_provenance(study)
    write_provenance(d, prov)
    atomic_write(d / "README.md", readme(study.spec.study.name, str(study.path)).encode())
    atomic_write(d / "legality_report.md", legality_report(study.spec, study.outside_inputs()).encode())
    atomic_write(inputs / "study.toml", study.source.encode("utf-8"))  # last: a study dir is whole once it is here


def readme(name: str, source: str) -> str:
    """What each file of a study directory is, for whoever opens the folder."""
    return f"""# Study directory: {name}

Made by noodle2 from `{source}`.  The journal is the record; everything else is derived from it
or from the inputs, and is rewritten whole (atomically) as the study runs.

| file or folder | what it is |
|---|---|
| `journal.jsonl` | every fact, one JSON event per line, fsynced: the source of truth |
| `checkpoint.json` | the journal folded up to a line, so a resume reads only the rest |
| `provenance.json` | where the study came from: inputs with their sha256, host, tool versions |
| `legality_report.md` | which ECO classes the safety domain allows, checked before anything ran |
| `inputs/` | a copy of the study file and every input it names (read-only) |
| `snapshot/` | the design every trial starts from: netlist, SDC, technology files (read-only) |
| `trials/<case>/` | one folder per case (`<base>_<stage>_<index>`): its Tcl, logs, reports, netlist, `metrics.json`, and `artifact_index.json` naming each file with its case, stage and ECO |
| `stages/<n>-<name>/` | each stage's `summary.json` (plan, survivors, why it ended, timing) and its ranking (`pareto.json`) |
| `eco_leaderboard.md`, `.json` | each ECO's trials, gains and failures |
| `safety_trace.md`, `.jsonl` | every gate the policy checked, in order |
| `lineage.dot` | the case DAG (Graphviz) |
| `control/` | requests to a running engine (pause, stop, cancel) |
| `report/` | `noodle2 report` and `noodle2 provenance` output |

`noodle2 status DIR` summarises it, `noodle2 resume DIR` continues it, `noodle2 report DIR` writes
the report, `noodle2 provenance DIR --verify` re-checks how the winner was made.
"""


def _fresh_dir(study: Study, root: Path, explicit: Path | None) -> tuple[Path, bool]:
    """The new study directory, and whether it was made here (else: an empty one was given)."""
    if explicit is not None:
        if explicit.exists() and not explicit.is_dir():
            raise N2Error.one("N2-E206", f"--study-dir {explicit} is a file, not a directory",
                              hint="pick a new --study-dir; existing results are never touched")
        if explicit.exists() and any(explicit.iterdir()):
            raise N2Error.one("N2-E206", f"{explicit} exists and is not empty",
                              hint="pick a new --study-dir; existing results are never touched")
        made = not explicit.exists()
        explicit.mkdir(parents=True, exist_ok=True)
        return explicit, made
    if root.exists() and not root.is_dir():
        raise N2Error.one("N2-E206", f"--root {root} is a file, not a directory")
    stem = f"{study.spec.study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d, n = root / stem, 1
    while True:
        try:
            d.mkdir(parents=True)
            return d, True
        except FileExistsError:
            n += 1
            d = root / f"{stem}-{n}"


def _copy_input(src: Path, dest: Path) -> None:
    """A copy that is no more readable than its source (a 0600 input stays 0600)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, stat.S_IMODE(os.stat(src).st_mode) & 0o666 | stat.S_IRUSR)


def read_provenance(d: Path) -> dict[str, Any]:
    """provenance.json, or {} when it is missing or unreadable (it informs; the journal decides)."""
    return read_json_object(d / "provenance.json")


def update_provenance(d: Path, more: dict[str, Any]) -> None:
    write_provenance(d, {**read_provenance(d), **more})


def write_provenance(d: Path, prov: dict[str, Any]) -> None:
    atomic_write(d / "provenance.json", orjson.dumps(prov, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def open_for_resume(d: Path, *, ignore_original: bool = False) -> Study:
    """Load the study's own copy, and refuse it if it, its inputs, the snapshot, the netlists
    later trials read, or the original file changed (`ignore_original`: a corrected file is
    being taken instead, see amend_for_resume)."""
    require_study_dir(d)
    study = load_study(d / INPUTS / "study.toml", stored=True)
    rec = recover(d)
    recorded = rec.state.spec
    problems: list[Problem] = []
    if recorded and study.spec_hash() != rec.state.spec_hash and current(recorded) != study.spec.model_dump():
        problems += _changes("inputs/study.toml", recorded, study.spec.model_dump())
    prov = read_provenance(d)
    for rel, h in prov.get("inputs", {}).items():
        if rel != "study.toml" and _hash_or_none(d / INPUTS / rel) != h:
            problems.append(Problem("N2-E202", f"design input {rel} changed since the study started", f"inputs/{rel}"))
    problems += changed_outputs(d, rec.state)
    src = Path(prov.get("source_study", ""))
    if recorded and src.is_file() and not ignore_original:
        try:
            original = load_study(src)
        except N2Error:
            original = None  # a broken original cannot be what the study runs; the copy is
        if original is not None and original.spec_hash() != rec.state.spec_hash \
                and current(recorded) != original.spec.model_dump():
            changed = _changes(str(src), recorded, original.spec.model_dump())
            _, refused = amendable(recorded, original.spec.model_dump(), rec.state)
            if not refused:
                changed = [Problem(p.code, p.message, p.path, hint=(
                    "these changes leave every recorded result as it is: take them with "
                    f"`noodle2 resume {d} --amend {src}`, or undo them")) for p in changed]
            problems += changed
    if problems:
        raise N2Error(problems)
    return study


# What a resume may take from a corrected study file: keys that change how the rest of the study
# runs or is reported, never a result already recorded.
AMENDABLE = ("study.description", "study.author", "study.tags", "execution.", "notify.", "ci.", "physical.png",
             "safety.allow")


def amendable(before: dict, after: dict, s: StudyState) -> tuple[list[str], list[str]]:
    """(changes a resume may take, changes it may not), as `key: old → new` lines.  A custom
    metric may change only while no finished trial has recorded it."""
    a, b = _flatten(before), _flatten(after)
    ok, refused = [], []
    recorded = {k for t in s.trials.values() if t.status == "done" for k in (t.metrics or {})}
    old_m = {m["name"]: m for m in (before.get("custom") or {}).get("metrics", [])}
    new_m = {m["name"]: m for m in (after.get("custom") or {}).get("metrics", [])}
    metrics_changed = {n for n in set(old_m) | set(new_m) if old_m.get(n) != new_m.get(n)}
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        line = f"{k}: {a.get(k, '(absent)')!r} → {b.get(k, '(absent)')!r}"
        if k.startswith(AMENDABLE) or k.startswith("custom.metrics") and not (metrics_changed & recorded):
            ok.append(line)
        elif k.startswith("ranking.directions.") and k.split(".")[-1] in metrics_changed - recorded:
            ok.append(line)  # a custom metric's direction comes with it
        else:
            refused.append(line)
    if metrics_changed & recorded:
        refused.append(f"custom metric(s) {', '.join(sorted(metrics_changed & recorded))} already recorded on "
                       "finished trials")
    return ok, refused


@dataclass(frozen=True)
class Amendment:
    study: Study  # as the engine will run it (its inputs read from the study directory)
    source: str  # the corrected study file's text, the new inputs/study.toml
    changes: list[str]


def amend_for_resume(d: Path, file: Path) -> Amendment:
    """A corrected study file for an interrupted study: every difference from what the journal
    recorded must leave recorded results untouched (AMENDABLE), or N2-E202 names the others.
    Design files are not taken from it: the study keeps its own copies."""
    require_study_dir(d)
    new = load_study(file)
    rec = recover(d)
    ok, refused = amendable(rec.state.spec, new.spec.model_dump(), rec.state)
    if refused:
        raise N2Error([Problem("N2-E202", f"{file} changes what the study already recorded: " + "; ".join(refused[:6]),
                               str(file), hint="a resume takes only changes to execution, notify, ci, descriptions, "
                               "[safety] allow and custom metrics no trial has recorded; start a new study for the rest")])
    if not ok:
        raise N2Error.one("N2-E202", f"{file} is the study as it runs: nothing to amend",
                          hint=f"resume without --amend: noodle2 resume {d}")
    study = parse_study(new.source, d / INPUTS / "study.toml", stored=True)
    return Amendment(study, new.source, ok)


def changed_outputs(d: Path, s: StudyState) -> list[Problem]:
    """The snapshot and every finished trial's outputs that a later trial may still read."""
    files = dict(s.inputs)
    parents = {s.base_case} | {c for st in s.stages if st.status == "done" for c in st.survivors}
    for c in sorted(parents):
        t = s.trials.get(c)
        if t is not None and t.status == "done":
            files.update({f"trials/{c}/{rel}": h for rel, h in t.outputs.items()})
    out = []
    for rel, h in sorted(files.items()):
        if not h:
            continue
        p = d / rel
        got = _hash_or_none(p)
        if got is None:
            out.append(Problem("N2-E202", f"{rel} is missing (or not a regular file); later trials read it", rel,
                               hint="restore it from a backup; noodle2 does not re-run finished trials"))
        elif got != h:
            out.append(Problem("N2-E202", f"{rel} changed since the study recorded it", rel,
                               hint="restore the original; a study's inputs cannot change under it"))
    return out


def _hash_or_none(p: Path) -> str | None:
    try:
        return sha256_file(p)
    except (OSError, ValueError):
        return None


def current(recorded: dict) -> dict:
    """A journaled spec as this version's models write it: a key added since (with its default)
    is not a change to the study."""
    from noodle2.engine.study.models import StudySpec

    try:
        return StudySpec.model_validate(recorded).model_dump()
    except ValueError:
        return recorded


def _changes(where: str, before: dict, after: dict) -> list[Problem]:
    a, b = _flatten(before), _flatten(after)
    diffs = [f"{k}: {a.get(k, '(absent)')!r} → {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    return [Problem("N2-E202", f"{where} changed since the study started: {shown}", where)]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = {}
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: d}
