"""Journal and checkpoint: torn tails, corrupt snapshots, replay equals snapshot+tail."""
from __future__ import annotations

import anyio
import orjson
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState, detached, fold, from_snapshot, replay, to_snapshot
from noodle2.engine.journal.store import CHECKPOINT, JOURNAL, JournalWriter, read_events, recover, write_checkpoint


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


def test_a_failed_background_fsync_is_raised_by_the_next_append_and_sync(tmp_path, monkeypatch):
    """sync_soon's thread cannot raise into the loop: it keeps the fault, and the writer refuses
    to go on (after a failed fsync a later one may succeed with the data lost)."""
    import errno
    import os as _os

    from noodle2.engine.errors import EnvironmentFault

    w = JournalWriter(tmp_path / JOURNAL, 0)
    evs = _events(2)
    w.append(evs[0])
    monkeypatch.setattr(_os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    w.sync_soon()
    w._syncer.join(timeout=60)  # the thread ends on the fault
    assert not w._syncer.is_alive() and w._synced == 0
    monkeypatch.undo()
    for act in (lambda: w.append(evs[1]), w.sync_now):
        with pytest.raises(EnvironmentFault) as ei:
            act()
        assert ei.value.problem.code == "N2-E208" and "syncing the journal" in str(ei.value)
    w.close()
    assert [e.seq for e in read_events(tmp_path / JOURNAL).events] == [1]


def test_sync_soon_makes_appends_durable_without_waiting(tmp_path, monkeypatch):
    import os as _os

    synced = []
    real = _os.fsync
    monkeypatch.setattr(_os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    w = JournalWriter(tmp_path / JOURNAL, 0)
    for e in _events(3):
        w.append(e)
    w.sync_soon()
    w.close()  # joins the thread: what it was asked for before close is synced
    assert synced and w._synced == w._appended == len(_events(3))


def test_checkpoint_rows_with_other_fields_take_defaults_and_drop_the_unknown():
    """Format 4 keeps trials as rows under a field list: a checkpoint from a version with a
    field more and one less reads as objects would."""
    from noodle2.engine.journal.state import TRIAL_FIELDS, from_snapshot, to_snapshot

    s = replay(_events(4))
    snap = orjson.loads(orjson.dumps(to_snapshot(s)))
    rows = snap["trial_rows"]
    keep = [f for f in rows["fields"] if f != "retry_at"]
    rows["rows"] = [[dict(zip(rows["fields"], r))[f] for f in reversed(keep)] + ["later"] for r in rows["rows"]]
    rows["fields"] = list(reversed(keep)) + ["a_field_from_later"]
    back = from_snapshot(snap)
    assert tuple(rows["fields"]) != TRIAL_FIELDS
    assert orjson.dumps(back) == orjson.dumps(s)


def test_checkpoint_rows_over_several_lines_read_back_and_a_lost_line_is_refused(tmp_path, monkeypatch):
    """Format 5 keeps CHUNK_ROWS trial rows per line after the state's line; a checkpoint of
    several lines folds to the journal's state, and one missing its last line is set aside."""
    from noodle2.engine.journal import store

    monkeypatch.setattr(store, "CHUNK_ROWS", 3)
    evs = _events(8)  # 9 trials with the base case: 3 row lines
    _write(tmp_path / JOURNAL, evs)
    write_checkpoint(tmp_path, replay(evs), (tmp_path / JOURNAL).stat().st_size)
    data = (tmp_path / CHECKPOINT).read_bytes()
    assert data.count(b"\n") == 3
    rec = recover(tmp_path)
    assert rec.from_checkpoint and orjson.dumps(rec.state) == orjson.dumps(replay(evs))
    (tmp_path / CHECKPOINT).write_bytes(data[:data.rindex(b"\n")])
    rec = recover(tmp_path)
    assert not rec.from_checkpoint and orjson.dumps(rec.state) == orjson.dumps(replay(evs))
    assert any("checksum does not match" in w for w in rec.warnings)


def test_reducer_is_order_insensitive_within_a_stage():
    evs = _events(6)
    head, body = evs[:2], evs[2:]
    pairs = [body[i:i + 2] for i in range(0, len(body), 2)]
    shuffled = head + [e for p in reversed(pairs) for e in p]
    a, b = replay(evs), replay(shuffled)
    assert {c: t.metrics for c, t in a.trials.items()} == {c: t.metrics for c, t in b.trials.items()}
    assert a.counts() == b.counts() == (6, 6)


def _recount(s: StudyState) -> list[tuple[dict, dict]]:
    """Each stage's tally and peak as a walk over its trials gives them."""
    out = []
    for st in s.stages:
        ts = [s.trials[c] for c in st.cases]
        tally = {k: sum(t.status == k for t in ts) for k in ("planned", "running", "done", "failed", "cancelled")}
        peak = {k: max(v) for k in ("wns_ps", "tns_ps")
                if (v := [t.metrics[k] for t in ts if t.status == "done" and k in (t.metrics or {})])}
        out.append((tally, peak))
    return out


def test_stage_tallies_and_peaks_follow_every_status_change_and_survive_a_checkpoint(tmp_path):
    """The counts the views show come from the reducer's tallies, not a walk over 100k trials:
    retries, cancels, a resume's requeue and the end of a study all move them."""
    evs = _events(6)[:2]
    b = [f"b_0_{i}" for i in range(6)]
    evs += [ev.TrialStarted(case_id=b[0]), ev.TrialFinished(case_id=b[0], metrics={"wns_ps": -50.0, "tns_ps": -90.0},
                                                            resources={}),
            ev.TrialStarted(case_id=b[1]), ev.TrialFailed(case_id=b[1], failure={"type": "tool_crash"}, resources={},
                                                          retry=True),
            ev.TrialStarted(case_id=b[1], attempt=2), ev.TrialFinished(case_id=b[1], metrics={"wns_ps": -70.0,
                                                                                             "tns_ps": -20.0},
                                                                         resources={}),
            ev.TrialStarted(case_id=b[2]), ev.TrialFailed(case_id=b[2], failure={"type": "timeout"}, resources={}),
            ev.TrialStarted(case_id=b[3]), ev.TrialCancelled(case_id=b[3], reason="operator"),
            ev.TrialStarted(case_id=b[4]), ev.TrialStarted(case_id=b[5]),
            ev.StudyResumed(pid=1, requeued=[b[4]])]
    for k, e in enumerate(evs, 1):
        e.seq = k
    s = replay(evs)
    assert _recount(s) == [({"planned": 1, "running": 1, "done": 2, "failed": 1, "cancelled": 1},
                            {"wns_ps": -50.0, "tns_ps": -20.0})]
    assert [(st.tally, st.peak) for st in s.stages] == _recount(s) and s.counts() == (4, 6)
    # a checkpoint keeps them; one written before they existed gets them counted from its trials
    (tmp_path / JOURNAL).write_bytes(b"".join(ev.encode(e) for e in evs))
    write_checkpoint(tmp_path, s, (tmp_path / JOURNAL).stat().st_size)
    r = recover(tmp_path)
    assert r.from_checkpoint and [(st.tally, st.peak) for st in r.state.stages] == _recount(s)
    snap = orjson.loads(orjson.dumps(to_snapshot(s)))
    for st in snap["stages"]:
        del st["tally"], st["peak"]
    assert [(st.tally, st.peak) for st in from_snapshot(snap).stages] == _recount(s)
    s = fold(r.state, ev.StudyFinished(status="failed", reason="x", seq=len(evs) + 1))  # the open trial is cut off
    assert s.stages[0].tally["cancelled"] == 2 and s.stages[0].tally["running"] == 0 and s.counts() == (5, 6)


def test_fold_ignores_log_events_for_state():
    s = fold(StudyState(), ev.Log(level="info", msg="x", seq=1))
    assert s.seq == 1 and s.status == "new"


# --- format 2: checksums, versions, what a newer or older noodle2 wrote ----------------------

def test_every_digit_flip_in_trial_metrics_is_caught_with_its_line(tmp_path):
    """Format 1 accepted 29 of 30 flips; each one now fails its line's CRC."""
    good = b"".join(ev.encode(e) for e in _events(6))
    lines = good.split(b"\n")
    import random

    rng = random.Random(5)
    caught = 0
    for _ in range(30):
        i = rng.choice([n for n, ln in enumerate(lines) if b"trial_finished" in ln and n < len(lines) - 3])
        digits = [k for k, c in enumerate(lines[i]) if chr(c).isdigit() and lines[i].find(b'"metrics"') < k
                  < lines[i].find(b'"resources"')]
        k = rng.choice(digits)
        bad = bytearray(lines[i])
        bad[k] = ord(str((int(chr(bad[k])) + rng.randint(1, 9)) % 10))
        (tmp_path / JOURNAL).write_bytes(b"\n".join([*lines[:i], bytes(bad), *lines[i + 1:]]))
        with pytest.raises(N2Error) as ei:
            recover(tmp_path)
        assert ei.value.codes == ["N2-E205"] and f"line {i + 1} is corrupt: checksum mismatch" in str(ei.value)
        caught += 1
    assert caught == 30


def test_unknown_fields_and_future_event_types_are_read(tmp_path):
    """A newer noodle2 may add fields and events: an older one folds what it knows."""
    import zlib

    evs = _events(2)
    data = b"".join(ev.encode(e) for e in evs)
    body = b'{"type":"trial_heartbeat","v":3,"seq":99,"t":0.0,"case_id":"b_0_0"'
    future = body + b',"crc":"%08x"}\n' % zlib.crc32(body)
    extra = ev.encode(ev.Log(level="info", msg="x", seq=len(evs) + 1)).replace(b'"msg":"x"', b'"msg":"x","colour":"red"')
    body2 = extra[:extra.rindex(b',"crc"')]
    extra = body2 + b',"crc":"%08x"}\n' % zlib.crc32(body2)
    (tmp_path / JOURNAL).write_bytes(data + future + extra)
    rec = recover(tmp_path)
    assert rec.state.seq == len(evs) + 1
    assert any("newer noodle2" in w for w in rec.warnings)


def test_a_version_2_line_without_its_checksum_is_corrupt(tmp_path):
    line = ev.encode(_events(1)[0])
    stripped = line[:line.rindex(b',"crc"')] + b"}\n"
    with pytest.raises(ev.CorruptLine):
        ev.decode(stripped)


def test_unknown_case_id_is_a_coded_error_with_its_line(tmp_path):
    evs = _events(2)
    evs.insert(3, ev.TrialStarted(case_id="nobody_0_9"))
    for k, e in enumerate(evs, 1):
        e.seq = k
    _write(tmp_path / JOURNAL, evs)
    with pytest.raises(N2Error) as ei:
        recover(tmp_path)
    assert ei.value.codes == ["N2-E205"] and "line 4" in str(ei.value) and "nobody_0_9" in str(ei.value)


@pytest.mark.parametrize("damage", ["shift", "version", "ahead"])
def test_a_doubtful_checkpoint_falls_back_to_full_replay(tmp_path, damage):
    evs = _events(5)
    _write(tmp_path / JOURNAL, evs)
    state = replay(evs[:6])
    offset = len(b"".join(ev.encode(e) for e in evs[:6]))
    write_checkpoint(tmp_path, state, offset)
    head, nl, rows = (tmp_path / CHECKPOINT).read_bytes().partition(b"\n")  # format 5: rows on later lines
    d = orjson.loads(head)
    if damage == "shift":
        d["journal_offset"] = offset - 7
    elif damage == "version":
        d["version"] = 99
    else:
        d["journal_offset"] = offset * 100
    (tmp_path / CHECKPOINT).write_bytes(orjson.dumps(d) + nl + rows)
    rec = recover(tmp_path)
    assert not rec.from_checkpoint and rec.state.seq == len(evs)
    assert any("replaying the whole journal" in w for w in rec.warnings)


def test_full_disk_on_append_leaves_the_journal_at_its_last_whole_line(tmp_path, monkeypatch):
    import errno
    import os as _os

    from noodle2.engine.errors import EnvironmentFault

    w = JournalWriter(tmp_path / JOURNAL, 0)
    evs = _events(2)
    w.append(evs[0])
    good = w.offset
    real = _os.write

    def half_then_full(fd, data):
        if fd == w.fd:
            monkeypatch.setattr(_os, "write", lambda fd, d: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
            return real(fd, bytes(data)[:10])
        return real(fd, data)

    monkeypatch.setattr(_os, "write", half_then_full)
    with pytest.raises(EnvironmentFault) as ei:
        w.append(evs[1])
    monkeypatch.setattr(_os, "write", real)
    assert ei.value.problem.code == "N2-E208"
    assert (tmp_path / JOURNAL).stat().st_size == good == w.offset
    w.append(evs[1])
    w.close()
    assert [e.seq for e in read_events(tmp_path / JOURNAL).events] == [1, 2]


def test_two_threads_writing_one_file_never_share_a_temporary(tmp_path):
    """Found by the suite: two stage branches ending together wrote the same report at once, and
    one rename found the other's temporary gone (FileNotFoundError)."""
    import threading

    from noodle2.engine.fsutil import atomic_write

    target, errors = tmp_path / "eco_leaderboard.json", []

    def writer(tag: bytes) -> None:
        try:
            for _ in range(300):
                atomic_write(target, tag * 1000)
        except Exception as e:  # noqa: BLE001 - the test reports it
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (b"a", b"b", b"c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and target.read_bytes() in (b"a" * 1000, b"b" * 1000, b"c" * 1000)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_detached_copy_never_changes_while_the_study_folds_on():
    """#20: the checkpoint's worker thread draws the reports from detached(state) while the loop
    folds on.  Cut a journal at every event: the copy equals the state there, and still equals
    a replay of that prefix after the live state has folded every later event (a list, a tally
    or a trial the reducer changed in place and the copy shared would show here)."""
    from pathlib import Path

    golden = read_events(Path(__file__).parent / "data" / "golden_v5" / "fake" / JOURNAL).events
    b = [f"b_0_{i}" for i in range(4)]
    mine = _events(4)[:2] + [
        ev.TrialStarted(case_id=b[0]), ev.TrialToolExited(case_id=b[0]),
        ev.TrialFinished(case_id=b[0], metrics={"wns_ps": -5.0, "tns_ps": -9.0}, resources={}, outputs={"x.v": "0"}),
        ev.EquivalenceChecked(case_id=b[0], against="b", proven=True, method="structural", seconds=0.1, detail=""),
        ev.TrialStarted(case_id=b[1]), ev.TrialFailed(case_id=b[1], failure={"type": "tool_crash"}, resources={},
                                                      retry=True),
        ev.ControlAck(request="pause", target="", accepted=True, detail=""),
        ev.NotificationSent(channel="command", trigger="complete", attempt=1, ok=True, detail=""),
        ev.TrialStarted(case_id=b[2]), ev.StudyResumed(pid=1, requeued=[b[2]]),
        ev.PolicyDecision(scope="stage", action="stop_early", subject="s", reason="flat", stage=0),
        ev.TrialStarted(case_id=b[3]), ev.TrialCancelled(case_id=b[3], reason="operator"),
        ev.SurvivorsChosen(stage=0, survivors=[b[0]], ranking=[b[0]]), ev.StageFinished(stage=0, status="done"),
        ev.StudyFinished(status="complete", reason="done")]
    for k, e in enumerate(mine, 1):
        e.seq = k
    for evs in (golden, mine):
        for k in range(len(evs) + 1):
            live = replay(evs[:k])
            copy = detached(live)
            assert copy == live
            for e in evs[k:]:
                fold(live, e)
            assert copy == replay(evs[:k]), f"event {k} changed a detached copy"
        assert live != replay(evs[:1])  # the journals do change the state they fold into


def test_a_full_disk_at_any_write_of_a_checkpoint_keeps_the_last_one_whole(tmp_path, monkeypatch):
    """#20: a checkpoint is written a line at a time and its sha256 patched into its head last.
    ENOSPC at each of its writes, and at that patch: N2-E208, no temporary left, and the previous
    checkpoint is the one a resume reads, byte for byte."""
    import errno
    import os as _os

    from noodle2.engine.errors import EnvironmentFault
    from noodle2.engine.journal import store

    evs = _events(20000)  # 11 lines of trial rows, 3 MB
    _write(tmp_path / JOURNAL, evs)
    old = replay(evs[:30000])
    write_checkpoint(tmp_path, old, sum(len(ev.encode(e)) for e in evs[:30000]))
    before = (tmp_path / CHECKPOINT).read_bytes()
    new = replay(evs)
    real_write, real_pwrite, calls = _os.write, _os.pwrite, []
    monkeypatch.setattr(_os, "write", lambda fd, d: calls.append("w") or real_write(fd, d))
    monkeypatch.setattr(_os, "pwrite", lambda fd, d, at: calls.append("p") or real_pwrite(fd, d, at))
    (tmp_path / "probe").mkdir()
    write_checkpoint(tmp_path / "probe", new, 0, crc=0)
    assert calls.count("p") == 1 and calls.count("w") >= 3  # written as made, a MB at a time
    for k in range(len(calls)):
        n = iter(range(len(calls)))

        def fail_at(real, *a, _k=k, _n=n):
            if next(_n) == _k:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*a)

        monkeypatch.setattr(_os, "write", lambda fd, d: fail_at(real_write, fd, d))
        monkeypatch.setattr(_os, "pwrite", lambda fd, d, at: fail_at(real_pwrite, fd, d, at))
        with pytest.raises(EnvironmentFault) as ei:
            store.write_checkpoint(tmp_path, new, (tmp_path / JOURNAL).stat().st_size)
        assert ei.value.problem.code == "N2-E208", k
        assert (tmp_path / CHECKPOINT).read_bytes() == before and not list(tmp_path.glob(".*.tmp")), k
    monkeypatch.setattr(_os, "write", real_write)
    monkeypatch.setattr(_os, "pwrite", real_pwrite)
    r = recover(tmp_path)
    assert r.from_checkpoint and r.state == new  # the old checkpoint, and the journal's tail after it
