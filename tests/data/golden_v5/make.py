"""How golden_v5/fake was made (once; never regenerate it: later versions must read these bytes).
Run from the repository root: python tests/data/golden_v5/make.py /tmp/golden3"""
import os
import shutil
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from noodle2.console.follow import send_control
from noodle2.engine.journal import events as ev
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import amend_for_resume, new_study_dir
from noodle2.engine.study.load import load_study
from noodle2.engine.tools import make_tool

work = Path(sys.argv[1])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
tool = work / "crashy.sh"  # crashes the first attempt of golden_0_2, as golden_v1 does
tool.write_text(f"""#!/bin/sh
if [ "$N2_CASE_ID" = "golden_0_2" ] && [ ! -e {work}/crashed ]; then touch {work}/crashed; kill -SEGV $$; fi
exec {sys.executable} {Path(__file__).resolve().parents[2] / 'fake_tools' / 'eco_model.py'}
""")
tool.chmod(0o755)
study_text = f"""[study]
name = "golden"
seed = 7
tags = ["golden"]

[safety]
allow = ["tool_command"]

[design]
top = "golden"

[tool]
kind = "command"
command = ["{tool}"]

[execution]
max_parallel = 1
retries = 1

[ranking]
kind = "pareto"
objectives = ["wns_ps", "area_um2"]

[abort]
eco_failure_limit = 1

[[stages]]
name = "explore"
trials = 6
survivors = 2
ecos = ["resize_critical", "buffer_fanout", "pin_swap"]

[[stages]]
name = "refine"
trials = 4
survivors = 1
ecos = ["clone_driver", "resize_critical", "pin_swap"]
"""
(work / "golden.toml").write_text(study_text)
study = load_study(work / "golden.toml")
d = new_study_dir(study, explicit=work / "fake")
sent = []


def operator(e, s):
    """pause after the base case, resume, cancel golden_0_4 when it starts, stop after stage 0."""
    if isinstance(e, ev.TrialFinished) and e.case_id == "golden" and "pause" not in sent:
        sent.append("pause")
        send_control(d, "pause")
    elif isinstance(e, ev.ControlAck) and e.request == "pause":
        sent.append("resume")
        send_control(d, "resume")
    elif isinstance(e, ev.TrialStarted) and e.case_id == "golden_0_4" and "cancel" not in sent:
        sent.append("cancel")
        send_control(d, "cancel", "golden_0_4")
    elif isinstance(e, ev.StageFinished) and "stop" not in sent:
        sent.append("stop")
        send_control(d, "stop")


os.environ["N2_FAKE_DELAY"] = "0.2"
assert anyio.run(Engine(d, study, make_tool(study, d), listeners=[operator]).run) == "interrupted"
(work / "golden.toml").write_text(study_text.replace("retries = 1", "retries = 2"))
amend = amend_for_resume(d, work / "golden.toml")
assert anyio.run(Engine(d, amend.study, make_tool(amend.study, d), amendment=amend).run) == "complete"
for p in list(d.iterdir()):
    if p.name not in ("journal.jsonl", "checkpoint.json", "inputs", "provenance.json"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
print(d)
