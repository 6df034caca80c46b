"""Old study directories stay readable: the golden journals and checkpoints of every earlier
format fold to the same study (after Optuna's journal log-compatibility test)."""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from noodle2.engine.journal.state import replay
from noodle2.engine.journal.store import CHECKPOINT, JOURNAL, read_events, recover
from noodle2.engine.reports.status import best_case

DATA = Path(__file__).parent / "data"


def _copy(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name.replace("/", "-")
    shutil.copytree(DATA / name, d)
    return d


@pytest.mark.parametrize("name", ["golden_v1/fake", "golden_v1/quickstart"])
def test_an_old_checkpoint_without_a_checksum_is_set_aside_for_the_journal(tmp_path, name):
    d = _copy(tmp_path, name)
    old = recover(d)
    assert not old.from_checkpoint and old.warnings == [
        "checkpoint unusable (ValueError: format 1 carries no checksum); replaying the whole journal"]
    (d / CHECKPOINT).unlink()
    replayed = recover(d)
    assert orjson.dumps(old.state) == orjson.dumps(replayed.state)


@pytest.mark.parametrize("name", ["golden_v3/fake", "golden_v4/fake", "golden_v5/fake"])
def test_checkpoint_and_full_replay_agree(tmp_path, name):
    d = _copy(tmp_path, name)
    from_checkpoint = recover(d)
    assert from_checkpoint.from_checkpoint and not from_checkpoint.warnings
    (d / CHECKPOINT).unlink()
    replayed = recover(d)
    assert not replayed.from_checkpoint and not replayed.warnings
    a, b = from_checkpoint.state, replayed.state
    assert a.status == b.status == "complete"
    assert {c: (t.status, t.metrics) for c, t in a.trials.items()} == {c: (t.status, t.metrics) for c, t in b.trials.items()}
    assert [s.survivors for s in a.stages] == [s.survivors for s in b.stages]
    assert replay(read_events(d / JOURNAL).events).seq == a.seq


def test_golden_fake_study_folds_to_what_happened(tmp_path):
    s = recover(_copy(tmp_path, "golden_v1/fake")).state
    assert s.name == "golden" and s.status == "complete" and s.resumes == 1
    assert [st.survivors for st in s.stages] == [["golden_0_0", "golden_0_5"], ["golden_1_1"]]
    assert s.trials["golden_0_2"].status == "failed" and s.trials["golden_0_2"].failure["type"] == "tool_crash"
    assert s.trials["golden_0_2"].attempt == 2
    assert s.trials["golden_0_4"].status == "cancelled"
    assert s.trials["golden_1_1"].metrics["wns_ps"] == -1858.0
    assert [c["request"] for c in s.controls] == ["pause", "resume", "cancel"]
    assert any(d["action"] == "disable_eco" and d["subject"] == "pin_swap" for d in s.decisions)
    # written before stage_finished carried the study's best: the view decides it as the engine did
    assert s.best == "" and best_case(s).case_id == "golden_0_0"


def test_golden_quickstart_keeps_real_metrics(tmp_path):
    s = recover(_copy(tmp_path, "golden_v1/quickstart")).state
    assert s.trials["mac16"].metrics["wns_ps"] == -2661.0
    assert [st.survivors[0] for st in s.stages][-1] == "mac16_2_0"
    best = s.trials["mac16_2_0"].metrics
    assert best["wns_ps"] == -1704.0 and best["worst_paths"][0]["endpoint"]
    assert sum(t.status == "done" for t in s.trials.values()) == 19


def test_golden_v3_folds_to_what_happened(tmp_path):
    s = recover(_copy(tmp_path, "golden_v3/fake")).state
    assert s.name == "golden" and s.status == "complete" and s.resumes == 1
    assert s.trials["golden_0_2"].attempt == 2 and s.trials["golden_0_2"].status in ("done", "failed")
    assert s.trials["golden_0_4"].status == "cancelled"
    assert [c["request"] for c in s.controls] == ["pause", "resume", "cancel", "stop"]
    assert [a["changes"] for a in s.amendments] == [["execution.retries: 1 → 2"]]
    assert s.spec["execution"]["retries"] == 2 and len(s.stages[-1].survivors) == 1
