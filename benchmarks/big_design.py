"""A design of 20k–50k cells end to end: synthesis, the base run, two stages of ECO trials,
every trial proven equivalent to its parent.  Prints the cell count and the time per step, per
trial (its split: tool, collect; and inside the tool, by the trial script's own clock: load,
ECO, timing, write) and per proof, read from the journal and the trials' n2m.txt.

    .venv/bin/python benchmarks/big_design.py [LANES] [TECH]

The design is LANES independent 16x16 multiply-accumulate lanes (40-bit accumulators), written
here as RTL and synthesized by the study itself: 12 lanes give about 21k cells on osu018 and
about 20k on nangate45.  Default: 12 lanes, nangate45 (its typ corner).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import run_study

from noodle2.engine.tools.timing.parsers import parse_n2m

PHASES = ("load", "eco", "timing", "write")

RTL = """// {k} lanes of 16x16 multiply-accumulate, one deep arithmetic cone each.
module mac_array (
    input  wire clk, input wire rst, input wire en,
    input  wire [{w16}:0] a, input wire [{w16}:0] b,
    output reg  [{w40}:0] acc
);
    reg [{w16}:0] ra, rb;
    integer i;
    always @(posedge clk) begin
        ra <= a;
        rb <= b;
        for (i = 0; i < {k}; i = i + 1)
            if (rst) acc[i*40 +: 40] <= 40'd0;
            else if (en) acc[i*40 +: 40] <= acc[i*40 +: 40] + ra[i*16 +: 16] * rb[i*16 +: 16];
    end
endmodule
"""
SDC = """create_clock -name clk -period {period} [get_ports clk]
set_input_delay 0.1 -clock clk [delete_from_list [all_inputs] [get_ports clk]]
set_output_delay 0.1 -clock clk [all_outputs]
"""
STUDY = """
[study]
name = "big"
safety_domain = "sandbox"
seed = 3
[design]
top = "mac_array"
tech = "{tech}"
rtl = ["{dir}/mac_array.v"]
sdc = "{dir}/mac_array.sdc"
[execution]
max_parallel = 2
soft_timeout_s = 1800
[verify]
equivalence = "all"
[[stages]]
name = "explore"
mode = "sta"
trials = 4
survivors = 2
ecos = ["resize_critical", "buffer_fanout", "pin_swap", "clone_driver"]
[[stages]]
name = "refine"
mode = "sta"
trials = 4
survivors = 1
ecos = ["resize_critical", "buffer_fanout"]
"""
PERIOD = {"osu018": 6.0, "nangate45": 1.5}


def main() -> None:
    lanes = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    tech = sys.argv[2] if len(sys.argv) > 2 else "nangate45"
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1], prefix=".bench-") as t:
        tmp = Path(t)
        (tmp / "mac_array.v").write_text(RTL.format(k=lanes, w16=16 * lanes - 1, w40=40 * lanes - 1))
        (tmp / "mac_array.sdc").write_text(SDC.format(period=PERIOD.get(tech, 2.0)))
        eng, status, wall = run_study(STUDY.format(tech=tech, dir=tmp), tmp / "big.toml", tmp / "studies")
        d = eng.dir
        assert status == "complete", (status, eng.state.reason)
        events = [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]
        s = eng.state
        base = s.trials[s.base_case]
        cells = (base.metrics or {}).get("instances") or (base.metrics or {}).get("cells")
        snap = next(e for e in events if e["type"] == "snapshot_ready")
        synth_s = snap["t"] - events[0]["t"]
        print(f"mac_array, {lanes} lanes on {tech}: {cells} cells (base WNS {base.metrics['wns_ps'] / 1000:+.3f} ns)")
        print(f"study wall time {wall:.1f} s, status {status}; synthesis and snapshot {synth_s:.1f} s"
              f"{' (cached)' if snap['info'].get('cache_hit') else ''}")
        started = {e["case_id"]: e["t"] for e in events if e["type"] == "trial_started"}
        exited = {e["case_id"]: e["t"] for e in events if e["type"] == "trial_tool_exited"}
        rows = []
        phases: dict[str, list[float]] = {p: [] for p in PHASES}
        for e in events:
            if e["type"] != "trial_finished":
                continue
            c = e["case_id"]
            r = e["resources"]
            n2m = d / "trials" / c / "n2m.txt"
            if c != s.base_case and not r.get("reused_from") and n2m.exists():
                got = parse_n2m(n2m.read_text())
                for p in PHASES:
                    phases[p].append(got.get(f"phase_{p}_ms", 0.0) / 1000)
            rows.append((c, r.get("wall_s", 0.0), exited.get(c, e["t"]) - started.get(c, e["t"]),
                         e["t"] - exited.get(c, e["t"]), (e["metrics"] or {}).get("wns_ps")))
        proofs = [(e["case_id"], e["seconds"], e["method"], e["proven"]) for e in events if e["type"] == "equivalence_checked"]
        print(f"{'case':<18}{'tool s':>9}{'run s':>9}{'collect+proof s':>17}{'WNS ns':>10}")
        for c, tool_s, run_s, coll_s, wns in rows:
            print(f"{c:<18}{tool_s:>9.2f}{run_s:>9.2f}{coll_s:>17.2f}{(wns or 0) / 1000:>+10.3f}")
        for c, t in s.trials.items():
            if t.status != "done" or (t.resources or {}).get("reused_from"):
                why = (t.failure or {}).get("type") or f"reused {t.resources['reused_from']}"
                print(f"{c:<18}{t.status}: {why} {(t.failure or {}).get('reason', '')[:80]}")
        trials = [r for r in rows if r[0] != s.base_case]
        if trials:
            print(f"per trial: tool {statistics.median(r[1] for r in trials):.2f} s median "
                  f"(max {max(r[1] for r in trials):.2f}), collect+proof {statistics.median(r[3] for r in trials):.2f} s median")
        if phases["load"]:
            print("inside the tool, median s: " + ", ".join(f"{p} {statistics.median(v):.2f}" for p, v in phases.items())
                  + " (load: the Liberty when cold, netlist, SDC and the first full timing; timing: the checks and reports after the ECO)")
        if proofs:
            print(f"proofs: {len(proofs)}, {sum(p[3] for p in proofs)} proven; seconds median "
                  f"{statistics.median(p[1] for p in proofs):.2f}, max {max(p[1] for p in proofs):.2f}; methods "
                  f"{sorted({p[2] for p in proofs})}")


if __name__ == "__main__":
    main()
