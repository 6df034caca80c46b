"""Policy rules on hand-built states: domains, legality, ranking, rails, priors, containment.
Each determinism check folds the same events in shuffled order."""
from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState, fold
from noodle2.engine.policy import containment, priors, safety
from noodle2.engine.policy.ranking import Candidate, non_dominated_fronts, rank, select_survivors
from noodle2.engine.study.load import parse_study
from noodle2.engine.study.models import Ranking, StudySpec

STUDY = """
[study]
name = "p"
safety_domain = "{domain}"
{extra_study}
[safety]
allow = ["tool_command"]
[design]
top = "x"
[tool]
kind = "command"
command = ["true"]
[abort]
eco_failure_limit = 2
class_disable_after = 2
catastrophic_crash_cases = 2
{plateau}
plateau_min_gain_ps = 10
[[stages]]
name = "s0"
trials = 6
survivors = 2
ecos = {ecos}
{stage_extra}
[[stages]]
name = "s1"
trials = 4
survivors = 1
ecos = ["pin_swap", "buffer_fanout", "clone_driver"]
"""


def text(domain="guarded", ecos='["resize_critical", "pin_swap", "buffer_fanout", "clone_driver"]', plateau=1,
         extra_study="", stage_extra=""):
    return STUDY.format(domain=domain, ecos=ecos, plateau=f"plateau_stages = {plateau}" if plateau else "", extra_study=extra_study, stage_extra=stage_extra)


def spec(**kw):
    """A structurally valid spec; legality is what some tests examine, so it is not enforced here."""
    return StudySpec.model_validate(tomllib.loads(text(**kw)))


def test_domains_allow_exactly_their_classes():
    s = spec(domain="sandbox", ecos='["upsize_all", "pin_swap"]')
    assert safety.refusal(s, 0, "upsize_all") is None
    g = spec(ecos='["pin_swap"]')
    assert "guarded does not allow global_disruptive" in safety.refusal(g, 0, "upsize_all")
    assert safety.refusal(g, 0, "buffer_fanout") is None
    loc = spec(ecos='["resize_critical"]', domain="locked")
    assert safety.refusal(loc, 0, "resize_critical") is None
    for e in ("pin_swap", "buffer_fanout", "clone_driver", "upsize_all"):
        assert "locked does not allow" in safety.refusal(loc, 0, e)


def test_stage_narrowing_and_study_lists():
    s = spec(stage_extra='eco_classes = ["topology_neutral"]', ecos='["resize_critical"]',
             extra_study='eco_blocklist = ["clone_driver"]')
    assert "narrows classes" in safety.refusal(s, 0, "pin_swap")
    assert safety.refusal(s, 1, "clone_driver") == "in the study's eco_blocklist"
    a = spec(extra_study='eco_allowlist = ["pin_swap", "resize_critical", "buffer_fanout", "clone_driver"]')
    assert safety.refusal(a, 0, "downsize_noncritical") == "not in the study's eco_allowlist"


def test_illegal_study_names_each_eco_and_stage():
    from noodle2.engine.errors import N2Error

    with pytest.raises(N2Error) as ei:
        parse_study(text(domain="locked", ecos='["resize_critical", "pin_swap"]'), Path("/tmp/p.toml"))
    msgs = [(p.code, p.path) for p in ei.value.problems]
    assert ("N2-E111", "stages[0].ecos[1]") in msgs  # pin_swap in s0
    assert [p for p in ei.value.problems if p.path.startswith("stages[1]")] and len(msgs) == 4
    assert all("illegal in stage" in p.message for p in ei.value.problems)


def cands(rows):
    return [Candidate(c, m) for c, m in rows]


def test_single_objective_ties_break_by_case_id_whatever_the_order():
    rows = [("x_0_3", {"wns_ps": -10}), ("x_0_1", {"wns_ps": -10}), ("x_0_2", {"wns_ps": -5}), ("x_0_0", {})]
    r = Ranking()
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        assert rank(cands(rows), r)[0] == ["x_0_2", "x_0_1", "x_0_3", "x_0_0"]  # missing metric is worst


def test_weighted_normalised_by_base():
    r = Ranking(kind="weighted", weights={"wns_ps": 1.0, "area_um2": 1.0}, normalise="base")
    base = {"wns_ps": -1000.0, "area_um2": 10000.0}
    # a: +100 ps wns (0.1 of base) for +500 area (0.05): net better; b: nothing changed
    c = cands([("a", {"wns_ps": -900, "area_um2": 10500}), ("b", {"wns_ps": -1000, "area_um2": 10000}),
               ("c", {"wns_ps": -990, "area_um2": 12000})])
    assert rank(c, r, base)[0] == ["a", "b", "c"]


def test_lexicographic_tolerance_prefers_smaller_area_within_wns_tolerance():
    r = Ranking(kind="lexicographic", objectives=["wns_ps", "area_um2"], tolerance={"wns_ps": 10})
    c = cands([("a", {"wns_ps": -100, "area_um2": 500}), ("b", {"wns_ps": -108, "area_um2": 400}),
               ("c", {"wns_ps": -150, "area_um2": 100})])
    assert rank(c, r)[0] == ["b", "a", "c"]
    strict = Ranking(kind="lexicographic", objectives=["wns_ps", "area_um2"])
    assert rank(c, strict)[0] == ["a", "b", "c"]


def test_pareto_front_crowding_and_survivors_non_dominated():
    r = Ranking(kind="pareto", objectives=["wns_ps", "area_um2"])
    pts = {"a": (-100, 500), "b": (-120, 300), "c": (-150, 100), "d": (-130, 400), "e": (-100, 600)}
    c = cands([(k, {"wns_ps": w, "area_um2": a}) for k, (w, a) in pts.items()])
    order, front = rank(c, r)
    assert front == ["a", "b", "c"]
    assert order[:3] == ["a", "c", "b"]  # extremes (infinite crowding distance) first, ties by id
    sel = select_survivors(c, r, 3, None, None)
    oriented = {k: (w, -a) for k, (w, a) in pts.items()}
    assert non_dominated_fronts({k: oriented[k] for k in sel.survivors}) == [sorted(sel.survivors)]
    for s_ in sel.survivors:  # none is dominated by any trial of the stage
        assert not any(all(x >= y for x, y in zip(oriented[o], oriented[s_])) and oriented[o] != oriented[s_]
                       for o in pts)


def test_duplicate_points_do_not_take_two_survivor_slots():
    r = Ranking(kind="pareto", objectives=["wns_ps", "area_um2"])
    c = cands([("a", {"wns_ps": -100, "area_um2": 500}), ("b", {"wns_ps": -100, "area_um2": 500}),
               ("c", {"wns_ps": -150, "area_um2": 100}), ("d", {"wns_ps": -120, "area_um2": 300})])
    assert select_survivors(c, r, 2, None, None).survivors == ["a", "c"]


def test_rails_exclude_regressions_from_survivors():
    c = [Candidate("a", {"wns_ps": -200}, {"wns_ps": -100}), Candidate("b", {"wns_ps": -140}, {"wns_ps": -100})]
    sel = select_survivors(c, Ranking(), 2, None, max_wns_regression_ps=50)
    assert sel.survivors == ["b"] and "100.0 ps worse" in sel.excluded["a"]


# --- hand-built studies -----------------------------------------------------------------------

def build(sp, trials, seed=None, survivors0=("x_0_0",)):
    """trials: (case, stage, parent, eco, wns_or_failure_type).  Completion events are shuffled."""
    evs: list[ev.Event] = [ev.StudyStarted(name="p", spec_hash="h", spec=sp.model_dump(), base_case="x", max_parallel=2,
                                           safety_domain=sp.study.safety_domain,
                                           stages=[{"name": s.name, "mode": s.mode, "trials": s.trials,
                                                    "survivors": s.survivors, "after": d}
                                                   for s, d in zip(sp.stages, sp.stage_deps())]),
                           ev.TrialFinished(case_id="x", metrics={"wns_ps": -1000.0, "tns_ps": -5000.0}, resources={})]
    for stage in sorted({t[1] for t in trials}):
        rows = [t for t in trials if t[1] == stage]
        evs.append(ev.StageStarted(stage=stage, parents=sorted({r[2] for r in rows}), plan=[
            {"case_id": c, "index": k, "parent": p, "eco": e, "params": {}} for k, (c, _, p, e, _) in enumerate(rows)]))
        done = []
        for c, _, _, _, out in rows:
            if isinstance(out, str):
                done.append(ev.TrialFailed(case_id=c, failure={"type": out, "severity": "error", "reason": out,
                                                               "excerpt": ""}, resources={}))
            else:
                done.append(ev.TrialFinished(case_id=c, metrics={"wns_ps": out, "tns_ps": out * 5}, resources={}))
        if seed is not None:
            random.Random(seed).shuffle(done)
        evs += done
        if stage == 0:
            evs.append(ev.SurvivorsChosen(stage=0, survivors=list(survivors0), ranking=list(survivors0)))
            evs.append(ev.StageFinished(stage=0, status="done"))
    s = StudyState()
    for k, e in enumerate(evs, 1):
        e.seq = k
        fold(s, e)
    return s


STAGE0 = [("x_0_0", 0, "x", "pin_swap", -900.0), ("x_0_1", 0, "x", "clone_driver", "tool_crash"),
          ("x_0_2", 0, "x", "buffer_fanout", -950.0), ("x_0_3", 0, "x", "clone_driver", "tool_crash"),
          ("x_0_4", 0, "x", "pin_swap", -980.0), ("x_0_5", 0, "x", "buffer_fanout", "timeout")]


def test_containment_disables_eco_and_class_and_is_order_free():
    sp = spec()
    ref = None
    for seed in (None, 1, 2, 3):
        s = build(sp, STAGE0, seed)
        decisions = [(d.action, d.subject) for d in containment.after_stage(sp, s, 0)[0]]
        ecos, skips, _, _ = containment.plan_ecos(sp, s, 1, {"pin_swap", "buffer_fanout", "clone_driver"})
        got = (decisions, ecos, [(d.action, d.subject, d.reason) for d in skips])
        ref = ref or got
        assert got == ref
    decisions, ecos, skips = ref
    assert ("disable_eco", "clone_driver") in decisions
    assert ("disable_class", "placement_local") not in decisions  # one placement_local ECO disabled, limit 2
    assert "clone_driver" not in ecos and any(a == "skip_eco" and e == "clone_driver" and "failed 2 times" in r
                                              for a, e, r in skips)


def test_a_lost_worker_is_never_charged_to_the_eco():
    sp = spec()
    lost = [(c, 0, "x", "clone_driver", "worker_lost") for c in ("x_0_1", "x_0_3", "x_0_6")]
    s = build(sp, [r for r in STAGE0 if r[3] != "clone_driver"] + lost)
    decisions = [(d.action, d.subject) for d in containment.after_stage(sp, s, 0)[0]]
    ecos, _, _, _ = containment.plan_ecos(sp, s, 1, {"pin_swap", "buffer_fanout", "clone_driver"})
    assert ("disable_eco", "clone_driver") not in decisions and "clone_driver" in ecos  # 3 losses, limit 2
    eff = priors.effectiveness(s, s.trials.values(), sp.priors)
    assert "clone_driver" not in eff  # no measured trial: its prior stays unknown, not suspicious
    crashed = build(sp, STAGE0)  # the same count of tool crashes is charged
    assert ("disable_eco", "clone_driver") in [(d.action, d.subject) for d in containment.after_stage(sp, crashed, 0)[0]]


def test_class_disabled_when_enough_of_its_ecos_are():
    sp = spec()
    rows = STAGE0[:-1] + [("x_0_5", 0, "x", "buffer_fanout", "timeout"), ("x_0_6", 0, "x", "buffer_fanout", "tool_crash")]
    s = build(sp, rows)
    acts = {(d.action, d.subject) for d in containment.after_stage(sp, s, 0)[0]}
    assert {("disable_eco", "clone_driver"), ("disable_eco", "buffer_fanout"),
            ("disable_class", "placement_local")} <= acts


def test_catastrophic_crash_on_distinct_parents_blocks():
    sp = spec()
    s = build(sp, STAGE0 + [("x_1_0", 1, "x_0_0", "clone_driver", "tool_crash"),
                            ("x_1_1", 1, "x_0_2", "clone_driver", "tool_crash")], survivors0=("x_0_0", "x_0_2"))
    acts = [(d.action, d.subject) for d in containment.after_stage(sp, s, 1)[0]]
    assert ("block_study", "clone_driver") in acts


def test_plateau_and_wns_regression_abort():
    sp = spec(plateau=1)
    s = build(sp, [("x_0_0", 0, "x", "pin_swap", -995.0)])
    [d] = [d for d in containment.after_stage(sp, s, 0)[0] if d.action == "plateau"]
    assert "+5.0 ps" in d.reason
    sp2 = spec(plateau=0, stage_extra="max_wns_regression_ps = 20")
    s2 = build(sp2, [("x_0_0", 0, "x", "pin_swap", -1030.0)])
    [a] = [d for d in containment.after_stage(sp2, s2, 0)[0] if d.action == "abort_stage"]
    assert "regressed 30.0 ps" in a.reason


def test_priors_labels_and_budget_order():
    cfg = spec().priors
    s = build(spec(), [("x_0_0", 0, "x", "pin_swap", -900.0), ("x_0_1", 0, "x", "pin_swap", -950.0),
                       ("x_0_2", 0, "x", "pin_swap", -990.0), ("x_0_3", 0, "x", "buffer_fanout", -1100.0),
                       ("x_0_4", 0, "x", "buffer_fanout", -1200.0), ("x_0_5", 0, "x", "buffer_fanout", -1300.0),
                       ("x_1_0", 1, "x", "clone_driver", -900.0)])
    eff = priors.effectiveness(s, s.trials.values(), cfg)
    assert eff["pin_swap"].prior == "trusted" and eff["pin_swap"].mean_dwns == pytest.approx(53.333, abs=0.01)
    assert eff["buffer_fanout"].prior == "suspicious" and eff["clone_driver"].prior == "unknown"
    order, skipped = priors.order(["clone_driver", "buffer_fanout", "pin_swap"], eff, "guarded")
    assert order == ["pin_swap", "clone_driver"] and "buffer_fanout" in skipped
    assert priors.order(["clone_driver", "buffer_fanout"], eff, "sandbox") == (["clone_driver", "buffer_fanout"], {})
    board = priors.leaderboard(eff)
    assert [r["eco"] for r in board] == ["pin_swap", "clone_driver", "buffer_fanout"]


# --- search options (#9) -----------------------------------------------------------------------------

def test_repeat_expands_into_a_chain_and_after_follows_the_last_copy(tmp_path):
    from noodle2.engine.errors import N2Error
    from noodle2.engine.study.load import parse_study

    text = """[study]\nname = "r"\n[design]\ntop = "t"\n[tool]\nkind = "command"\ncommand = ["true"]
[[stages]]\nname = "a"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\nrepeat = 3
[[stages]]\nname = "b"\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]
[[stages]]\nname = "c"\nafter = ["a"]\ntrials = 2\nsurvivors = 1\necos = ["pin_swap"]\n"""
    spec = parse_study(text, tmp_path / "s.toml").spec
    assert [(s.name, s.after) for s in spec.stages] == [("a.1", None), ("a.2", ["a.1"]), ("a.3", ["a.2"]),
                                                         ("b", None), ("c", ["a.3"])]
    assert spec.stage_deps() == [[], [0], [1], [2], [2]]
    with pytest.raises(N2Error) as ei:
        parse_study(text.replace("repeat = 3", "repeat = 1000"), tmp_path / "s.toml")
    assert ei.value.codes == ["N2-E103"] and "expand to 1002" in str(ei.value)


def test_survivors_never_share_a_netlist():
    cands = [Candidate("x_0_0", {"wns_ps": -10.0}, None, "net=A"), Candidate("x_0_1", {"wns_ps": -10.0}, None, "net=A"),
             Candidate("x_0_2", {"wns_ps": -20.0}, None, "net=B")]
    sel = select_survivors(cands, Ranking(), 2, None, None)
    assert sel.survivors == ["x_0_0", "x_0_2"] and sel.excluded == {"x_0_1": "same result as x_0_0"}


def test_a_success_is_a_gain_on_the_ranking_objective():
    from noodle2.engine.policy.ranking import improves

    parent, tns_only = {"wns_ps": -100.0, "tns_ps": -500.0}, {"wns_ps": -100.0, "tns_ps": -495.0}
    assert not improves(tns_only, parent, Ranking())  # objective wns_ps: a TNS gain is not a success
    assert improves(tns_only, parent, Ranking(kind="lexicographic", objectives=["wns_ps", "tns_ps"]))
    assert not improves({"wns_ps": -90.0, "tns_ps": -600.0}, parent,
                        Ranking(kind="pareto", objectives=["wns_ps", "tns_ps"]))  # not dominating


def test_congestion_ranks_through_the_existing_kinds():
    """hot_ratio is a known metric (smaller is better): alone, after WNS within a tolerance, or
    on a Pareto front with WNS; unrouted trials (no hot_ratio) rank last on it."""
    c = [Candidate("a", {"wns_ps": -500, "hot_ratio": 0.20}), Candidate("b", {"wns_ps": -510, "hot_ratio": 0.01}),
         Candidate("c", {"wns_ps": -900, "hot_ratio": 0.00}), Candidate("d", {"wns_ps": -400})]
    assert rank(c, Ranking(objective="hot_ratio"))[0] == ["c", "b", "a", "d"]
    lex = Ranking(kind="lexicographic", objectives=["wns_ps", "hot_ratio"], tolerance={"wns_ps": 150})
    # a, b and d are within 150 ps of the best WNS (d); of those b is least congested, and d, never
    # routed, has no hot_ratio at all: b, then a
    assert rank(c, lex, need=2)[0][:2] == ["b", "a"]
    e = Candidate("e", {"wns_ps": -600, "hot_ratio": 0.30})  # worse than a on both
    front = rank([*c, e], Ranking(kind="pareto", objectives=["wns_ps", "hot_ratio"]))[1]
    assert sorted(front) == ["a", "b", "c", "d"]  # d: best WNS, so undominated even without hot_ratio
    w = Ranking(kind="weighted", weights={"wns_ps": 1.0, "hot_ratio": 1000.0}, normalise="none")
    assert rank(c[:3], w)[0][0] == "b"  # -510 - 10 beats -500 - 200


def test_lessons_drop_an_eco_that_never_gains_and_narrow_a_range_to_the_better_third():
    """#21: pure: gains over the parent in the ranking's direction, a drop verdict, a range."""
    from noodle2.engine.journal.state import StageState, StudyState, TrialState
    from noodle2.engine.policy.learn import lessons, recommendations

    s = StudyState(stages=[StageState(0, "one", "sta", 12, 1, [])])
    s.trials["b"] = TrialState("b", -1, 0, None, "noop", {}, status="done", metrics={"wns_ps": -1000.0})
    for i in range(9):  # good: gains grow with k; bad: always loses 10 ps
        s.trials[f"g{i}"] = TrialState(f"g{i}", 0, i, "b", "good", {"k": i + 1}, status="done",
                                       metrics={"wns_ps": -1000.0 + 10 * (i + 1)})
    for i in range(3):
        s.trials[f"x{i}"] = TrialState(f"x{i}", 0, 9 + i, "b", "bad", {"k": i}, status="done", metrics={"wns_ps": -1010.0})
    obj, got = lessons(s, Ranking())
    by = {e.eco: e for e in got}
    assert obj == "wns_ps" and by["bad"].drop and not by["good"].drop
    assert by["good"].best == 90 and by["good"].params[0].best_value == 9 and by["good"].params[0].keep == (7, 9)
    text = recommendations(obj, got)
    assert "drop bad: never improved on its parent (3 trials)" in text and "good.k: narrow 1–9 to 7–9 (best at 9)" in text
    # smaller is better for area: the same numbers read the other way
    _, area = lessons(s, Ranking(objective="wns_ps", directions={"wns_ps": "min"}))
    assert {e.eco: e.drop for e in area} == {"bad": False, "good": True}


def test_an_early_stop_read_as_trials_end_agrees_with_a_full_read_and_reads_each_trial_once():
    """#20: flat_stop with a FlatScan goes on from where it stopped (a 10,000-trial stage read
    itself again after every completion: quadratic).  Completions in shuffled order: after each,
    the scan's answer is the full read's, and the stop lands where the rule says."""
    sp = StudySpec.model_validate(tomllib.loads(text(stage_extra="stop_when_flat = 3").replace("trials = 6", "trials = 40")))
    # WNS improves up to trial 10, which meets timing; 11-13 do not improve: stop after 13.
    wns = [-100.0 + 10 * i for i in range(11)] + [-5.0, -3.0, -1.0] + [50.0] * 26
    rows = [(f"x_0_{i}", w) for i, w in enumerate(wns)]
    for seed in (1, 2, 3):
        s = StudyState()
        head = [ev.StudyStarted(name="p", spec_hash="h", spec=sp.model_dump(), base_case="x", max_parallel=2,
                                safety_domain="guarded", stages=[{"name": "s0", "mode": "sta", "trials": 40,
                                                                  "survivors": 2, "after": []}]),
                ev.TrialFinished(case_id="x", metrics={"wns_ps": -1000.0}, resources={}),
                ev.StageStarted(stage=0, parents=["x"], plan=[{"case_id": c, "index": i, "parent": "x",
                                                              "eco": "pin_swap", "params": {}}
                                                             for i, (c, _) in enumerate(rows)])]
        done = [ev.TrialFinished(case_id=c, metrics={"wns_ps": w}, resources={}) for c, w in rows]
        random.Random(seed).shuffle(done)
        scan = None  # made once the stage is planned, as the engine does
        answers = []
        for k, e in enumerate(head + done, 1):
            e.seq = k
            fold(s, e)
            if isinstance(e, ev.StageStarted):
                scan = containment.FlatScan.of(s, 0)
            if scan is None:
                continue
            reads_before = scan.k
            got = containment.flat_stop(sp, s, 0, scan)
            assert got == containment.flat_stop(sp, s, 0)
            assert reads_before <= scan.k <= 40
            answers.append(got)
            if got is not None:
                break
        assert answers[-1] == (14, "timing met and wns_ps flat for 3 trials (x_0_11 to x_0_13): the 26 later "
                                   "trials of 40 do not run (one already running finishes, uncounted)")
        assert scan.k == 14  # trials past the stop were never read
