"""Study directories: a fresh, self-contained one per run, and the checks before a resume."""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from engine.errors import N2Error, Problem, env_fault
from engine.fsutil import atomic_write
from engine.journal import is_study_dir, recover
from engine.spec import Study, given_inputs, load_study, stored_name
from engine.state import StudyState

INPUTS = "inputs"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def new_study_dir(study: Study, root: Path = Path("studies"), explicit: Path | None = None) -> Path:
    """Create <root>/<name>-<timestamp>[-n] holding a copy of every input; a second run never
    overwrites the first."""
    try:
        d = _fresh_dir(study, root, explicit)
    except OSError as e:
        raise env_fault(e, "creating the study directory") or N2Error.one(
            "N2-E206", f"cannot create the study directory: {e.strerror or e}") from None
    inputs = d / INPUTS
    inputs.mkdir()
    (inputs / "study.toml").write_text(study.source, encoding="utf-8")
    hashes = {"study.toml": hashlib.sha256(study.source.encode()).hexdigest()}
    external = {}
    for _, given in given_inputs(study.spec):
        rel = stored_name(given)
        _copy_input(study.resolve(given), inputs / rel)
        hashes[rel] = sha256(inputs / rel)
        if rel.startswith("external/"):
            external[rel] = str(study.resolve(given).resolve())
    from engine.reports import import_sources, imported_provenance

    for given, f in zip(study.spec.priors.import_from, import_sources(study)):
        rel = stored_name(given)
        dest = inputs / rel / "eco_leaderboard.json" if study.resolve(given).is_dir() else inputs / rel
        _copy_input(f, dest)
        hashes[str(dest.relative_to(inputs))] = sha256(dest)
    prov = {"source_study": str(study.path), "spec_hash": study.spec_hash(), "inputs": hashes,
            "external_inputs": external, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "pid": os.getpid(), "python": platform.python_version()}
    from engine.policy.safety import legality_report

    if study.spec.priors.import_from:
        prov["priors_imported"] = imported_provenance(study)
    write_provenance(d, prov)
    (d / "legality_report.md").write_text(legality_report(study.spec, study.outside_inputs()))
    return d.resolve()


def _fresh_dir(study: Study, root: Path, explicit: Path | None) -> Path:
    if explicit is not None:
        if explicit.exists() and not explicit.is_dir():
            raise N2Error.one("N2-E206", f"--study-dir {explicit} is a file, not a directory",
                              hint="pick a new --study-dir; existing results are never touched")
        if explicit.exists() and any(explicit.iterdir()):
            raise N2Error.one("N2-E206", f"{explicit} exists and is not empty",
                              hint="pick a new --study-dir; existing results are never touched")
        explicit.mkdir(parents=True, exist_ok=True)
        return explicit
    if root.exists() and not root.is_dir():
        raise N2Error.one("N2-E206", f"--root {root} is a file, not a directory")
    stem = f"{study.spec.study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d, n = root / stem, 1
    while True:
        try:
            d.mkdir(parents=True)
            return d
        except FileExistsError:
            n += 1
            d = root / f"{stem}-{n}"


def _copy_input(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def read_provenance(d: Path) -> dict[str, Any]:
    try:
        return orjson.loads((d / "provenance.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def update_provenance(d: Path, more: dict[str, Any]) -> None:
    write_provenance(d, {**read_provenance(d), **more})


def write_provenance(d: Path, prov: dict[str, Any]) -> None:
    atomic_write(d / "provenance.json", orjson.dumps(prov, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def require_study_dir(d: Path) -> None:
    """A study dir has a journal, or at least its inputs (a run killed before its first event)."""
    if not is_study_dir(d) and not (d / INPUTS / "study.toml").is_file():
        raise N2Error.one("N2-E203", f"{d} is not a study directory (no journal.jsonl)")


def open_for_resume(d: Path) -> Study:
    """Load the study's own copy, and refuse it if it, its inputs, the snapshot, the netlists
    later trials read, or the original file changed."""
    require_study_dir(d)
    study = load_study(d / INPUTS / "study.toml", stored=True)
    rec = recover(d)
    recorded = rec.state.spec
    problems: list[Problem] = []
    if recorded and study.spec_hash() != rec.state.spec_hash:
        problems += _changes("inputs/study.toml", recorded, study.spec.model_dump())
    prov = read_provenance(d)
    for rel, h in prov.get("inputs", {}).items():
        if rel != "study.toml" and (not (d / INPUTS / rel).is_file() or sha256(d / INPUTS / rel) != h):
            problems.append(Problem("N2-E202", f"design input {rel} changed since the study started", f"inputs/{rel}"))
    problems += changed_outputs(d, rec.state)
    src = Path(prov.get("source_study", ""))
    if recorded and src.is_file():
        try:
            original = load_study(src)
        except N2Error:
            original = None  # a broken original cannot be what the study runs; the copy is
        if original is not None and original.spec_hash() != rec.state.spec_hash:
            problems += _changes(str(src), recorded, original.spec.model_dump())
    if problems:
        raise N2Error(problems)
    return study


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
        if not p.is_file():
            out.append(Problem("N2-E202", f"{rel} is missing; later trials read it", rel,
                               hint="restore it from a backup; noodle2 does not re-run finished trials"))
        elif sha256(p) != h:
            out.append(Problem("N2-E202", f"{rel} changed since the study recorded it", rel,
                               hint="restore the original; a study's inputs cannot change under it"))
    return out


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
