"""resynth_cone: re-synthesise the fan-in cone of the worst endpoints for delay.

One trial runs, in its own directory and process group:

1. `sta select.tcl`: the combinational cells within `depth` levels before the worst `paths`
   endpoints (objects walked in sta; their names are written to cone.txt for this driver);
2. the cone becomes a module of its own (cone.v), its boundary nets its ports;
3. Yosys maps it again with ABC for delay (a balancing and rewriting script, then gate sizing);
4. the new cone is spliced back in place of the old one (spliced.v), its nets renamed apart;
5. `sta` times the spliced netlist; it is kept only if WNS/TNS improve and it is proven
   equivalent to the parent (engine.tools.equiv), else the parent netlist goes on unchanged;
6. `sta run.tcl`, the ordinary trial script, measures the result; this driver exits with its rc.

With `warm` in resynth.json the three sta scripts run in one warm worker of the driver's own
(tools/timing/worker.tcl, the protocol the engine's warm workers speak), so the Liberty is read
once per trial instead of three times; the worker is the driver's child, in its process group
and cgroup, and ends with it.  A worker that dies mid-script leaves that script to a cold run.

    python -m engine.tools.resynth resynth.json
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from noodle2.engine.tools.netlist import Bit, Netlist, parse_netlist, write_netlist
from noodle2.engine.tools.tech.liberty import Library, load_set
from noodle2.engine.tools.timing import STA_ARGV, WORKER_ARGV

ABC_SCRIPT = ("+strash;dc2;balance -l;rewrite -l;refactor -l;balance -l;rewrite -z -l;balance -l;dch -f;"
              "map -D {d};topo;buffer;upsize -D {d};dnsize -D {d}")


def cone_module(n: Netlist, lib: Library, cone: set[str]) -> tuple[Netlist, dict[str, Bit]]:
    """The cone's instances as a module: inputs are the nets it reads but does not drive,
    outputs the nets it drives that anything outside reads.  Returns it and port -> bit."""
    driven: set[Bit] = set()
    read: set[Bit] = set()
    for i in cone:
        cell, pins = n.insts[i]
        c = lib.cells[cell]
        for p, b in pins.items():
            if isinstance(b, tuple):
                (driven if p in c.outputs else read).add(b)
    outside: set[Bit] = {b for b in n.outputs if b in driven}
    outside |= {rhs for _, rhs in n.assigns if isinstance(rhs, tuple) and rhs in driven}
    for i, (cell, pins) in n.insts.items():
        if i not in cone:
            outside |= {b for b in pins.values() if isinstance(b, tuple) and b in driven}
    ins = sorted(read - driven, key=str)
    outs = sorted(outside, key=str)
    port = {b: f"i{k}" for k, b in enumerate(ins)} | {b: f"o{k}" for k, b in enumerate(outs)}
    m = Netlist("cone", inputs=[(port[b], None) for b in ins], outputs=[(port[b], None) for b in outs])

    def bit(b):
        if not isinstance(b, tuple):
            return b
        return (port[b], None) if b in port else (f"w.{b[0]}" + ("" if b[1] is None else f"[{b[1]}]"), None)
    for i in sorted(cone):
        cell, pins = n.insts[i]
        m.insts[i] = (cell, {p: bit(b) for p, b in pins.items()})
    return m, {p: b for b, p in port.items()}


def splice(parent: Netlist, cone: set[str], new: Netlist, ports: dict[str, Bit], lib: Library, tag: str) -> Netlist:
    """The parent with the cone's instances replaced by `new`'s.  The new cone drives the
    original output nets itself (no assign statements); an output that is an input, a constant,
    or another output again gets a buffer."""
    out = Netlist(parent.module, list(parent.inputs), list(parent.outputs), dict(parent.widths),
                  {i: v for i, v in parent.insts.items() if i not in cone}, list(parent.assigns))
    alias = {lhs: rhs for lhs, rhs in new.assigns}
    renamed: dict[Bit, Bit] = {}  # a new-cone net -> the original output net it becomes
    feeds: list[tuple[Bit, Bit | int]] = []  # an original output net -> what a buffer copies into it

    def outer(b: Bit | int) -> Bit | int:  # a new-cone net as the parent knows it, if it does
        if isinstance(b, int):
            return b
        if b[0].startswith("i") and b[0] in ports:
            return ports[b[0]]
        return renamed.get(b, (f"{tag}_{re.sub(r'[^A-Za-z0-9_]', '_', b[0])}", None))

    for (name, _) in new.outputs:
        orig, src = ports[name], (name, None)
        while isinstance(src, tuple) and src in alias:
            src = alias[src]
        if isinstance(src, int) or (src[0].startswith("i") and src[0] in ports) or src in renamed:
            feeds.append((orig, outer(src)))
        else:
            renamed[src] = orig
    for k, (i, (cell, pins)) in enumerate(sorted(new.insts.items())):
        out.insts[f"{tag}_{k}"] = (cell, {p: outer(b) for p, b in pins.items()})
    if feeds and not lib.buffers:
        raise ValueError("the new cone needs a buffer and the Liberty has none")
    for k, (orig, src) in enumerate(feeds):
        buf = lib.cells[lib.buffers[-1]]
        out.insts[f"{tag}_feed{k}"] = (buf.name, {buf.inputs[0]: src, buf.outputs[0]: orig})
    return out


STEPS = "sta_steps"  # in the trial directory: a folder per script run warm, removed once read


class Sta:
    """The driver's sta runs: each script's output and exit code.  Warm: one worker for all of
    them, each script run from a folder of its own (`sta_steps/<name>/`, where the worker writes
    its stdout.log) that changes back to the trial directory and sources it; cold: a process each."""

    def __init__(self, here: Path, warm: bool) -> None:
        self.here = here.absolute()  # each script's folder reaches the worker as a whole path
        self.worker: subprocess.Popen[bytes] | None = None
        self.reply = None
        self.runs = {"warm": 0, "cold": 0}
        if warm:
            r, w = os.pipe()
            try:
                self.worker = subprocess.Popen(WORKER_ARGV, cwd=here, stdin=subprocess.PIPE,
                                               env={**os.environ, "N2_REPLY_FD": str(w)}, pass_fds=(w,))
            except OSError:
                os.close(r)
            else:
                self.reply = os.fdopen(r, "r")
            finally:
                os.close(w)

    def run(self, script: str, inherit: bool = False) -> tuple[bytes, int]:
        """The script's output (warm: the worker's one log; cold: stdout, then stderr) and exit
        code.  `inherit`: a cold run writes to the driver's own stdout and stderr (the trial's
        logs) and returns no output."""
        if self.worker is not None:
            got = self._warm(script)
            if got is not None:
                self.runs["warm"] += 1
                return got
            self.close()  # the worker died or refused: this script and the rest run cold
        self.runs["cold"] += 1
        if inherit:
            return b"", subprocess.call([*STA_ARGV, script], cwd=self.here)
        r = subprocess.run([*STA_ARGV, script], cwd=self.here, capture_output=True)
        return r.stdout + r.stderr, r.returncode

    def _warm(self, script: str) -> tuple[bytes, int] | None:
        step = self.here / STEPS / Path(script).stem
        step.mkdir(parents=True, exist_ok=True)
        # the trial's scripts name their files relative to the trial directory
        (step / "run.tcl").write_text(f"cd ../..\nsource {script}\n")
        try:
            self.worker.stdin.write(os.fsencode(step) + b"\n")  # type: ignore[union-attr]
            self.worker.stdin.flush()  # type: ignore[union-attr]
            answer = self.reply.readline().split()  # type: ignore[union-attr]
            if answer == ["n2-ready"]:  # said once, before its first script
                answer = self.reply.readline().split()  # type: ignore[union-attr]
        except OSError:
            return None
        if answer[:1] != ["n2-done"] or len(answer) != 2 or not answer[1].lstrip("-").isdigit():
            return None
        out = (step / "stdout.log").read_bytes()
        shutil.rmtree(step)  # its output goes on to the log a cold run writes
        return out, int(answer[1])

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            self.worker.wait()
            self.reply.close()  # type: ignore[union-attr]
            self.worker = None
            shutil.rmtree(self.here / STEPS, ignore_errors=True)

    def note(self) -> str:
        w, c = self.runs["warm"], self.runs["cold"]
        return f"sta: {w} scripts in one warm worker, {c} cold" if w else f"sta: {c} cold runs"


def _sta(sta: Sta, script: str, log: str) -> str:
    out, _ = sta.run(script)
    (sta.here / log).write_bytes(out)
    return out.decode(errors="replace")


def _slack(text: str) -> tuple[float, float] | None:
    w = re.search(r"^wns\s+(-?[\d.]+)", text, re.M)
    t = re.search(r"^tns\s+(-?[\d.]+)", text, re.M)
    return (float(w.group(1)), float(t.group(1))) if w and t else None


def main(config: Path) -> int:
    cfg = json.loads(config.read_text())
    here = config.parent
    libs = [here / p for p in cfg["libs"]]
    lib = load_set(libs, tuple(cfg.get("dont_use", ())))
    sta = Sta(here, bool(cfg.get("warm")))
    try:
        return _resynth(cfg, here, libs, lib, here / cfg["parent"], sta, [])
    finally:
        sta.close()


def _resynth(cfg: dict, here: Path, libs: list[Path], lib: Library, parent: Path, sta: Sta, notes: list[str]) -> int:
    from noodle2.engine.quote import yosys_word
    from noodle2.engine.tools.proof.equiv import prove
    from noodle2.engine.tools.synthesis.yosys import run_yosys

    kept = 0
    before = _slack(_sta(sta, "select.tcl", "select.log"))
    cone = set((here / "cone.txt").read_text().split()) if (here / "cone.txt").exists() else set()
    net = parse_netlist(parent.read_text())
    cone &= {i for i, (cell, _) in net.insts.items() if cell in lib.cells and not lib.cells[cell].sequential}
    if not cone or before is None:
        notes.append(f"no cone to re-synthesise ({len(cone)} cells)")
    else:
        module, ports = cone_module(net, lib, cone)
        (here / "cone.v").write_text(write_netlist(module))
        d = cfg["delay_target_ps"]
        lib_rel = yosys_word(cfg.get("yosys_lib", cfg["libs"][0]))
        cells_rel = yosys_word(cfg.get("yosys_cells", cfg.get("yosys_lib", cfg["libs"][0])))
        script = (f"read_liberty -ignore_miss_func {cells_rel}\nread_verilog cone.v\nhierarchy -top cone\nflatten\nopt\n"
                  f"abc -liberty {lib_rel} -script \"{ABC_SCRIPT.format(d=d)}\"\nopt_clean -purge\n"
                  "write_verilog -noattr -noexpr cone_new.v\n")
        try:
            run_yosys(script, here, "resynth", cfg["timeout_s"])
            new = parse_netlist((here / "cone_new.v").read_text())
            spliced = splice(net, cone, new, ports, lib, f"n2r_{cfg['case_id']}")
            (here / "spliced.v").write_text(write_netlist(spliced))
            after = _slack(_sta(sta, "time.tcl", "time.log"))
            notes.append(f"cone {len(cone)} cells -> {len(new.insts)}; WNS/TNS {before} -> {after}")
            if after is not None and (after[0] > before[0] + 1e-6 and after[1] >= before[1] - 1e-6
                                      or after[0] >= before[0] - 1e-6 and after[1] > before[1] + 1e-6):
                proof = prove(parent, here / "spliced.v", libs, lib, here / "equiv")
                notes.append(f"proof: {proof.proven} ({proof.method}, {proof.seconds:.2f} s) {proof.detail}")
                if proof.proven:
                    kept = len(new.insts)
            else:
                notes.append("timing did not improve: the parent goes on unchanged")
        except Exception as e:  # noqa: BLE001 - any failure of the rewrite leaves the parent as it was
            notes.append(f"re-synthesis failed, parent kept: {type(e).__name__}: {e}")
    shutil.copyfile(here / "spliced.v" if kept else parent, here / "resynth.v")
    (here / "resynth.count").write_text(str(kept))
    (here / "resynth.log").write_text("\n".join(notes) + "\n")
    print("\n".join(f"N2RESYNTH {n}" for n in notes), flush=True)
    out, rc = sta.run("run.tcl", inherit=True)
    sys.stdout.buffer.write(out)  # a warm run's output to the trial's stdout.log, where a cold one writes
    sys.stdout.flush()
    with open(here / "resynth.log", "a") as f:
        f.write(sta.note() + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
