"""Journal and checkpoint: torn tails, corrupt snapshots, replay equals snapshot+tail."""
from __future__ import annotations

import anyio
import orjson
import pytest

from engine import events as ev
from engine.errors import N2Error
from engine.journal import CHECKPOINT, JOURNAL, JournalWriter, read_events, recover, write_checkpoint
from engine.state import StudyState, fold, replay


def _events(n: int) -> list[ev.Event]:
    out: list[ev.Event] = [ev.StudyStarted(name="j", spec_hash="h", spec={}, base_case="b", max_parallel=2,
                                           safety_domain="guarded",
                                           stages=[{"name": "s", "mode": "sta", "trials": n, "survivors": 1, "after": []}]),
                           ev.StageStarted(stage=0, parents=["b"], plan=[
                               {"case_id": f"b_0_{i}", "index": i, "parent": "b", "eco": "noop", "params": {}}
                               for i in range(n)])]
    for i in range(n):
        out.append(ev.TrialStarted(case_id=f"b_0_{i}"))
        out.append(ev.TrialFinished(case_id=f"b_0_{i}", metrics={"wns_ps": -i}, resources={}))
    for k, e in enumerate(out, 1):
        e.seq = k
    return out


def _write(path, events):
    path.write_bytes(b"".join(ev.encode(e) for e in events))


def test_encode_decode_roundtrip():
    for e in _events(2):
        assert ev.decode(ev.encode(e)) == e


def test_torn_last_line_is_dropped_with_warning_and_writer_truncates(tmp_path):
    evs = _events(3)
    _write(tmp_path / JOURNAL, evs)
    good = (tmp_path / JOURNAL).stat().st_size
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(ev.encode(ev.TrialStarted(case_id="b_0_0", seq=99))[:17])  # power cut mid-write
    rec = recover(tmp_path)
    assert rec.end == good and rec.state.seq == len(evs)
    assert any("torn" in w for w in rec.warnings)
    w = JournalWriter(tmp_path / JOURNAL, rec.end)
    w.append(ev.Log(level="info", msg="after", seq=len(evs) + 1))
    w.sync_now()
    w.close()
    r = read_events(tmp_path / JOURNAL)
    assert not r.warnings and r.events[-1].msg == "after"


def test_corruption_before_the_last_line_is_an_error(tmp_path):
    data = b"".join(ev.encode(e) for e in _events(2))
    lines = data.split(b"\n")
    lines[1] = b'{"type": "trial_started", "case'
    (tmp_path / JOURNAL).write_bytes(b"\n".join(lines))
    with pytest.raises(N2Error) as ei:
        recover(tmp_path)
    assert ei.value.codes == ["N2-E205"]


def test_checkpoint_plus_tail_equals_full_replay_and_corrupt_checkpoint_falls_back(tmp_path):
    evs = _events(5)
    _write(tmp_path / JOURNAL, evs[:6])
    s = replay(evs[:6])
    write_checkpoint(tmp_path, s, (tmp_path / JOURNAL).stat().st_size)
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(b"".join(ev.encode(e) for e in evs[6:]))
    rec = recover(tmp_path)
    assert rec.from_checkpoint
    assert orjson.dumps(rec.state) == orjson.dumps(replay(evs))
    (tmp_path / CHECKPOINT).write_bytes(b'{"version": 1, "state": {"trunc')
    rec2 = recover(tmp_path)
    assert not rec2.from_checkpoint and any("checkpoint unusable" in w for w in rec2.warnings)
    assert orjson.dumps(rec2.state) == orjson.dumps(replay(evs))


def test_group_commit_covers_concurrent_completions(tmp_path):
    w = JournalWriter(tmp_path / JOURNAL, 0)

    async def complete(i: int) -> None:
        w.append(ev.Log(level="info", msg=str(i), seq=i))
        await w.sync()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(complete, i)

    anyio.run(main)
    assert w._synced == 50 and 1 <= w.fsyncs < 50  # shared fsyncs, none missing
    w.close()


def test_reducer_is_order_insensitive_within_a_stage():
    evs = _events(6)
    head, body = evs[:2], evs[2:]
    pairs = [body[i:i + 2] for i in range(0, len(body), 2)]
    shuffled = head + [e for p in reversed(pairs) for e in p]
    a, b = replay(evs), replay(shuffled)
    assert {c: t.metrics for c, t in a.trials.items()} == {c: t.metrics for c, t in b.trials.items()}
    assert a.counts() == b.counts() == (6, 6)


def test_fold_ignores_log_events_for_state():
    s = fold(StudyState(), ev.Log(level="info", msg="x", seq=1))
    assert s.seq == 1 and s.status == "new"
