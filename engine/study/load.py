"""Reading a study file: TOML (tomllib) into the models, every problem at once with its line."""
from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from noodle2.engine.catalog.ecos import CATALOG
from noodle2.engine.errors import N2Error, Problem
from noodle2.engine.study.models import CustomEco, Stage, Study, StudySpec
from noodle2.engine.study.validate import check_semantics, path_text_problem

MAX_STUDY_BYTES = 4 << 20


def load_study(path: str | os.PathLike[str], *, stored: bool = False) -> Study:
    """A study file: a regular file of at most MAX_STUDY_BYTES (a FIFO or a device is refused,
    never read); a study directory's own copy (`stored`) is never read through a symlink."""
    from noodle2.engine.fsutil import read_capped

    p = Path(path)
    try:
        if (msg := path_text_problem(str(p))) is not None:
            raise N2Error.one("N2-E109", f"study file path {msg}")
        if p.is_dir() and not stored:
            raise N2Error.one("N2-E109", f"{p} is a directory, not a study file", hint="name a .toml study file")
        source = read_capped(p, MAX_STUDY_BYTES, follow=not stored).decode("utf-8")
    except FileNotFoundError:
        raise N2Error.one("N2-E109", f"study file not found: {p}", hint="check the path") from None
    except ValueError as e:
        if isinstance(e, UnicodeDecodeError):
            raise N2Error.one("N2-E100", f"cannot read {p}: it is not UTF-8 text ({e.reason} at byte {e.start})") from None
        raise N2Error.one("N2-E212" if stored else "N2-E109", f"{p} {e}",
                          hint=None if stored else "name a study file (a regular .toml file)") from None
    except OSError as e:
        raise N2Error.one("N2-E100", f"cannot read {p}: {e.strerror or e}") from None
    return parse_study(source, p, stored=stored)


MAX_KEY_PARTS = 64  # a dotted key or table header deeper than this is no study file (and slow to parse)


def _absurd_keys(source: str) -> Problem | None:
    """A dotted key or table header of thousands of parts: refused before tomllib, whose time
    grows with its square."""
    for no, line in enumerate(source.splitlines(), 1):
        head = line.lstrip()
        key = head[1:head.find("]")] if head.startswith("[") else head.split("=", 1)[0] if "=" in head else ""
        if key.count(".") >= MAX_KEY_PARTS:
            return Problem("N2-E100", f"a key of {key.count('.') + 1} dotted parts; a study file nests a few at most",
                           "", no)
    return None


def parse_study(source: str, path: Path, *, stored: bool = False) -> Study:
    if (absurd := _absurd_keys(source)) is not None:
        raise N2Error([absurd])
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise N2Error([Problem("N2-E100", str(e), "", int(m.group(1)) if m else None)]) from None
    except RecursionError:
        raise N2Error.one("N2-E100", "the file nests arrays or tables too deeply to be a study file",
                          hint="a study file nests a few levels at most; check for runaway brackets") from None
    lines = _key_lines(source)
    try:
        spec, problems = StudySpec.model_validate(raw), []
    except ValidationError as e:  # go on with the parts that are valid: report everything at once
        problems = [_problem_from_pydantic(err, lines) for err in e.errors()]
        spec = _lenient(raw)
    if not problems:
        spec, found = resolve_custom(spec, path.resolve().parent, stored)
        problems += [_with_line(p, lines) for p in found]
    study = Study(spec, path.resolve(), source, stored)
    problems += [_with_line(p, lines) for p in check_semantics(study)]
    if problems:
        raise N2Error(problems)
    return Study(expand_repeats(spec), path.resolve(), source, stored)


def resolve_custom(spec: StudySpec, root: Path, stored: bool) -> tuple[StudySpec, list[Problem]]:
    """Every custom ECO and metric into the spec: inline ones, one per *.toml in eco_dirs, and
    plugins' (entry points noodle2.ecos / noodle2.metrics) that the study names.  Done once at
    parse time, so the spec hash covers them and policy code never reads a file."""
    c = spec.custom
    problems: list[Problem] = []
    ecos, metrics = list(c.ecos), list(c.metrics)
    for i, given in enumerate(c.eco_dirs):
        norm = os.path.normpath(given)
        if os.path.isabs(norm) or norm == ".." or norm.startswith("../"):
            problems.append(Problem("N2-E121", f"eco_dirs entry {given!r} leaves the study file's folder",
                                    f"custom.eco_dirs[{i}]", hint="keep ECO files beside the study file"))
            continue
        folder = root / norm
        if not folder.is_dir():
            problems.append(Problem("N2-E121", f"{given} is not a folder", f"custom.eco_dirs[{i}]"))
            continue
        for f in sorted(folder.glob("*.toml")):
            rel = f"{norm}/{f.name}"
            try:
                ecos.append(CustomEco.model_validate({**tomllib.loads(f.read_text(encoding="utf-8")),
                                                      "source": f"file:{rel}"}))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                problems.append(Problem("N2-E121", f"{rel}: {e}", f"custom.eco_dirs[{i}]"))
            except ValidationError as e:
                err = e.errors()[0]
                problems.append(Problem("N2-E121", f"{rel}: {'.'.join(map(str, err['loc']))}: {err['msg']}",
                                        f"custom.eco_dirs[{i}]"))
    named = {e for st in spec.stages for e in st.ecos} - set(CATALOG) - {e.name for e in ecos}
    if named:
        from noodle2.engine.study.plugins import plugin_ecos

        for e in plugin_ecos():
            if e.name in named:
                ecos.append(e)
    if c.plugin_metrics:
        from noodle2.engine.study.plugins import plugin_metrics

        have = {m.name: m for m in plugin_metrics()}
        for i, name in enumerate(c.plugin_metrics):
            if name in have:
                metrics.append(have[name])
            else:
                problems.append(Problem("N2-E121", f"no installed plugin provides the metric {name!r}",
                                        f"custom.plugin_metrics[{i}]", hint="pip install the plugin, or remove it"))
    directions = {m.name: m.direction for m in metrics if m.name not in spec.ranking.directions}
    custom = c.model_copy(update={"ecos": ecos, "metrics": metrics})
    ranking = spec.ranking.model_copy(update={"directions": {**spec.ranking.directions, **directions}})
    return spec.model_copy(update={"custom": custom, "ranking": ranking}), problems


def _lenient(raw: Any) -> StudySpec:
    """A spec holding only what validates: a section that does not is None, and so is each
    stage that does not, so the checks of every other part still run."""
    raw = raw if isinstance(raw, dict) else {}
    parts: dict[str, Any] = {}
    for key, field in StudySpec.model_fields.items():
        if key == "stages":
            items = raw.get("stages") if isinstance(raw.get("stages"), list) else []
            parts[key] = [_valid(Stage, x) for x in items]
        elif key in raw:
            parts[key] = _valid(field.annotation, raw[key])
        else:
            parts[key] = None if field.is_required() else field.default
    return StudySpec.model_construct(**parts)


def _valid(model: Any, value: Any) -> Any:
    """The part as validated; failing that, validated again without its faulty keys (an unknown
    or mistyped key must not hide what the rest of the section says)."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        if not isinstance(value, dict):
            return None
        bad = {err["loc"][0] for err in e.errors() if err["loc"]}
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in bad})
        except ValidationError:
            return None


def expand_repeats(spec: StudySpec) -> StudySpec:
    """`repeat = N` becomes N stages name.1 ... name.N, each after the one before; stages that
    named the repeated stage in `after` wait for its last copy."""
    if all(st.repeat == 1 for st in spec.stages):
        return spec
    last = {st.name: f"{st.name}.{st.repeat}" if st.repeat > 1 else st.name for st in spec.stages}
    out = []
    for st in spec.stages:
        after = [last[a] for a in st.after] if st.after is not None else None
        if st.repeat == 1:
            out.append(st.model_copy(update={"after": after}))
            continue
        for k in range(1, st.repeat + 1):
            prev = None if k == 1 else [f"{st.name}.{k - 1}"]
            out.append(st.model_copy(update={"name": f"{st.name}.{k}", "repeat": 1,
                                             "after": after if k == 1 else prev}))
    return spec.model_copy(update={"stages": out})


_TYPE_CODES = {"missing": "N2-E101", "extra_forbidden": "N2-E105"}
_RANGE_TYPES = ("greater_than", "less_than", "too_short", "too_long", "string_pattern_mismatch")


def _problem_from_pydantic(err: dict[str, Any], lines: dict[tuple, int]) -> Problem:
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in ("int", "float", "list[float]", "dict[str,float]")))
    t = err["type"]
    code = _TYPE_CODES.get(t) or ("N2-E103" if t.startswith(_RANGE_TYPES) else "N2-E102")
    msg = err["msg"]
    hint = None
    if t == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}"
        if near := difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1, cutoff=0.75):
            hint = f"did you mean {near[0]!r}?"
    elif t == "missing":
        msg = f"required key {loc[-1]!r} is missing"
    elif "input" in err and t != "missing":
        msg = f"{msg} (got {_short(err['input'])})"
    return Problem(code, msg, _dotted(loc), _lookup_line(loc, lines), hint)


@functools.cache
def _known_keys() -> tuple[str, ...]:
    """Every key any table of a study file may hold, for "did you mean"."""
    seen: set[type] = set()
    keys: set[str] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, f in model.model_fields.items():
            keys.add(f.alias or name)
            for t in _types_in(f.annotation):
                walk(t)

    walk(StudySpec)
    return tuple(sorted(keys))


def _types_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for a in typing.get_args(annotation) for t in _types_in(a)]


def _with_line(p: Problem, lines: dict[tuple, int]) -> Problem:
    loc = tuple(int(x) if x.isdigit() else x for x in re.findall(r"[^.\[\]]+", p.path))
    return Problem(p.code, p.message, p.path, _lookup_line(loc, lines), p.hint)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _dotted(loc: tuple) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def _lookup_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")


def _key_lines(source: str) -> dict[tuple, int]:
    """Map key paths to 1-based line numbers.  tomllib keeps no positions, so scan the text;
    arrays of tables are numbered by occurrence (`[[stages]]` #2 -> ("stages", 1))."""
    out: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    table: tuple = ()
    for no, line in enumerate(source.splitlines(), 1):
        if m := _HEADER.match(line):
            parts = tuple(x.strip().strip("\"'") for x in m.group(2).split("."))
            resolved: tuple = ()
            for k in parts[:-1]:  # nested under the latest element of any array table
                resolved += (k,)
                if resolved in counts:
                    resolved += (counts[resolved],)
            resolved += (parts[-1],)
            if m.group(1) == "[[":
                counts[resolved] = counts.get(resolved, -1) + 1
                out.setdefault(resolved, no)
                resolved += (counts[resolved],)
            table = resolved
            out.setdefault(table, no)
        elif m := _KEY.match(line):
            key = table + tuple(x.strip("\"'") for x in m.group(1).split("."))
            out.setdefault(key, no)
    return out
