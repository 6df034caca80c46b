"""The snapshot every trial starts from: the tool's one-time preparation (synthesis, the
technology's files), its files hashed and journaled so each use can check them."""
from __future__ import annotations

import hashlib
from typing import Any

import anyio
import orjson

from noodle2.engine.errors import env_fault
from noodle2.engine.fsutil import sha256_file
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import TrialState
from noodle2.engine.run import isolation
from noodle2.engine.run.host import Host
from noodle2.engine.run.studydir import INPUTS, update_provenance
from noodle2.engine.tools.base import TrialFailure


async def prepare(h: Host, base: TrialState) -> bool:
    """False when the preparation failed: that is the base case's failure, and blocks the study."""
    if h.state.inputs:
        return True
    try:
        prov = await anyio.to_thread.run_sync(h.tool.setup)
        files = await anyio.to_thread.run_sync(_hashes, h)
    except TrialFailure as f:
        h.emit(ev.TrialStarted(case_id=base.case_id, attempt=base.attempt + 1))
        h.emit(ev.TrialFailed(case_id=base.case_id, failure=f.failure, resources={}))
        return False
    except OSError as e:
        raise env_fault(e, "preparing the snapshot") or e from None
    if prov and "snapshot_hash" not in prov:  # a netlist study: the digest of the files every trial reads
        prov["snapshot_hash"] = hashlib.sha256(orjson.dumps(files, option=orjson.OPT_SORT_KEYS)).hexdigest()
    if prov:
        await anyio.to_thread.run_sync(update_provenance, h.dir, {"snapshot": prov})
    info = {k: prov[k] for k in ("cells", "cache_hit", "snapshot_hash") if k in prov} if prov else {}
    h.emit(ev.SnapshotReady(files=files, info=info))
    if prov:
        cells = f", {prov['cells']} cells" if "cells" in prov else ""
        h.log("info", f"snapshot ready{cells}" + (" (cached)" if prov.get("cache_hit") else ""))
    return True


def _hashes(h: Host) -> dict[str, Any]:
    """The snapshot's files hashed, then they and the study's inputs made read-only to trials."""
    snap = sorted(h.tool.snapshot_files())
    out = {str(p.relative_to(h.dir)): sha256_file(p) for p in snap}
    isolation.seal([*snap, *(p for p in (h.dir / INPUTS).rglob("*") if p.is_file())])
    return out or {"(none)": ""}
