"""Study files: TOML read with tomllib, validated by pydantic, problems reported with codes.

`load_study(path)` returns a `Study` (the validated spec plus where it came from) or raises
`N2Error` listing every problem with its code, key path, line and hint.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MAX_STAGES = 1000  # after `repeat` is expanded
MAXIMISE = {"wns_ps": True, "ws_ps": True, "tns_ps": True, "failing_endpoints": False, "power_total_w": False,
            "power_leakage_w": False, "area_um2": False, "instances": False, "hold_worst_ps": True,
            "hold_violations": False, "slew_violations": False, "cap_violations": False, "hot_ratio": False,
            "congestion_max": False, "wirelength_um": False, "vias": False, "route_failed_nets": False,
            "utilisation": False, "rudy_max": False}


def maximised(metric: str) -> bool | None:
    """Whether larger is better for a metric noodle2 knows (wns_ps@slow as wns_ps), else None."""
    return MAXIMISE.get(metric.split("@", 1)[0])


class _Strict(BaseModel):
    # Every key is documented by the string under it: docs/study-file.md and `noodle2 schema`
    # are generated from these models.
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, use_attribute_docstrings=True)


class StudyMeta(_Strict):
    """[study]: what the study is and what it may do."""

    name: Annotated[str, Field(pattern=NAME)]
    """Study name: a letter, then letters, digits, `_`, `.` or `-` (at most 64).  Study
    directories are named `<name>-<time>`."""
    description: str = ""
    """One line for people: shown in the picker and the reports."""
    author: str = ""
    """Who wrote the study."""
    tags: list[str] = []
    """Free labels, shown in the picker and the reports."""
    safety_domain: Literal["sandbox", "guarded", "locked"] = "guarded"
    """Which ECO classes may run: sandbox all four, guarded all but global_disruptive, locked
    topology_neutral only.  guarded and locked read the SDC through an SDC-only reader."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    """Seed of the random parameter sweeps: the same file and seed give the same plan."""
    eco_allowlist: list[str] | None = None
    """If set, only these ECOs may run anywhere in the study."""
    eco_blocklist: list[str] = []
    """ECOs that may not run anywhere in the study."""
    goal: dict[str, float] = {}
    """Stop early once a stage's survivor meets every one of these (metric = value, in the
    metric's stored unit: wns_ps = 0 is timing met); the trials saved are reported."""


CODE_FEATURES = ("tool_command", "notify", "webhook", "custom_ecos", "plugins")


class Safety(_Strict):
    """[safety]: what a locked study may run besides the ECO library.  Some features run code
    by design (a program, Tcl, a plugin) or send data out; the legality report lists each one
    a study uses, and `locked` refuses any that is not named here."""

    allow: list[Literal["tool_command", "notify", "webhook", "custom_ecos", "plugins", "tool_env"]] = []
    """tool_command: [tool] kind = "command" runs its argv; notify: [notify] command runs a
    program; webhook: [notify] webhook POSTs the study's results to a URL; custom_ecos:
    [[custom.ecos]] and eco_dirs run their Tcl inside sta; plugins: installed plugin ECOs and
    metrics run their code in sta and in the engine."""


CORNER = r"^[a-z][a-z0-9_]{0,15}$"


class Corner(_Strict):
    """[[design.corners]]: one analysis corner; every trial times every corner in one run."""

    name: Annotated[str, Field(pattern=CORNER)]
    """Its name in metrics: wns_ps@<name>, tns_ps@<name>, hold_worst_ps@<name>."""
    corner: Annotated[str, Field(pattern=CORNER)] | None = None
    """One of the technology's corners (nangate45: typ, fast, slow); default: the name."""
    liberty: list[str] | None = None
    """Or Liberty files of your own for this corner."""
    parasitics: str | None = None
    """Refused for now: OpenSTA 2.0.17 reads one SPEF for every corner (design.parasitics)."""


class Design(_Strict):
    """[design]: the base design snapshot every trial starts from."""

    top: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    """The top module."""
    tech: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = "osu018"
    """Technology: osu018, osu035, osu050 (Debian's qflow-tech-* packages), nangate45, sky130hd or
    asap7 (shipped with noodle2; `noodle2 techs` lists them)."""
    liberty: list[str] | None = None
    """Liberty files of your own; they replace the technology's."""
    rtl: list[str] = []
    """Verilog sources, synthesised by Yosys onto the technology (cached by content); they keep
    their names and folders, so `include`s between them resolve."""
    include_dirs: list[str] = []
    """Folders Yosys searches for `include` files (relative to the study file, or absolute)."""
    defines: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
                  Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]{0,64}$")]] = {}
    """Verilog macros for synthesis, e.g. { WIDTH = "16", SIM = "" }."""
    sdc: str | None = None
    """Timing constraints (the clock).  Paths are relative to the study file, or absolute;
    every input is copied into the study directory with its hash."""
    netlist: str | None = None
    """A gate-level netlist on the technology's cells, instead of rtl.  Physical-only cells (tap,
    fill, decap, diode, endcap) pass through every trial untouched."""
    parasitics: str | None = None
    """A SPEF of the placed and routed netlist: every trial times with it; nets an ECO creates
    or changes get an estimate from the SPEF's own nets of the same fanout."""
    corners: list[Corner] = []
    """Analysis corners (default: the technology's default corner only)."""
    dont_use: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?\[\]!.-]{1,128}$")]] = []
    """Cell-name patterns no ECO may choose, beside the technology's own do-not-use list."""
    base_case: Annotated[str, Field(pattern=NAME)] | None = None
    """Name of the base case and prefix of every case id (default: top)."""


class Tool(_Strict):
    """[tool]: what runs a trial."""

    kind: Literal["opensta", "command"] = "opensta"
    """opensta: OpenSTA applies each ECO in Tcl.  command: your own program runs each trial."""
    command: list[str] | None = None
    """kind = "command": the argv, run in the trial directory; {trial_dir}, {parent_dir},
    {case_id} and {eco} are substituted."""
    metrics_file: Annotated[str, Field(pattern=r"^(|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")] | None = "metrics.json"
    """kind = "command": the JSON file of metrics the program writes in its trial directory
    (a plain file name); "" when it reports none."""
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
              Annotated[str, Field(max_length=4096)]] = {}
    """Environment variables for every tool a trial runs (OMP_NUM_THREADS, a license server).
    Names are letters, digits and _, never noodle2's own (N2_*, NOODLE2_*); values one line.
    Variables can change what a tool loads, so a locked study names it in [safety] allow."""


class Execution(_Strict):
    """[execution]: how trials run."""

    executor: Literal["local", "ray"] = "local"
    """Where trials run: this machine (local) or a Ray cluster (pip install 'noodle2[ray]')."""
    address: str = "local"
    """executor = "ray": "local" starts Ray on this machine; "auto" joins the cluster this machine
    belongs to; or a cluster's address (host:port, ray://host:10001)."""
    shared_dir: bool = False
    """executor = "ray": the study directory is at the same path on every node (a shared
    filesystem): workers run in place instead of shipping files through the object store."""
    max_parallel: Annotated[int, Field(ge=1, le=1024)] | None = None
    """Tools running at once (default: the CPUs this process may use: its affinity, capped by a
    cgroup CPU quota such as a container's `--cpus`, rounded up)."""
    soft_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 600.0
    """After this many seconds a trial's process group gets SIGTERM (a timeout failure)."""
    hard_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] | None = None
    """After this, SIGKILL (default: 1.25 × soft + 5 s)."""
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    """Re-runs of a trial that crashed, timed out or ran out of memory."""
    retry_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 0.5
    """A retry waits this long, doubled for each attempt after the first, with seeded jitter
    (½ to 1×), capped by retry_backoff_max_s; journaled, so a resume keeps the schedule."""
    retry_backoff_max_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    """The longest a retry waits."""
    memory_limit_mb: Annotated[int, Field(ge=16, le=1 << 22)] | None = None
    """Address-space limit of each tool; beyond it the trial fails as oom."""
    max_log_mb: Annotated[int, Field(ge=1, le=1 << 16)] = 64
    """A trial whose stdout or stderr grows past this is killed (output_flood)."""
    synth_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 1800.0
    """Time limit of the snapshot's synthesis."""
    reuse: bool = True
    """A trial with the same parent, ECO, parameters and mode as one already finished gives the
    same netlist (every ECO is deterministic): it takes that result, files included, instead of
    running the tool again, and says so (its resources name the trial it reused)."""
    warm: bool = True
    """OpenSTA trials run in worker processes that keep the technology's Liberty (every corner)
    loaded from one trial to the next; the results are the same as one `sta` per trial (false),
    which stays for comparison and as a fallback.  Trials that run a study's own Tcl (custom or
    plugin ECOs) and the route modes always start a fresh process; a resynth_cone trial runs its
    three `sta` scripts in one worker of its own."""
    warm_max_trials: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """A warm worker is replaced by a fresh one after this many trials (OpenSTA 2.0.17 keeps some
    of each design it replaces: about 0.6 MB a trial on the routed gcd)."""
    warm_max_mb: Annotated[int, Field(ge=64, le=1 << 22)] = 2048
    """...or once its resident memory passes this many MB."""
    read_only_mounts: bool = True
    """Where the machine allows it (root, or unprivileged user namespaces), each tool starts in
    a mount namespace of its own in which the snapshot, the inputs and the trial's parent are
    bound read-only: a write there fails at once (read-only file system), for root too.  File
    modes and the manifest (escaped_write) stay on either way.  Local executor only; a warm
    worker gets the snapshot and the inputs (the parent changes from trial to trial)."""


class Ranking(_Strict):
    """[ranking]: how a stage's trials are ordered to choose its survivors."""

    kind: Literal["single", "weighted", "lexicographic", "pareto"] = "single"
    """single: one metric; weighted: a weighted sum; lexicographic: metrics in order, with
    tolerances; pareto: non-dominated fronts, then crowding distance."""
    objective: str = "wns_ps"
    """kind = "single": the metric (wns_ps, tns_ps, power_total_w, area_um2, ...)."""
    objectives: list[str] = []
    """kind = "lexicographic" or "pareto": the metrics, most important first."""
    weights: dict[str, float] = {}
    """kind = "weighted": metric -> weight."""
    tolerance: dict[str, Annotated[float, Field(ge=0)]] = {}
    """kind = "lexicographic": metric -> how far below the best still counts as a tie."""
    normalise: Literal["none", "base"] = "base"
    """kind = "weighted": divide each metric by the base case's value first."""
    directions: dict[str, Literal["max", "min"]] = {}
    """Whether larger or smaller is better, for metrics noodle2 does not know."""


class ClassBudget(_Strict):
    """[rails.eco_class.<class>]: a risk budget for the ECOs of one class.  Per trial, against its
    parent; per study, summed over that class's ECOs on a case's lineage from the base.  A case
    over budget cannot survive; a trial without the metric is not held to it."""

    max_cells: Annotated[int, Field(ge=0)] | None = None
    """Cells one trial may change (its eco_changes)."""
    max_area_added_um2: float | None = None
    """Area one trial may add over its parent, µm²."""
    max_leakage_added_w: float | None = None
    """Leakage power one trial may add over its parent, W."""
    study_max_cells: Annotated[int, Field(ge=0)] | None = None
    """Cells this class's ECOs may change along a case's lineage, in all."""
    study_max_area_added_um2: float | None = None
    """Area this class's ECOs may add along a case's lineage, in all, µm²."""
    study_max_leakage_added_w: float | None = None
    """Leakage this class's ECOs may add along a case's lineage, in all, W."""


class Rails(_Strict):
    """[rails]: what keeps a trial out of the survivors whatever its rank."""

    max_wns_regression_vs_parent_ps: Annotated[float, Field(ge=0)] | None = None
    """A trial more than this many ps worse in WNS than its parent cannot survive."""
    max: dict[str, float] = {}
    """Metric -> the largest value a survivor may have, e.g. { cap_violations = 0, hot_ratio = 0.05 }.
    A trial without the metric (a pre-route trial has no hot_ratio) is not held to it."""
    min: dict[str, float] = {}
    """Metric -> the smallest value a survivor may have, e.g. { hold_worst_ps = 0 }."""
    eco_class: dict[Literal["topology_neutral", "placement_local", "routing_affecting", "global_disruptive"],
                    ClassBudget] = {}
    """Risk budgets per ECO class: cells changed, area and leakage added, per trial and per lineage."""


class CustomParam(_Strict):
    """[[custom.ecos.params]]: one parameter of a custom ECO; its proc takes them in this order."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    """The Tcl variable the body reads ($name)."""
    kind: Literal["int", "float"] = "int"
    """int or float."""
    min: float
    """Smallest legal value."""
    max: float
    """Largest legal value."""
    default: float
    """The value when a stage does not set it."""
    doc: str = ""
    """What it does, for `noodle2 ecos`."""


class CustomEco(_Strict):
    """[[custom.ecos]]: an ECO of your own, as a Tcl proc body over noodle2's helper procs
    (engine/tools/timing/eco_lib.tcl: n2_path_drivers, n2_resize, n2_buffer, n2_move, ...).  It goes
    through the same domains, legality report, containment, integrity checks and priors as a
    built-in ECO.  The body returns how many changes it kept."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
    """Its name in stages.ecos."""
    eco_class: Literal["topology_neutral", "placement_local", "routing_affecting", "global_disruptive"]
    """What it may change; enforced on every trial, as for built-ins."""
    description: Annotated[str, Field(min_length=1)]
    """One line for `noodle2 ecos` and the legality report."""
    tcl: Annotated[str, Field(min_length=1, max_length=200_000)]
    """The proc body."""
    params: list[CustomParam] = []
    """Its parameters."""
    max_new_instances: Annotated[int, Field(ge=0, le=100_000)] = 0
    """placement_local only: how many cells a trial may add."""
    source: str = "study file"
    """Where it was defined (filled in by noodle2)."""


class CustomMetric(_Strict):
    """[[custom.metrics]]: a metric read from a file the trial wrote, by a regex with one group or
    a JSON pointer.  Rank on it, rail on it, report it.  Finding nothing fails the trial as
    parse_failure."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    """The metric's name."""
    source: Annotated[str, Field(min_length=1)]
    """A file in the trial directory, e.g. "sta.timing.rpt" or "metrics.json"."""
    regex: str | None = None
    """A regular expression with one group: the number (the first match counts)."""
    json_pointer: str | None = None
    """Or an RFC 6901 pointer into a JSON file, e.g. "/worst_paths/0/slack_ps"."""
    unit: str = ""
    """For people: ps, ns, mW, count, ..."""
    direction: Literal["max", "min"]
    """Whether larger or smaller is better."""
    source_name: str = "study file"
    """Where it was defined (filled in by noodle2)."""


class Custom(_Strict):
    """[custom]: your own ECOs and metrics."""

    ecos: list[CustomEco] = []
    """ECO definitions."""
    eco_dirs: list[str] = []
    """Folders (relative to the study file) whose *.toml files each define one ECO, with the
    keys of [[custom.ecos]]; copied into the study directory like the design files."""
    metrics: list[CustomMetric] = []
    """Metric extractors."""
    plugin_metrics: list[str] = []
    """Metrics from installed plugins (entry point group noodle2.metrics) this study uses."""


class Notify(_Strict):
    """[notify]: tell someone when a study ends or a stage aborts.  A notification that cannot
    get through is journaled and dropped: it never fails or holds up the study."""

    on: list[Literal["complete", "failed", "blocked", "stage_aborted", "interrupted"]] = [
        "complete", "failed", "blocked", "interrupted"]
    """The events that notify."""
    command: list[str] | None = None
    """A program to run (argv); the JSON payload arrives on its stdin, N2_NOTIFY_* in its environment."""
    webhook: str | None = None
    """An http(s) URL to POST the JSON payload to."""
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Per attempt."""
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    """Further attempts after a timeout, a refused connection, an HTTP 5xx or 429, or a nonzero exit."""
    backoff_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    """Wait before the first retry; doubles each time."""
    report: bool = True
    """Write the study's report before notifying of its end, so the payload can point at it."""


class CI(_Strict):
    """[ci]: what `noodle2 ci` holds a run to against its baseline."""

    thresholds: dict[str, Annotated[float, Field(ge=0)]] = {"wns_ps": 0.0, "tns_ps": 0.0}
    """Metric -> how far the best case may fall behind the baseline, in the metric's own unit
    (ps for slacks), before it is a regression."""
    stage_gates: bool = True
    """Every stage the baseline finished must finish again (not aborted, not skipped)."""


class Physical(_Strict):
    """[physical]: place and route in the route modes, and the maps measured from it."""

    bins: Annotated[int, Field(ge=4, le=256)] = 32
    """Heatmap bins along the die's longer side (bins are square)."""
    hot_threshold: Annotated[float, Field(gt=0, le=10)] = 0.9
    """A bin is hot when a layer's routed wire length exceeds this share of its track capacity;
    hot_ratio is the share of hot bins."""
    png: bool = True
    """Render each heatmap as a PNG too (needs matplotlib: pip install 'noodle2[plots]')."""


class Verify(_Strict):
    """[verify]: what is proven before a result counts."""

    equivalence: Literal["survivors", "all", "off"] = "survivors"
    """Prove netlists equivalent to their parent (so to the base): every survivor before it is
    promoted, every trial, or none.  An unproven one fails as not_equivalent."""


INTEGRITY_LIMITS = {"locked": 1, "guarded": 3}  # sandbox: integrity failures never abort a stage


class Abort(_Strict):
    """[abort]: containment, at the smallest scope that fits."""

    eco_failure_limit: Annotated[int, Field(ge=1, le=1000)] = 3
    """An ECO that fails this many times is disabled for the rest of the study."""
    class_disable_after: Annotated[int, Field(ge=1, le=100)] = 2
    """An ECO class is disabled once this many of its ECOs are."""
    catastrophic_crash_cases: Annotated[int, Field(ge=2, le=1000)] = 3
    """The study is blocked when one ECO crashes the tool on this many different parents."""
    plateau_stages: Annotated[int, Field(ge=1, le=100)] | None = None
    """Stop early after this many stages in a row without a real WNS gain."""
    plateau_min_gain_ps: Annotated[float, Field(ge=0)] = 1.0
    """What counts as a real WNS gain for the plateau rule, in ps."""
    integrity_failures: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """A stage aborts once this many of its trials fail an integrity check (a broken netlist:
    undriven or multi-driven nets, new unconstrained endpoints).  Default by safety domain:
    locked 1, guarded 3, sandbox never."""

    def integrity_limit(self, domain: str) -> int | None:
        return self.integrity_failures or INTEGRITY_LIMITS.get(domain)


class Priors(_Strict):
    """[priors]: what ECOs earned in this and other studies, and how it orders the budget."""

    import_from: list[str] = []
    """Leaderboards of other studies (a study directory or its eco_leaderboard.json)."""
    min_trials: Annotated[int, Field(ge=1)] = 3
    """Trials an ECO needs before it earns a prior other than unknown."""
    trusted_success_rate: Annotated[float, Field(ge=0, le=1)] = 0.7
    """Share of trials that gain on the ranking objective to be trusted."""
    suspicious_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Share of failed trials that makes an ECO suspicious (skipped in guarded and locked)."""


ParamSetting = float | list[float] | dict[str, float]


class Stage(_Strict):
    """[[stages]]: one round of trials; its survivors are the next round's parents."""

    name: Annotated[str, Field(pattern=NAME)]
    """Stage name, unique in the study."""
    mode: Literal["sta", "sta_power", "route", "route_power"] = "sta_power"
    """What a trial measures: timing (sta), timing and power (sta_power); or the same after
    placing and routing the trial's netlist with qflow (route, route_power: slower, post-route
    truth, congestion maps)."""
    trials: Annotated[int, Field(ge=1, le=100_000)]
    """Trials the stage runs."""
    survivors: Annotated[int, Field(ge=1, le=100_000)]
    """Trials kept as parents of the next stage (at most trials)."""
    ecos: Annotated[list[str], Field(min_length=1)]
    """ECOs the trials use, in turn (`noodle2 ecos` lists them)."""
    params: dict[str, dict[str, ParamSetting]] = {}
    """ECO -> parameter -> a value, a list of choices, or {min = a, max = b}."""
    sweep: Literal["random", "grid"] = "random"
    """How parameters are drawn: seeded random, or every combination in turn."""
    after: list[str] | None = None
    """Stages this one waits for and takes its parents from (default: the one before)."""
    max_wns_regression_ps: Annotated[float, Field(ge=0)] | None = None
    """Abort the study if this stage's best WNS is worse than its parents' best by more."""
    eco_classes: list[Literal["topology_neutral", "placement_local", "routing_affecting",
                              "global_disruptive"]] | None = None
    """Narrow the domain's ECO classes for this stage."""
    repeat: Annotated[int, Field(ge=1, le=MAX_STAGES)] = 1
    """Run N copies of the stage in a chain, named name.1 ... name.N."""
    keep_parents: bool = False
    """The stage's parents compete with its trials for survival, so it never loses ground."""
    stop_when_flat: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """End the stage early once timing is met (WNS ≥ 0) and its ranking objective has not
    improved for this many trials in plan order; the trials not run are reported."""
    ranking: Ranking | None = None
    """This stage's own ranking ([stages.ranking]); the study's [ranking] otherwise.  A route stage
    may rank on congestion (hot_ratio) after timing-only stages ranked on wns_ps."""

    @field_validator("ecos")
    @classmethod
    def _no_dupes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists an ECO twice")
        return v


class StudySpec(_Strict):
    """A study file."""

    study: StudyMeta
    """What the study is."""
    design: Design
    """The base design."""
    safety: Safety = Safety()
    """What a locked study may run besides the ECO library."""
    tool: Tool = Tool()
    """What runs a trial."""
    execution: Execution = Execution()
    """How trials run."""
    ranking: Ranking = Ranking()
    """How survivors are chosen."""
    rails: Rails = Rails()
    """What keeps a trial out of the survivors."""
    physical: Physical = Physical()
    """Place and route and its maps."""
    ci: CI = CI()
    """Regression checks for `noodle2 ci`."""
    notify: Notify = Notify()
    """Notifications."""
    custom: Custom = Custom()
    """Your own ECOs and metrics."""
    verify: Verify = Verify()
    """What is proven."""
    abort: Abort = Abort()
    """Containment."""
    priors: Priors = Priors()
    """ECO priors."""
    stages: Annotated[list[Stage], Field(min_length=1, max_length=MAX_STAGES)]
    """The stages, in order."""

    def stage_ranking(self, i: int) -> Ranking:
        """How stage i chooses its survivors: its own [stages.ranking], else the study's."""
        return self.stages[i].ranking or self.ranking

    def stage_deps(self) -> list[list[int]]:
        """Indices each stage waits for: `after` if given, otherwise the previous stage."""
        index = {s.name: i for i, s in enumerate(self.stages)}
        return [
            ([index[n] for n in s.after] if s.after is not None else ([i - 1] if i else []))
            for i, s in enumerate(self.stages)
        ]

    @property
    def base_case(self) -> str:
        return self.design.base_case or self.design.top


def json_schema() -> dict[str, Any]:
    """The study file's JSON Schema, for editors (Taplo, VS Code's Even Better TOML)."""
    schema = StudySpec.model_json_schema()
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "noodle2 study file"
    return schema


def stored_name(given: str) -> str:
    """Where a study directory keeps an input (under inputs/), from the path text alone: inside
    the study file's folder it keeps its relative path; from elsewhere it goes under
    external/<folder hash>/, one folder per folder it came from, so files that include each
    other by name still find each other."""
    norm = os.path.normpath(given)
    if not os.path.isabs(norm) and norm != ".." and not norm.startswith("../"):
        return norm
    folder = hashlib.sha256(os.path.dirname(norm).encode()).hexdigest()[:10]
    return f"external/{folder}/{os.path.basename(norm)}"


def legacy_stored_name(given: str) -> str:
    """Where study directories made before 0.2 kept an input from outside the study's folder."""
    from noodle2.engine.quote import safe_name

    norm = os.path.normpath(given)
    return f"external/{hashlib.sha256(given.encode()).hexdigest()[:10]}_{safe_name(os.path.basename(norm))}"


def given_inputs(spec: StudySpec) -> list[tuple[str, str]]:
    """(key path, path as written) of every file the study reads from outside its directory."""
    d = spec.design
    out = [(f"design.rtl[{i}]", r) for i, r in enumerate(d.rtl)]
    out += [(k, v) for k, v in (("design.sdc", d.sdc), ("design.netlist", d.netlist),
                                ("design.parasitics", d.parasitics)) if v]
    out += [(f"design.liberty[{i}]", p) for i, p in enumerate(d.liberty or [])]
    for i, c in enumerate(d.corners):
        out += [(f"design.corners[{i}].liberty[{j}]", p) for j, p in enumerate(c.liberty or [])]
    custom = getattr(spec, "custom", None)
    out += [(f"custom.ecos[{i}]", c.source[5:]) for i, c in enumerate(custom.ecos if custom else [])
            if c.source.startswith("file:")]
    return out


@dataclass(frozen=True)
class Study:
    spec: StudySpec
    path: Path  # the study file
    source: str  # its text, for provenance and line lookups
    stored: bool = False  # loaded from <study dir>/inputs/: inputs are the study's own copies

    @property
    def root(self) -> Path:
        return self.path.parent

    def spec_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.spec.model_dump(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    def resolve(self, given: str) -> Path:
        """A path from the study file: relative to the file's folder, or absolute; in a stored
        study, the copy the study directory keeps."""
        if self.stored:
            p = self.root / stored_name(given)
            old = self.root / legacy_stored_name(given)
            return old if not p.exists() and stored_name(given).startswith("external/") and old.exists() else p
        p = Path(given)
        return p if p.is_absolute() else self.root / p

    def outside_inputs(self) -> list[str]:
        """Inputs written as paths that leave the study file's folder."""
        return [g for _, g in given_inputs(self.spec) if stored_name(g).startswith("external/")]


# --- loading ---------------------------------------------------------------------------
