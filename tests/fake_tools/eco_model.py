#!/usr/bin/env python3
"""A tiny deterministic stand-in for an ECO tool, for engine tests only.

Reads its parent's design.json (read-only), applies the ECO as arithmetic on a pretend
design, writes design.json and metrics.json.  Metrics depend only on the lineage, so an
interrupted-and-resumed study must reproduce an uninterrupted one exactly.
"""
import hashlib
import json
import os
import time

trial = json.load(open("trial.json"))
parent = os.path.join(trial["parent_dir"], "design.json")
start = float(os.environ.get("N2_FAKE_BASE_WNS", "-2000"))  # slack of the base design, in ps
design = json.load(open(parent)) if os.path.exists(parent) else {"wns_ps": start, "area_um2": 10000.0, "history": []}
h = int(hashlib.sha256(json.dumps([design["history"], trial["eco"], trial["params"]], sort_keys=True).encode()).hexdigest()[:8], 16)
gain = (h % 200) - 60  # most ECOs help a little, some hurt
if trial["eco"] != "noop":
    design = {"wns_ps": design["wns_ps"] + gain, "area_um2": design["area_um2"] + (h % 50),
              "history": design["history"] + [trial["case_id"]]}
delay = float(os.environ.get("N2_FAKE_DELAY", "0"))
if delay:
    time.sleep(delay * (1 + (h % 5) / 5))
log = os.environ.get("N2_FAKE_RUNLOG")
if log:
    with open(log, "a") as f:
        f.write(trial["case_id"] + "\n")
json.dump(design, open("design.json", "w"))
w = min(design["wns_ps"], 0.0)  # as sta reports it: 0 once timing is met; ws_ps keeps the slack
json.dump({"wns_ps": w, "ws_ps": design["wns_ps"], "tns_ps": w * 7, "area_um2": design["area_um2"]},
          open("metrics.json", "w"))
print(f"{trial['case_id']}: {trial['eco']} -> wns {design['wns_ps']}")
