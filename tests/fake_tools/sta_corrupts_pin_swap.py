#!/usr/bin/env python3
"""Fault injection around the real `sta`: after a pin_swap trial, swap the A and C inputs of one
OAI21 in the netlist it wrote (A and C do not commute), as a buggy ECO would."""
import os
import re
import subprocess
import sys

rc = subprocess.call([os.environ["N2_REAL_STA"], *sys.argv[1:]])
header = open("run.tcl").readline()
if ": pin_swap " in header:
    raw = next(f for f in os.listdir(".") if f.endswith(".raw.v"))
    text = open(raw).read()
    m = re.search(r"OAI21X1 (\S+) \(\s*\.A\(([^)]*)\),\s*\.B\(([^)]*)\),\s*\.C\(([^)]*)\)", text)
    if m:
        bad = f"OAI21X1 {m.group(1)} (.A({m.group(4)}),\n    .B({m.group(3)}),\n    .C({m.group(2)})"
        open(raw, "w").write(text[:m.start()] + bad + text[m.end():])
sys.exit(rc)
