"""A remote executor's cluster as the study sees it: nodes, CPUs, and this study's trials
running and queued, journaled (ClusterStatus) only when something changed."""
from __future__ import annotations

from typing import Any, Callable

import anyio

from noodle2.engine.journal import events as ev
from noodle2.engine.run.host import Host

POLL_S = 2.0


class ClusterWatch:
    def __init__(self, host: Host, status: Callable[[], dict[str, Any]]) -> None:
        self.host = host
        self.status = status  # the executor's status(): blocking, so called in a worker thread
        self._seen: tuple = ()

    def record(self, got: dict[str, Any], force: bool = False) -> None:
        s = self.host.state
        planned = sum(1 for x in s.stages if x.status == "running" for c in x.cases if s.trials[c].status == "planned")
        # this study's tasks a worker started (the executor counts them); else bounded by busy CPUs,
        # which count every study's tasks
        here = got.get("running_here")
        running = min(s.in_flight(), here if isinstance(here, int) else round(got["cpus_busy"]))
        st = {**{k: v for k, v in got.items() if k != "running_here"}, "running": running,
              "queued": planned + s.in_flight() - running}
        key = tuple(st[k] for k in ("nodes", "cpus", "cpus_busy", "running", "queued"))
        if force or key != self._seen:
            self._seen = key
            self.host.emit(ev.ClusterStatus(**st))

    async def watch(self) -> None:
        """Every POLL_S while the study runs; one warning per outage, not one per poll."""
        failing = False
        while True:
            await anyio.sleep(POLL_S)
            try:
                got = await anyio.to_thread.run_sync(self.status)
            except Exception as e:  # noqa: BLE001 - a status call that fails is not the study's failure
                if not failing:
                    self.host.log("warning", f"cluster status unavailable: {type(e).__name__}: {e}")
                failing = True
                continue
            failing = False
            self.record(got)
