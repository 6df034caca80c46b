"""[priors] import: leaderboards of earlier studies, read back as priors."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from noodle2.engine.errors import N2Error, Problem, validation_reason
from noodle2.engine.study.models import Study

MAX_IMPORT_BYTES = 16 << 20


class ImportedRow(BaseModel):
    model_config = ConfigDict(extra="ignore")
    eco: str
    trials: Annotated[int, Field(ge=0)] = 0
    successes: Annotated[int, Field(ge=0)] = 0
    failures: Annotated[int, Field(ge=0)] = 0
    sum_dwns: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    sum_dtns: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    measured: Annotated[int, Field(ge=0)] = 0


def import_sources(study: Study) -> list[Path]:
    """Each `priors.import_from` entry as a leaderboard file, resolved against the study file
    (a study directory stands for its eco_leaderboard.json)."""
    out = []
    for src in study.spec.priors.import_from:
        p = study.resolve(src)
        out.append(p / "eco_leaderboard.json" if p.is_dir() else p)
    return out


def _read_import(f: Path) -> list[ImportedRow]:
    from noodle2.engine.fsutil import read_capped

    rows = orjson.loads(read_capped(f, MAX_IMPORT_BYTES))
    if not isinstance(rows, list):
        raise ValueError("is not a leaderboard (a JSON list of ECO rows)")
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(ImportedRow.model_validate(r))
        except ValueError as e:
            raise ValueError(f"row {i}: {validation_reason(e)}") from None
    return out


def import_problems(study: Study) -> list[Problem]:
    out = []
    for i, f in enumerate(import_sources(study)):
        try:
            _read_import(f)
        except (OSError, ValueError) as e:  # JSON and validation errors are ValueErrors
            why = e.strerror if isinstance(e, OSError) and e.strerror else validation_reason(e)
            out.append(Problem("N2-E207", f"cannot import priors from {f}: {why}", f"priors.import_from[{i}]"))
    return out


def load_imported_priors(study: Study) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for f in import_sources(study):
        try:
            rows = _read_import(f)
        except (OSError, ValueError) as e:
            raise N2Error.one("N2-E207", f"cannot import priors from {f}: {e}", "priors.import_from") from None
        for r in rows:
            m = merged.setdefault(r.eco, {"trials": 0, "successes": 0, "failures": 0, "sum_dwns": 0.0,
                                          "sum_dtns": 0.0, "measured": 0})
            for k in m:
                m[k] += getattr(r, k)
    return merged


def imported_provenance(study: Study) -> list[dict[str, str]]:
    return [{"from": str(f), "sha256": hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else ""}
            for f in import_sources(study)]
