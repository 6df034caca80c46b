"""Technologies: a name in the study file resolves to Liberty files per corner, a LEF and cell
Verilog, and the facts a flow needs about its cells (do-not-use, tie, tap, fill, decap, diode,
endcap), each technology described by its `tech.toml` beside this file.

The OSU processes come from Debian's qflow-tech-* packages.  Nangate45, SKY130hd and ASAP7 ship
in this folder as the .lib.gz files of their public repositories (PROVENANCE.md, their
LICENSE files); OpenSTA 2.0.17 reads no .lib.gz, so each is decompressed at first use into
the cache (`$NOODLE2_CACHE/tech`), checked against the sha256 in its tech.toml.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from noodle2.engine.errors import N2Error
from noodle2.engine.fsutil import cache_root

HERE = Path(__file__).resolve().parent
KINDS = ("tap", "fill", "decap", "diode", "endcap")  # physical-only cells: no logic, never an ECO's


@dataclass(frozen=True)
class Tech:
    name: str
    liberty: tuple[Path, ...]  # what trials read for timing (the default corner, VT sets in use), in order
    corners: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # corner -> its files; default first
    default_corner: str = "default"
    lef: Path | None = None
    cells_v: Path | None = None
    time_unit_ps: float = 1000.0  # one Liberty time unit in ps: 1000 for ns, 1 for ps (ASAP7)
    dont_use: tuple[str, ...] = ()  # cell-name patterns noodle2 never chooses
    physical: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> patterns
    tie: tuple[str, ...] = ()
    qflow: bool = False  # qflow can place and route it (the route modes)
    description: str = ""

    def is_dont_use(self, cell: str) -> bool:
        return any(fnmatch.fnmatchcase(cell, p) for p in self.dont_use)

    def physical_kind(self, cell: str) -> str | None:
        """tap, fill, decap, diode or endcap when the technology names the cell so."""
        return next((k for k, pats in self.physical.items() if any(fnmatch.fnmatchcase(cell, p) for p in pats)), None)


def names() -> list[str]:
    """Every technology noodle2 knows, installed or not."""
    return sorted(p.parent.name for p in HERE.glob("*/tech.toml"))


@lru_cache(maxsize=None)
def facts(name: str) -> dict:
    path = HERE / name / "tech.toml"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or not path.is_file():
        raise N2Error.one("N2-E301", f"unknown technology {name!r}", "design.tech",
                          hint=f"use one of {', '.join(names())}, or give liberty = [\"my.lib\", ...]")
    return tomllib.loads(path.read_text())


def resolve_tech(name: str | None, liberty: list[Path] | None, *, dont_use: tuple[str, ...] = (),
                 vt: bool = False) -> Tech:
    """Explicit Liberty files (a user's own PDK) win over the named technology.  `vt`: read the
    technology's other threshold-voltage sets too (vt_swap needs them loaded)."""
    if liberty:
        paths = list(liberty)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise N2Error.one("N2-E301", f"Liberty file(s) not found: {', '.join(missing)}", "design.liberty",
                              hint="give existing .lib paths (absolute, or relative to the study file)")
        return Tech(name or "custom", tuple(paths), {"default": tuple(paths)}, "default",
                    time_unit_ps=liberty_time_unit_ps(paths[0]), dont_use=tuple(dont_use))
    if not name:
        raise N2Error.one("N2-E301", "no technology: set design.tech or design.liberty", "design.tech")
    f = facts(name)
    corners = {c: tuple(_files(name, f, pats)) for c, pats in f["corners"].items()}
    default = f["default_corner"]
    corners = {default: corners[default], **{c: v for c, v in corners.items() if c != default}}
    extra = tuple(p for pats in (f.get("vt") or {}).values() for p in _files(name, f, pats)) if vt else ()
    cells = f.get("cells", {})
    root = _root(name, f)
    return Tech(name, corners[default] + extra, corners, default,
                _one(root, "lef") if root else None, _one(root, "v") if root else None,
                1000.0 if f.get("time_unit", "ns") == "ns" else 1.0, tuple(cells.get("dont_use", [])) + tuple(dont_use),
                {k: tuple(cells.get(k, [])) for k in KINDS}, tuple(cells.get("tie", [])), bool(f.get("qflow")),
                f.get("description", ""))


def _root(name: str, f: dict) -> Path | None:
    """Where an installed technology (qflow's) keeps its files; None for one shipped here."""
    if "root" not in f:
        return None
    env = os.environ.get("NOODLE2_TECH_ROOT")
    return Path(env) / name if env else Path(f["root"])


def _files(name: str, f: dict, patterns: list[str]) -> list[Path]:
    root = _root(name, f)
    if root is not None:  # installed: files by pattern in its folder
        found = [p for pat in patterns for p in sorted(root.glob(pat))] if root.is_dir() else []
        if not found:
            raise N2Error.one("N2-E301", f"technology {name!r} not found (looked for {root}/{patterns[0]})",
                              "design.tech", hint=f"install it with {f.get('install', 'its package')}")
        return found
    return [unpacked(HERE / name / p, f.get("sha256", {}).get(p.removesuffix(".gz"))) for p in patterns]


def _one(d: Path, ext: str) -> Path | None:
    found = sorted(d.glob(f"*_stdcells.{ext}")) if d.is_dir() else []
    return found[0] if found else None


@lru_cache(maxsize=None)
def unpacked(gz: Path, sha256: str | None) -> Path:
    """`gz` decompressed into the cache, made once (atomically) and checked against `sha256`."""
    name = gz.name.removesuffix(".gz")
    out = cache_root() / "tech" / f"{gz.parent.name}-{(sha256 or _digest(gz))[:16]}" / name
    if out.is_file() and out.stat().st_size > 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
        if sha256 is not None and h.hexdigest() != sha256:
            raise N2Error.one("N2-E301", f"{gz} does not decompress to the file its tech.toml names (sha256 differs)",
                              hint="reinstall noodle2: a shipped technology file is damaged")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def liberty_time_unit_ps(path: Path) -> float:
    """A Liberty's time_unit in ps (1ns -> 1000), read from its header; ns when it says nothing."""
    with open(path, "rb") as f:
        head = f.read(1 << 16).decode(errors="replace")
    m = re.search(r'time_unit\s*:\s*"?\s*([0-9.]+)\s*([munpf]?s)', head)
    if not m:
        return 1000.0
    return float(m.group(1)) * {"s": 1e12, "ms": 1e9, "us": 1e6, "ns": 1e3, "ps": 1.0, "fs": 1e-3}[m.group(2)]


def detect(cells: set[str]) -> list[tuple[str, int]]:
    """Which technologies a netlist's cells fit: (name, cells its Liberty lacks), best first;
    physical-only cells (by the technology's names) count as known.  Technologies that are not
    installed are left out."""
    from noodle2.engine.tools.tech.liberty import liberty_cell_names

    out = []
    for name in names():
        try:
            tech = resolve_tech(name, None)
        except N2Error:
            continue
        have = liberty_cell_names(tuple(tech.corners[tech.default_corner]))
        out.append((name, sum(1 for c in cells if c not in have and not tech.physical_kind(c))))
    return sorted(out, key=lambda x: (x[1], x[0]))
