"""Technologies: a name in the study file resolves to Liberty, LEF and cell Verilog."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import N2Error

INSTALL = {"osu018": "sudo apt-get install qflow-tech-osu018", "osu035": "sudo apt-get install qflow-tech-osu035",
           "osu050": "sudo apt-get install qflow-tech-osu050"}


@dataclass(frozen=True)
class Tech:
    name: str
    liberty: list[Path]
    lef: Path | None
    cells_v: Path | None


def resolve_tech(name: str | None, liberty: list[Path] | None) -> Tech:
    """Explicit Liberty files (a user's own PDK) win over the named technology."""
    if liberty:
        paths = list(liberty)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise N2Error.one("N2-E301", f"Liberty file(s) not found: {', '.join(missing)}", "design.liberty",
                              hint="give existing .lib paths (absolute, or relative to the study file)")
        return Tech(name or "custom", paths, None, None)
    if not name:
        raise N2Error.one("N2-E301", "no technology: set design.tech or design.liberty", "design.tech")
    d = Path(os.environ.get("NOODLE2_TECH_ROOT", "/usr/share/qflow/tech")) / name
    lib = _one(d, "lib")  # qflow names them osu018_stdcells.lib, but osu05_stdcells.lib for osu050
    if lib is None:
        how = INSTALL.get(name, f"install the qflow tech package that provides {d}")
        raise N2Error.one("N2-E301", f"technology {name!r} not found (looked for {d}/*_stdcells.lib)", "design.tech",
                          hint=f"install it: {how}")
    return Tech(name, [lib], _one(d, "lef"), _one(d, "v"))


def _one(d: Path, ext: str) -> Path | None:
    found = sorted(d.glob(f"*_stdcells.{ext}")) if d.is_dir() else []
    return found[0] if found else None
