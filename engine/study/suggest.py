"""`noodle2 suggest`: the next study, from what this one learned (policy/learn).

The study's own file, with each stage's parameter ranges narrowed to the ranges its better
trials span and the ECOs to drop removed (a stage keeps at least one ECO), written as TOML and
validated before it is kept.  Paths stay relative when the new file sits beside the original,
and become absolute otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noodle2.engine.journal.state import StudyState
from noodle2.engine.policy.learn import EcoLesson, lessons, recommendations
from noodle2.engine.study.models import Study, given_inputs


def to_toml(d: dict[str, Any]) -> str:
    """A plain TOML writer for what a study file holds: top-level tables and arrays of tables,
    everything below them inline (strings as JSON strings, which TOML reads as basic strings)."""
    out: list[str] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += ["", f"[{_key(k)}]", *(f"{_key(x)} = {_value(y)}" for x, y in v.items())]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out += ["", f"[[{_key(k)}]]", *(f"{_key(x)} = {_value(y)}" for x, y in item.items())]
        else:
            out.insert(0, f"{_key(k)} = {_value(v)}")
    return "\n".join(out).strip() + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: str) -> str:
    return k if k and k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def suggested_spec(study: Study, state: StudyState) -> tuple[dict[str, Any], list[str]]:
    """The next study's spec (as a dict of what differs from the defaults) and what changed."""
    spec = study.spec
    obj, got = lessons(state, spec.ranking)
    by = {e.eco: e for e in got}
    d = spec.model_dump(exclude_defaults=True, exclude_none=True)
    d["study"]["name"] = (spec.study.name + "-next")[:64]
    changed = []
    for i, st in enumerate(d["stages"]):
        keep = [e for e in st["ecos"] if not (by.get(e) and by[e].drop)] or [_best(st["ecos"], by)]
        if keep != st["ecos"]:
            changed.append(f"stages[{i}] {st['name']}: ecos {st['ecos']} → {keep}")
        st["ecos"] = keep
        params = st.get("params", {})
        for e in keep:
            for p in by[e].params if e in by else []:
                if p.keep is not None and p.keep != p.tried:
                    lo, hi = p.keep
                    params.setdefault(e, {})[p.name] = {"min": lo, "max": hi} if lo != hi else lo
                    changed.append(f"stages[{i}] {st['name']}: {e}.{p.name} {{min = {lo:g}, max = {hi:g}}}")
        if params:
            st["params"] = {e: v for e, v in params.items() if e in keep}
    return d, changed or recommendations(obj, got)


def _best(ecos: list[str], by: dict[str, EcoLesson]) -> str:
    return max(ecos, key=lambda e: (by[e].best if e in by and by[e].best is not None else float("-inf")))


def absolute_paths(d: dict[str, Any], study: Study, origin: Path) -> None:
    """Every input path of the spec made absolute: as given beside the original study file when
    it is still there, else the study directory's own copy."""
    given = {}
    for _, g in given_inputs(study.spec):
        p = Path(g) if Path(g).is_absolute() else origin / g
        given[g] = str(p.resolve()) if p.exists() else str(study.resolve(g))

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return given.get(x, x) if isinstance(x, str) else x

    d.update(walk(d))


def write(study: Study, state: StudyState, out: Path, origin: Path) -> list[str]:
    """Write the suggested study file to `out` (validated first); returns what changed.
    `study`: the study directory's own copy; `origin`: the folder of the file it came from."""
    from noodle2.engine.fsutil import atomic_write
    from noodle2.engine.study.load import parse_study

    d, changed = suggested_spec(study, state)
    if out.resolve().parent != origin.resolve():
        absolute_paths(d, study, origin)
    head = (f"# Suggested by `noodle2 suggest` from study {study.spec.study.name} ({origin}).\n"
            + "".join(f"# {c}\n" for c in changed) + "\n")
    text = head + to_toml(d)
    parse_study(text, out)  # an N2Error here says what is wrong, before anything is written
    atomic_write(out, text.encode())
    return changed
