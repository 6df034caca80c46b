"""A deterministic study directory for console tests: fixed times, fixed metrics."""
from __future__ import annotations

from pathlib import Path

from noodle2.engine.journal import events as ev

T0 = 1_800_000_000.0
STUDY_TOML = """[study]
name = "synth"
[design]
top = "mac16"
[tool]
kind = "command"
command = ["true"]
[[stages]]
name = "explore"
trials = 8
survivors = 3
ecos = ["buffer_fanout", "pin_swap", "clone_driver", "resize_critical"]
[[stages]]
name = "refine"
trials = 6
survivors = 2
ecos = ["buffer_fanout", "pin_swap"]
[[stages]]
name = "polish"
trials = 4
survivors = 1
ecos = ["pin_swap"]
"""
ECOS = {0: ["buffer_fanout", "pin_swap", "clone_driver", "resize_critical"], 1: ["buffer_fanout", "pin_swap"],
        2: ["pin_swap"]}


def synthetic_study(root: Path, name: str = "synth-20270115-090000", finish_stages: int = 3,
                    meta: dict | None = None) -> Path:
    """`meta`: the [study] section's author and tags, as a study file gave them."""
    d = root / name
    (d / "inputs").mkdir(parents=True)
    (d / "inputs" / "study.toml").write_text(STUDY_TOML)
    evs: list[ev.Event] = [ev.StudyStarted(
        name="synth", spec_hash="0" * 64, base_case="mac16", max_parallel=2,
        spec={"ranking": {"objective": "wns_ps"}, "study": meta or {"author": "ana", "tags": ["mac16", "demo"]}},
        safety_domain="guarded", stages=[{"name": n, "mode": m, "trials": k, "survivors": v, "after": a} for n, m, k, v, a in
                                         [("explore", "sta_power", 8, 3, []), ("refine", "sta", 6, 2, [0]),
                                          ("polish", "sta_power", 4, 1, [1])]])]
    evs.append(ev.TrialStarted(case_id="mac16"))
    evs.append(ev.TrialFinished(case_id="mac16", metrics=_m(-2661.0, 0), resources={"wall_s": 0.12}))
    parents = ["mac16"]
    wns = -2661.0
    for stage, (k, keep) in enumerate([(8, 3), (6, 2), (4, 1)][:finish_stages + (finish_stages < 3)]):
        cases = [f"mac16_{stage}_{i}" for i in range(k)]
        evs.append(ev.StageStarted(stage=stage, parents=parents, plan=[
            {"case_id": c, "index": i, "parent": parents[i % len(parents)], "eco": ECOS[stage][i % len(ECOS[stage])],
             "params": {"paths": 5 + i, "max_swaps": 8}} for i, c in enumerate(cases)]))
        evs.append(ev.EcoStats(stage=stage, rows=[
            {"eco": e, "prior": "unknown" if stage == 0 else "mixed", "trials": 2 * stage + k, "successes": stage,
             "failures": k % 2, "sum_dwns": 0.0, "sum_dtns": 0.0, "measured": 1, "best_dwns": 40.0 * (k + 1),
             "best_dtns": None, "mean_dwns": 10.0 * (k + 1), "mean_dtns": None}
            for k, e in enumerate(ECOS[stage])]))
        results = {}
        for i, c in enumerate(cases):
            evs.append(ev.TrialStarted(case_id=c))
            if stage == finish_stages:  # the unfinished stage: a few running
                continue
            if i == 3:
                evs.append(ev.TrialFailed(case_id=c, failure={"type": "tool_crash", "severity": "error",
                                                              "reason": "tool died of SIGSEGV", "excerpt": "Segmentation fault"},
                                          resources={"wall_s": 0.05}))
                continue
            w = wns + 40 * ((i * 7) % 5) + 30
            results[c] = w
            evs.append(ev.TrialFinished(case_id=c, metrics=_m(w, i), resources={"wall_s": 0.1 + i / 100},
                                        artifacts=f"trials/{c}"))
        if stage == finish_stages:
            break
        ranking = sorted(results, key=lambda c: (-results[c], c))
        evs.append(ev.SurvivorsChosen(stage=stage, survivors=ranking[:keep], ranking=ranking))
        evs.append(ev.StageFinished(stage=stage, status="done"))
        parents, wns = ranking[:keep], results[ranking[0]]
    if finish_stages == 3:
        evs.append(ev.StudyFinished(status="complete", reason="best mac16_2_2"))
    for k, e in enumerate(evs, 1):
        e.seq, e.t = k, T0 + k * 0.5
    (d / "journal.jsonl").write_bytes(b"".join(ev.encode(e) for e in evs))
    td = d / "trials" / "mac16_0_0"
    td.mkdir(parents=True)
    (td / "stdout.log").write_text(f"N2ARTIFACTS {td}\nN2M eco_changes 2\nN2DONE\n")
    (td / "run.tcl").write_text("# noodle2 trial mac16_0_0\nset n2_tag mac16_0_0\nread_liberty {osu018.lib}\n")
    return d


def _m(wns: float, i: int) -> dict:
    return {"wns_ps": wns, "tns_ps": wns * 12, "power_total_w": 0.0121 + i * 1e-5, "area_um2": 65945.0 + 32 * i,
            "instances": 1759 + i, "worst_paths": [{"startpoint": "_3430_", "endpoint": "_3413_", "slack_ps": wns,
                                                     "arrival_ns": 6.478, "required_ns": 3.817, "stages": 41, "met": False}]}


def running_study(root: Path, name: str = "live-20270115-110000", *, cancelled: bool = False, paused: bool = False,
                  interrupted: bool = False, cluster: bool = False) -> Path:
    """Stage 0 done, stage 1 running with max_parallel 2: two tools running, one trial whose tool
    exited (its outputs being read), two finished, optionally one cancelled; optionally paused, or
    stopped with trials still in flight; optionally on a Ray cluster of two worker nodes."""
    d = root / name
    (d / "inputs").mkdir(parents=True)
    (d / "inputs" / "study.toml").write_text(STUDY_TOML)
    stages = [("explore", "sta_power", 8, 3, []), ("refine", "sta", 6, 2, [0]), ("polish", "sta_power", 4, 1, [1])]
    evs: list[ev.Event] = [ev.StudyStarted(name="live", spec_hash="0" * 64, spec={}, base_case="mac16", max_parallel=2,
                                           safety_domain="guarded",
                                           stages=[{"name": n, "mode": m, "trials": k, "survivors": v, "after": a}
                                                   for n, m, k, v, a in stages]),
                           ev.TrialStarted(case_id="mac16"),
                           ev.TrialFinished(case_id="mac16", metrics=_m(-2661.0, 0), resources={"wall_s": 0.1})]
    nodes = [{"id": "a1b2c3d4", "host": "10.0.0.7", "cpus": 1.0}, {"id": "e5f6a7b8", "host": "10.0.0.8", "cpus": 1.0}]
    if cluster:
        evs.append(ev.ClusterStatus(address="10.0.0.1:6379", nodes=3, cpus=2.0, cpus_busy=2.0, memory_gb=46.5,
                                    dashboard="http://10.0.0.1:8265", running=2, queued=4, node_list=nodes))
    c0 = [f"mac16_0_{i}" for i in range(8)]
    evs.append(ev.StageStarted(stage=0, parents=["mac16"], plan=[{"case_id": c, "index": i, "parent": "mac16",
                                                                  "eco": "pin_swap", "params": {}} for i, c in enumerate(c0)]))
    for i, c in enumerate(c0):
        where = {"node": f"{nodes[i % 2]['host']}:{nodes[i % 2]['id']}"} if cluster else {}
        evs += [ev.TrialStarted(case_id=c), ev.TrialFinished(case_id=c, metrics=_m(-2600.0 + 10 * i, i),
                                                             resources={"wall_s": 0.2, **where})]
    evs += [ev.SurvivorsChosen(stage=0, survivors=c0[-3:][::-1], ranking=c0[::-1]), ev.StageFinished(stage=0, status="done")]
    c1 = [f"mac16_1_{i}" for i in range(6)]
    evs.append(ev.StageStarted(stage=1, parents=c0[-3:][::-1], plan=[
        {"case_id": c, "index": i, "parent": c0[-1], "eco": "buffer_fanout", "params": {}} for i, c in enumerate(c1)]))
    evs += [ev.TrialStarted(case_id=c1[0]), ev.TrialStarted(case_id=c1[1]), ev.TrialToolExited(case_id=c1[0]),
            ev.TrialFinished(case_id=c1[0], metrics=_m(-2400.0, 0), resources={"wall_s": 0.3}),
            ev.TrialStarted(case_id=c1[2]), ev.TrialToolExited(case_id=c1[1]),
            ev.TrialFinished(case_id=c1[1], metrics=_m(-2350.0, 1), resources={"wall_s": 0.3}),
            ev.TrialStarted(case_id=c1[3]), ev.TrialToolExited(case_id=c1[2]), ev.TrialStarted(case_id=c1[4])]
    if cancelled:
        evs.append(ev.TrialCancelled(case_id=c1[4], reason="cancelled by operator"))
    if paused:
        evs.append(ev.ControlAck(request="pause", accepted=True, detail="no new trials start"))
    if interrupted:
        evs.append(ev.StudyInterrupted(reason="operator requested stop", resume=f"noodle2 resume {d}"))
    for k, e in enumerate(evs, 1):
        e.seq, e.t = k, T0 + k * 0.5
    (d / "journal.jsonl").write_bytes(b"".join(ev.encode(e) for e in evs))
    return d


def synthetic_maps(trial_dir: Path) -> None:
    """Heatmaps for one trial, as a route mode writes them: a 16 x 10 grid with a hot corner."""
    from noodle2.engine.tools.pnr.heatmaps import write_maps
    from noodle2.engine.tools.pnr.physical import GridSpec, Maps

    g = GridSpec(0.0, 0.0, 5.0, 16, 10)

    def grid(f):
        return [[round(f(i, j), 4) for i in range(g.nx)] for j in range(g.ny)]
    cong = {"metal1": grid(lambda i, j: 0.05 * ((i + j) % 3)),
            "metal2": grid(lambda i, j: min(1.0, (i + j) / 20)),
            "metal3": grid(lambda i, j: 0.95 if (i > 12 and j > 7) else 0.3)}
    maps = Maps(g, grid(lambda i, j: 0.5 + 0.4 * ((i * j) % 5) / 4), grid(lambda i, j: i / 30), cong, {}, {})
    write_maps(maps, trial_dir / "maps", design="mac16", case=trial_dir.name, parent_maps=None, png=False)
