"""The study file `noodle2 init` writes: complete, commented, valid and runnable as it is."""
from __future__ import annotations

import os
import re
from pathlib import Path

from noodle2.engine import DATA
from noodle2.engine.errors import N2Error

SAMPLES = DATA / "sample_studies"


def tech_names() -> list[str]:
    from noodle2.engine.tools.tech import names

    return names()


def _tech_of(netlist: Path) -> str:
    """The technology whose Liberty has every cell of the netlist (physical-only ones aside)."""
    from noodle2.engine.tools.netlist import cell_usage
    from noodle2.engine.tools.tech import detect

    cells = set(cell_usage(netlist.read_text(errors="replace")))
    fits = detect(cells)
    if fits and fits[0][1] == 0:
        return fits[0][0]
    near = f" (closest: {fits[0][0]}, which lacks {fits[0][1]} of them)" if fits else ""
    raise N2Error.one("N2-E124", f"no technology noodle2 knows has the {len(cells)} cells of {netlist}{near}",
                      hint="give --tech, or write liberty = [\"your.lib\"] in the study file for your own cells")


def _path(p: Path, folder: Path) -> str:
    """Relative to the study file when it lives below it, else absolute."""
    p = p.resolve()
    return os.path.relpath(p, folder) if p.is_relative_to(folder) else str(p)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def study_file(folder: Path, *, rtl: list[Path] | None = None, netlist: Path | None = None, top: str | None = None,
               sdc: Path | None = None, tech: str | None = None, template: str | None = None) -> str:
    """The study file `noodle2 init` writes into `folder`: the sample design unless one is given;
    its stages (and ranking, verify, abort) from `template` when one is named (templates())."""
    folder = folder.resolve()
    rtl, top, sdc, tech = _inputs(rtl, netlist, top, sdc, tech)
    source = (f"rtl = [{', '.join(_quote(_path(p, folder)) for p in rtl)}]  # synthesised by Yosys onto the tech"
              if rtl else f"netlist = {_quote(_path(netlist, folder))}  # a gate-level netlist on the tech's cells")
    text = _text(top, tech, source, _quote(_path(sdc, folder)))
    return text if template in (None, "generic") else with_template(text, template)


# The design half of a study file stays the one init writes; a template gives the rest.
DESIGN_TABLES = ("[study]", "[design]", "[safety]")


def template_dirs() -> list[Path]:
    """Where a user's templates live: $NOODLE2_TEMPLATES, else ~/.config/noodle2/templates."""
    if os.environ.get("NOODLE2_TEMPLATES"):
        return [Path(os.environ["NOODLE2_TEMPLATES"]).expanduser()]
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [base / "noodle2" / "templates"]


def templates() -> dict[str, Path | None]:
    """Template name -> its file: `generic` (the file init writes, kept whole), `climb` (the
    100-trial template the sample studies share), then every *.toml in the user's folder."""
    out: dict[str, Path | None] = {"generic": None, "climb": SAMPLES / "mac16.toml"}
    for d in template_dirs():
        if d.is_dir():
            out.update({p.stem: p for p in sorted(d.glob("*.toml"))})
    return out


def _blocks(text: str) -> list[tuple[str, str]]:
    """(table header, its text) in order; the text before the first header has header ''."""
    out: list[tuple[str, str]] = []
    head, lines = "", []
    for line in text.splitlines(keepends=True):
        m = re.match(r"\s*(\[\[?[^\]]+\]\]?)", line)
        if m and not line.lstrip().startswith("#"):
            out.append((head, "".join(lines)))
            head, lines = m.group(1).replace(" ", ""), []
        lines.append(line)
    out.append((head, "".join(lines)))
    return out


def _root(header: str) -> str:
    return "[" + header.strip("[]").split(".")[0] + "]"


def with_template(text: str, name: str) -> str:
    """init's own [study], [design] and [safety], then everything else from template `name`."""
    known = templates()
    if name not in known:
        raise N2Error.one("N2-E128", f"no template {name!r}",
                          hint=f"use one of: {', '.join(known)} (yours go in {template_dirs()[0]})")
    path = known[name]
    try:
        theirs = path.read_text(errors="strict")  # type: ignore[union-attr]
    except (OSError, UnicodeDecodeError) as e:
        raise N2Error.one("N2-E128", f"template {name!r} ({path}) cannot be read: {e}") from None
    mine = "".join(t for h, t in _blocks(text) if h == "" or _root(h) in DESIGN_TABLES)
    domain = re.search(r'^\s*safety_domain\s*=\s*"(sandbox|guarded|locked)"', theirs, re.M)
    if domain:  # the template's ECOs may need its domain (the climb template re-synthesises: sandbox)
        mine = re.sub(r'^safety_domain = "\w+"', f'safety_domain = "{domain.group(1)}"', mine, count=1, flags=re.M)
    if goal := re.search(r"^\s*goal\s*=.*$", theirs, re.M):  # when the template stops early, so does the study
        mine = re.sub(r"^(seed = .*)$", lambda m: m.group(1) + "\n" + goal.group(0).strip(), mine, count=1, flags=re.M)
    rest = "".join(t for h, t in _blocks(theirs) if h and _root(h) not in DESIGN_TABLES)
    if "[[stages]]" not in rest:
        raise N2Error.one("N2-E128", f"template {name!r} ({path}) has no [[stages]]",
                          hint="a template is a study file: its [[stages]] (and [ranking], [abort], ...) are used")
    return mine.rstrip() + f"\n\n# From template {name!r}" + (f" ({path})" if path else "") + ".\n" + rest


def _inputs(rtl: list[Path] | None, netlist: Path | None, top: str | None, sdc: Path | None,
            tech: str | None) -> tuple[list[Path] | None, str, Path, str]:
    if tech is None:
        tech = _tech_of(netlist) if netlist is not None and netlist.is_file() else "osu018"
    if not rtl and netlist is None:
        rtl = [SAMPLES / "designs" / "mac16" / "mac16.v"]
        sdc = sdc or SAMPLES / "designs" / "mac16" / "mac16.sdc"
        top = top or "mac16"
    if sdc is None:
        raise N2Error.one("N2-E101", "give --sdc with your design: without a clock there is no timing to close",
                          hint="add --sdc FILE: the design's constraints (create_clock at least)")
    if top is None and netlist is not None:
        m = re.search(r"^\s*module\s+(\\?\S+?)\s*[(;]", netlist.read_text(errors="replace"), re.M)
        top = m.group(1) if m else None
    if top is None:
        found = [m for r in rtl or [] if r.is_file()
                 for m in re.findall(r"^\s*module\s+\\?([^\s(#;]+)", r.read_text(errors="replace"), re.M)]
        raise N2Error.one("N2-E101", "give --top: the top module of your RTL",
                          hint=f"add --top NAME; the RTL defines {', '.join(found[:8])}" if found
                          else "add --top NAME: the module the design's ports are on")
    for p in [*(rtl or []), *([netlist] if netlist else []), sdc]:
        if not p.is_file():
            raise N2Error.one("N2-E109", f"{p} does not exist")
    return rtl, top, sdc, tech


def _text(top: str, tech: str, source: str, sdc: str) -> str:
    """One template, kept whole: it reads as the file it writes."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", top) or "study"
    if not name[0].isalpha():
        name = "s" + name
    return f'''# A noodle2 study file (docs/study-file.md has every key, its type, default and meaning).
# Check it with `noodle2 validate FILE`; run it with `noodle2 run FILE` (console) or with
# `--unattended` (one line per trial).  Paths are relative to this file, or absolute.

[study]
name = {_quote(name[:64])}
description = "ECO study of {top}"
author = ""
tags = []
safety_domain = "guarded"  # sandbox | guarded | locked: which ECO classes may run (README)
seed = 1                   # same file + same seed = same plan, whatever the concurrency

[design]
top = {_quote(top)}
tech = {_quote(tech)}  # {" | ".join(tech_names())}; or liberty = ["my.lib"]
{source}
sdc = {sdc}  # guarded and locked read only SDC commands from it

[execution]
# max_parallel = 2        # tools at once (default: the CPUs this process may use)
# executor = "ray"        # trials on a Ray cluster (pip install 'noodle2[ray]'); see address
# address = "local"       # ray: "local" starts one here, "auto" joins this machine's, or host:port
soft_timeout_s = 120      # SIGTERM to a trial's process group after this; SIGKILL a little later
retries = 1               # re-runs of a trial that crashed, timed out or ran out of memory

[ranking]
kind = "single"           # single | weighted | lexicographic | pareto
objective = "wns_ps"      # worst negative slack, ps: larger is better

[verify]
equivalence = "survivors" # prove every survivor equivalent to its parent before promoting it

[abort]
eco_failure_limit = 3     # an ECO failing this often is disabled for the rest of the study

# Stages run in order (or after = ["name"] for branches); each runs `trials` trials on the
# previous stage's survivors and keeps the best `survivors`.  `noodle2 ecos` lists the ECOs.
# The first repairs nets over their capacitance, transition or fanout limits, as a flow does
# before it tunes paths; on a design without such nets it changes nothing.
[[stages]]
name = "repair"
mode = "sta"
trials = 1
survivors = 1
keep_parents = true
ecos = ["repair_design"]

[[stages]]
name = "explore"
mode = "sta"              # sta | sta_power
trials = 8
survivors = 3
ecos = ["buffer_fanout", "clone_driver", "pin_swap", "resize_critical"]

[[stages]]
name = "refine"
mode = "sta"
trials = 6
survivors = 2
keep_parents = true       # the parents compete too: a stage never loses ground
ecos = ["buffer_fanout", "pin_swap", "resize_critical"]

[[stages]]
name = "polish"
mode = "sta_power"
trials = 4
survivors = 1
ecos = ["pin_swap", "downsize_noncritical"]
'''
