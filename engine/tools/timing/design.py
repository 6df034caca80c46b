"""The design every OpenSTA trial reads: the technology's Liberty per corner, the netlist, the
SDC and the SPEF, as the study directory's snapshot keeps them, and the Tcl that reads them.

`sta` runs in the trial directory and every path in its script is relative to it and quoted
(`tcl_word`): the script never holds the study's absolute location.  The Liberty files are
copied into <study>/snapshot/tech, hashed with the snapshot, and checked before every trial.
"""
from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from noodle2.engine.errors import N2Error
from noodle2.engine.fsutil import link_or_copy
from noodle2.engine.quote import safe_name, tcl_word
from noodle2.engine.study.models import Study, stored_name
from noodle2.engine.tools.base import TrialFailure
from noodle2.engine.tools.netlist import cell_usage, pinless_cells
from noodle2.engine.tools.synthesis.yosys import synthesise, tool_version
from noodle2.engine.tools.tech import Tech, resolve_tech
from noodle2.engine.tools.tech.liberty import LibertyError, Library, cells_text, merged_text, tcl_facts
from noodle2.engine.tools.tech.liberty import load_set as load_liberty_set
from noodle2.engine.tools.timing.sdc import SDC_COMMANDS
from noodle2.engine.tools.timing.spef import wire_estimates

Quote = Callable[[Path], str]  # a path as a Tcl word, relative to where sta runs
YOSYS_LIB, YOSYS_CELLS = "yosys.lib", "yosys_cells.lib"  # in snapshot/tech beside the copies; Yosys's, not sta's


def snapshot_timing_libs(snapshot: Path) -> list[Path]:
    """The Liberty copies in a study's snapshot that OpenSTA reads (the files only Yosys reads left out)."""
    return sorted(p for p in (snapshot / "tech").glob("*.lib") if p.name not in (YOSYS_LIB, YOSYS_CELLS))


class StaDesign:
    def __init__(self, study: Study, study_dir: Path) -> None:
        d = study.spec.design
        self.study = study
        self.dir = study_dir
        self.top = d.top
        # where the Liberty comes from; trials read the snapshot's copies
        self.tech: Tech = resolve_tech(d.tech, [study.resolve(p) for p in d.liberty] if d.liberty else None,
                                       dont_use=tuple(d.dont_use), vt=any("vt_swap" in st.ecos for st in study.spec.stages))
        self.snapshot = study_dir / "snapshot"
        self.sdc = self.snapshot / f"{self.top}.sdc"
        self.netlist = self.snapshot / f"{self.top}.v"
        self.corner_sources = self._corners()  # corner name -> its Liberty files (empty: one corner)
        self.lib_copies = self._copies([*self.tech.liberty, *(f for fs in self.corner_sources.values() for f in fs)])
        self.libs = [self.lib_copies[p] for p in self.tech.liberty]  # the default corner: facts, area, proofs
        self.corner_libs = {c: [self.lib_copies[p] for p in fs] for c, fs in self.corner_sources.items()}
        self.raw_sdc = study.spec.study.safety_domain == "sandbox"
        self.lef = self.snapshot / "tech" / safe_name(self.tech.lef.name) if self.tech.lef is not None else None
        self.spef = self.snapshot / f"{self.top}.spef" if d.parasitics else None
        # what Yosys maps onto (synthesis, cone re-synthesis): the default threshold voltage only, one
        # file, or its files merged without do-not-use cells
        default = self.tech.corners[self.tech.default_corner]
        self.synth_libs = [self.lib_copies[p] for p in self.tech.liberty if p in default]
        merged = len(self.synth_libs) > 1 or bool(self.tech.dont_use)
        self.yosys_lib = self.snapshot / "tech" / YOSYS_LIB if merged else self.synth_libs[0]
        self.yosys_cells = self.snapshot / "tech" / YOSYS_CELLS  # the same cells, no tables: read_liberty
        self.wires = self.snapshot / "parasitics.tcl"  # estimates for nets an ECO makes
        self._facts: tuple[Library, str] | None = None  # the facts' Tcl, and the library it was written from

    def _corners(self) -> dict[str, list[Path]]:
        d, tech = self.study.spec.design, self.tech
        out: dict[str, list[Path]] = {}
        for c in d.corners:
            if c.liberty:
                out[c.name] = [self.study.resolve(p) for p in c.liberty]
                continue
            name = c.corner or c.name
            if name not in tech.corners:
                raise N2Error.one("N2-E123", f"corner {c.name}: technology {tech.name} has no corner {name!r}",
                                  "design.corners", hint=f"use one of {', '.join(tech.corners)}")
            extra = [p for p in tech.liberty if p not in tech.corners[tech.default_corner]]
            out[c.name] = list(tech.corners[name]) + (extra if name == tech.default_corner else [])
        return out

    def _copies(self, sources: list[Path]) -> dict[Path, Path]:
        """Each Liberty file's copy in snapshot/tech, under a safe name no other copy has."""
        copies: dict[Path, Path] = {}
        for p in sources:
            if p not in copies:
                n = safe_name(p.name)
                taken = n in (YOSYS_LIB, YOSYS_CELLS) or any(c.name == n for c in copies.values())
                copies[p] = self.snapshot / "tech" / (f"{len(copies)}_{n}" if taken else n)
        return copies

    def library(self) -> Library:
        """Every cell the trials can use, one library over all the default corner's files."""
        return load_liberty_set(self.libs, self.tech.dont_use)

    def files(self) -> list[Path]:
        """What the snapshot holds; the LEF too (place and route reads it): all hashed and
        shipped to remote workers."""
        return [self.netlist, self.sdc, *self.lib_copies.values(), *([self.lef] if self.lef is not None else []),
                *([self.yosys_lib] if self.yosys_lib not in self.libs else []), self.yosys_cells,
                *([self.spef, self.wires] if self.spef is not None else [])]

    def input_path(self, given: str) -> Path:
        """A design file as the study directory keeps it (inputs/), not where the user had it."""
        return self.dir / "inputs" / stored_name(given)

    def setup(self) -> dict[str, Any]:
        """Once per study, before the base case: netlist, SDC and Liberty in <study>/snapshot."""
        if shutil.which("sta") is None:
            raise TrialFailure("tool_missing", "OpenSTA `sta` not found; install it: sudo apt-get install opensta")
        if all(p.is_file() for p in self.files()):
            return {}
        d = self.study.spec.design
        (self.snapshot / "tech").mkdir(parents=True, exist_ok=True)
        for src, dst in self.lib_copies.items():
            link_or_copy(src, dst)
        for extra in (self.tech.lef, self.tech.cells_v):
            if extra is not None:
                shutil.copyfile(extra, self.snapshot / "tech" / safe_name(extra.name))
        if self.yosys_lib not in self.libs:
            self.yosys_lib.write_text(merged_text(self.synth_libs, lambda c: c not in self.library().dont_use))
        self.yosys_cells.write_text(cells_text(self.yosys_lib.read_text(errors="replace")))
        prov = self._netlist()
        if d.sdc:
            shutil.copyfile(self.input_path(d.sdc), self.sdc)
        else:
            self.sdc.write_text("")
        if self.spef is not None:
            shutil.copyfile(self.input_path(d.parasitics), self.spef)
            self.wires.write_text(wire_estimates(self.spef, self.library().cap_unit_f))
        self.facts()  # a Liberty whose names cannot reach Tcl is refused here, before the base case
        prov.update({"sta": tool_version(["sta", "-version"]), "liberty": [str(p) for p in self.tech.liberty],
                     "tech": self.tech.name, "sdc_reader": "raw Tcl (sandbox)" if self.raw_sdc else "SDC commands only"})
        return prov

    def _netlist(self) -> dict[str, Any]:
        """The base netlist: the one given, or Yosys' synthesis of the RTL."""
        d = self.study.spec.design
        if d.netlist:
            shutil.copyfile(self.input_path(d.netlist), self.netlist)
            return {"netlist_from": d.netlist, "cells": sum(cell_usage(self.netlist.read_text()).values())}
        incs = [stored_name(x) for x in d.include_dirs]
        return synthesise([self.input_path(r) for r in d.rtl], self.top, self.yosys_lib, self.snapshot,
                          self.study.spec.execution.synth_timeout_s, rels=[stored_name(r) for r in d.rtl],
                          include_dirs=[self.dir / "inputs" / r for r in incs], include_rels=incs,
                          defines=dict(d.defines))

    # --- Tcl that reads it ------------------------------------------------------------------
    def facts(self) -> str:
        """The Liberty's cell facts (families, buffers, commutative pins, threshold voltages) as
        Tcl, from the snapshot's copies read as one library: written once per library read
        (18 ms of Python on sky130hd, which every trial's script would pay again)."""
        lib = self.library()
        done = self._facts
        if done is not None and done[0] is lib:
            return done[1]
        try:
            text = tcl_facts(lib)
        except LibertyError as e:
            raise TrialFailure("tool_error", str(e)) from None
        self._facts = (lib, text)
        return text

    def read(self, rel: Quote, netlist: str, with_liberty: bool = True) -> str:
        """Liberty (per corner, when the study has several), the netlist, the SDC and the SPEF,
        as Tcl; `netlist` is already quoted."""
        head: list[str] = []
        if with_liberty and self.corner_libs:
            names = list(self.corner_libs)
            head = [f"define_corners {' '.join(names)}", f"set n2_corners {{{' '.join(names)}}}"]
            head += [f"read_liberty -corner {c} {rel(p)}" for c, fs in self.corner_libs.items() for p in fs]
        elif with_liberty:
            head = [f"read_liberty {rel(p)}" for p in self.libs]
        out = [*head, f"read_verilog {netlist}", f"link_design {tcl_word(self.top)}", self.read_sdc(rel(self.sdc))]
        if self.spef is not None:  # a parent's new nets get their estimates before anything is timed
            out += [f"read_spef {rel(self.spef)}", f"source {rel(self.wires)}", "n2_estimate_wires"]
        return "\n".join(out)

    def read_sdc(self, word: str) -> str:
        """The Tcl that reads the SDC (a quoted path): raw in sandbox, else the SDC-only reader."""
        if self.raw_sdc:
            return f"n2_read_sdc_raw {word}"
        return f"n2_read_sdc_safe {word} {{{' '.join(sorted(SDC_COMMANDS))}}}"

    # --- cells -----------------------------------------------------------------------------
    def physical_cells(self, usage: Counter[str], text: str) -> tuple[set[str], list[str]]:
        """(physical-only cells, cells neither the Liberty nor the technology knows): a cell is
        physical-only when the Liberty gives it no signal pin, or when it is not in the Liberty
        and the technology names it tap, fill, decap, diode or endcap, or no instance of it
        connects anything (tap cells in a routed netlist)."""
        cells = self.library().cells
        pinless = pinless_cells(text)
        physical, unknown = set(), []
        for c in usage:
            known = cells.get(c)
            if known is not None:
                if not known.inputs and not known.outputs:
                    physical.add(c)
            elif self.tech.physical_kind(c) or c in pinless:
                physical.add(c)
            else:
                unknown.append(c)
        return physical, sorted(unknown)

    def expected_warning(self, line: str) -> bool:
        """Warnings that are expected, not news: sta's black box for a physical-only cell (once
        per cell and process: a warm worker says it in its first trial only), and a SPEF pin an
        ECO has since moved to another net (its net keeps the rest of its extracted wiring, as a
        fresh read of the child netlist does too)."""
        if self.spef is not None and re.search(r"\.spef, line \d+ \S+ not connected to net", line):
            return True
        m = re.search(r"module (\S+) not found\.\s+Creating black box", line)
        if m is None:
            return False
        cell = self.library().cells.get(m.group(1))  # sta skips a Liberty cell with no signal pin
        return cell is None or (not cell.inputs and not cell.outputs)
