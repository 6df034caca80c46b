"""Study files: TOML read with tomllib, validated by pydantic, problems reported with codes.

`load_study(path)` returns a `Study` (the validated spec plus where it came from) or raises
`N2Error` listing every problem with its code, key path, line and hint.
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.ecos import CATALOG, ROUTE_MODES, catalog
from engine.errors import N2Error, Problem

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


CODE_FEATURES = ("tool_command", "notify", "webhook", "custom_ecos", "plugins")


class Safety(_Strict):
    """[safety]: what a locked study may run besides the ECO library.  Some features run code
    by design (a program, Tcl, a plugin) or send data out; the legality report lists each one
    a study uses, and `locked` refuses any that is not named here."""

    allow: list[Literal["tool_command", "notify", "webhook", "custom_ecos", "plugins"]] = []
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
    """Tools running at once (default: the CPUs this process may use)."""
    soft_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 600.0
    """After this many seconds a trial's process group gets SIGTERM (a timeout failure)."""
    hard_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] | None = None
    """After this, SIGKILL (default: 1.25 × soft + 5 s)."""
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    """Re-runs of a trial that crashed, timed out or ran out of memory."""
    memory_limit_mb: Annotated[int, Field(ge=16, le=1 << 22)] | None = None
    """Address-space limit of each tool; beyond it the trial fails as oom."""
    max_log_mb: Annotated[int, Field(ge=1, le=1 << 16)] = 64
    """A trial whose stdout or stderr grows past this is killed (output_flood)."""
    synth_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 1800.0
    """Time limit of the snapshot's synthesis."""


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


class Rails(_Strict):
    """[rails]: what keeps a trial out of the survivors whatever its rank."""

    max_wns_regression_vs_parent_ps: Annotated[float, Field(ge=0)] | None = None
    """A trial more than this many ps worse in WNS than its parent cannot survive."""
    max: dict[str, float] = {}
    """Metric -> the largest value a survivor may have, e.g. { cap_violations = 0, hot_ratio = 0.05 }.
    A trial without the metric (a pre-route trial has no hot_ratio) is not held to it."""
    min: dict[str, float] = {}
    """Metric -> the smallest value a survivor may have, e.g. { hold_worst_ps = 0 }."""


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
    (engine/tools/eco_lib.tcl: n2_path_drivers, n2_resize, n2_buffer, n2_move, ...).  It goes
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
    from engine.tools.quote import safe_name

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


MAX_STUDY_BYTES = 4 << 20


def load_study(path: str | os.PathLike[str], *, stored: bool = False) -> Study:
    """A study file: a regular file of at most MAX_STUDY_BYTES (a FIFO or a device is refused,
    never read); a study directory's own copy (`stored`) is never read through a symlink."""
    from engine.fsutil import read_capped

    p = Path(path)
    try:
        if (msg := path_text_problem(str(p))) is not None:
            raise N2Error.one("N2-E109", f"study file path {msg}")
        if p.is_dir() and not stored:
            raise N2Error.one("N2-E109", f"{p} is a directory, not a study file", hint="name a .toml study file")
        source = read_capped(p, MAX_STUDY_BYTES, follow=not stored).decode("utf-8")
    except FileNotFoundError:
        raise N2Error.one("N2-E109", f"study file not found: {p}", hint="check the path") from None
    except ValueError as e:
        if isinstance(e, UnicodeDecodeError):
            raise N2Error.one("N2-E100", f"cannot read {p}: it is not UTF-8 text ({e.reason} at byte {e.start})") from None
        raise N2Error.one("N2-E212" if stored else "N2-E109", f"{p} {e}",
                          hint=None if stored else "name a study file (a regular .toml file)") from None
    except OSError as e:
        raise N2Error.one("N2-E100", f"cannot read {p}: {e.strerror or e}") from None
    return parse_study(source, p, stored=stored)


MAX_KEY_PARTS = 64  # a dotted key or table header deeper than this is no study file (and slow to parse)


def _absurd_keys(source: str) -> Problem | None:
    """A dotted key or table header of thousands of parts: refused before tomllib, whose time
    grows with its square."""
    for no, line in enumerate(source.splitlines(), 1):
        head = line.lstrip()
        key = head[1:head.find("]")] if head.startswith("[") else head.split("=", 1)[0] if "=" in head else ""
        if key.count(".") >= MAX_KEY_PARTS:
            return Problem("N2-E100", f"a key of {key.count('.') + 1} dotted parts; a study file nests a few at most",
                           "", no)
    return None


def parse_study(source: str, path: Path, *, stored: bool = False) -> Study:
    if (absurd := _absurd_keys(source)) is not None:
        raise N2Error([absurd])
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise N2Error([Problem("N2-E100", str(e), "", int(m.group(1)) if m else None)]) from None
    except RecursionError:
        raise N2Error.one("N2-E100", "the file nests arrays or tables too deeply to be a study file",
                          hint="a study file nests a few levels at most; check for runaway brackets") from None
    lines = _key_lines(source)
    try:
        spec, problems = StudySpec.model_validate(raw), []
    except ValidationError as e:  # go on with the parts that are valid: report everything at once
        problems = [_problem_from_pydantic(err, lines) for err in e.errors()]
        spec = _lenient(raw)
    if not problems:
        spec, found = resolve_custom(spec, path.resolve().parent, stored)
        problems += [_with_line(p, lines) for p in found]
    study = Study(spec, path.resolve(), source, stored)
    problems += [_with_line(p, lines) for p in check_semantics(study)]
    if problems:
        raise N2Error(problems)
    return Study(expand_repeats(spec), path.resolve(), source, stored)


def resolve_custom(spec: StudySpec, root: Path, stored: bool) -> tuple[StudySpec, list[Problem]]:
    """Every custom ECO and metric into the spec: inline ones, one per *.toml in eco_dirs, and
    plugins' (entry points noodle2.ecos / noodle2.metrics) that the study names.  Done once at
    parse time, so the spec hash covers them and policy code never reads a file."""
    c = spec.custom
    problems: list[Problem] = []
    ecos, metrics = list(c.ecos), list(c.metrics)
    for i, given in enumerate(c.eco_dirs):
        norm = os.path.normpath(given)
        if os.path.isabs(norm) or norm == ".." or norm.startswith("../"):
            problems.append(Problem("N2-E121", f"eco_dirs entry {given!r} leaves the study file's folder",
                                    f"custom.eco_dirs[{i}]", hint="keep ECO files beside the study file"))
            continue
        folder = root / norm
        if not folder.is_dir():
            problems.append(Problem("N2-E121", f"{given} is not a folder", f"custom.eco_dirs[{i}]"))
            continue
        for f in sorted(folder.glob("*.toml")):
            rel = f"{norm}/{f.name}"
            try:
                ecos.append(CustomEco.model_validate({**tomllib.loads(f.read_text(encoding="utf-8")),
                                                      "source": f"file:{rel}"}))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                problems.append(Problem("N2-E121", f"{rel}: {e}", f"custom.eco_dirs[{i}]"))
            except ValidationError as e:
                err = e.errors()[0]
                problems.append(Problem("N2-E121", f"{rel}: {'.'.join(map(str, err['loc']))}: {err['msg']}",
                                        f"custom.eco_dirs[{i}]"))
    named = {e for st in spec.stages for e in st.ecos} - set(CATALOG) - {e.name for e in ecos}
    if named:
        from engine.plugins import plugin_ecos

        for e in plugin_ecos():
            if e.name in named:
                ecos.append(e)
    if c.plugin_metrics:
        from engine.plugins import plugin_metrics

        have = {m.name: m for m in plugin_metrics()}
        for i, name in enumerate(c.plugin_metrics):
            if name in have:
                metrics.append(have[name])
            else:
                problems.append(Problem("N2-E121", f"no installed plugin provides the metric {name!r}",
                                        f"custom.plugin_metrics[{i}]", hint="pip install the plugin, or remove it"))
    directions = {m.name: m.direction for m in metrics if m.name not in spec.ranking.directions}
    custom = c.model_copy(update={"ecos": ecos, "metrics": metrics})
    ranking = spec.ranking.model_copy(update={"directions": {**spec.ranking.directions, **directions}})
    return spec.model_copy(update={"custom": custom, "ranking": ranking}), problems


def _lenient(raw: Any) -> StudySpec:
    """A spec holding only what validates: a section that does not is None, and so is each
    stage that does not, so the checks of every other part still run."""
    raw = raw if isinstance(raw, dict) else {}
    parts: dict[str, Any] = {}
    for key, field in StudySpec.model_fields.items():
        if key == "stages":
            items = raw.get("stages") if isinstance(raw.get("stages"), list) else []
            parts[key] = [_valid(Stage, x) for x in items]
        elif key in raw:
            parts[key] = _valid(field.annotation, raw[key])
        else:
            parts[key] = None if field.is_required() else field.default
    return StudySpec.model_construct(**parts)


def _valid(model: Any, value: Any) -> Any:
    """The part as validated; failing that, validated again without its faulty keys (an unknown
    or mistyped key must not hide what the rest of the section says)."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        if not isinstance(value, dict):
            return None
        bad = {err["loc"][0] for err in e.errors() if err["loc"]}
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in bad})
        except ValidationError:
            return None


def expand_repeats(spec: StudySpec) -> StudySpec:
    """`repeat = N` becomes N stages name.1 ... name.N, each after the one before; stages that
    named the repeated stage in `after` wait for its last copy."""
    if all(st.repeat == 1 for st in spec.stages):
        return spec
    last = {st.name: f"{st.name}.{st.repeat}" if st.repeat > 1 else st.name for st in spec.stages}
    out = []
    for st in spec.stages:
        after = [last[a] for a in st.after] if st.after is not None else None
        if st.repeat == 1:
            out.append(st.model_copy(update={"after": after}))
            continue
        for k in range(1, st.repeat + 1):
            prev = None if k == 1 else [f"{st.name}.{k - 1}"]
            out.append(st.model_copy(update={"name": f"{st.name}.{k}", "repeat": 1,
                                             "after": after if k == 1 else prev}))
    return spec.model_copy(update={"stages": out})


def check_semantics(study: Study) -> list[Problem]:
    """Cross-field rules pydantic field types cannot express, and the files the study reads."""
    spec = study.spec
    out: list[Problem] = []
    known = catalog(spec)
    if spec.custom is not None:
        out += _custom_problems(spec.custom)
    names = [s.name if s is not None else None for s in spec.stages]
    if (total := sum(s.repeat for s in spec.stages if s is not None)) > MAX_STAGES:
        out.append(Problem("N2-E103", f"the stages expand to {total} (repeat included); the limit is {MAX_STAGES}",
                           "stages"))
    for i, s in enumerate(spec.stages):
        if s is None:  # its own problems were reported by validation
            continue
        at = f"stages[{i}]"
        if s.repeat > 1 and len(s.name) > 64 - 1 - len(str(s.repeat)):
            out.append(Problem("N2-E103", f"name {s.name!r} is too long to repeat as {s.name}.{s.repeat}",
                               f"{at}.name"))
        if s.survivors > s.trials:
            out.append(Problem("N2-E104", f"survivors ({s.survivors}) must be ≤ trials ({s.trials})", f"{at}.survivors"))
        if names.index(s.name) != i:
            out.append(Problem("N2-E110", f"stage name {s.name!r} is used twice", f"{at}.name"))
        for dep in s.after or []:
            if dep not in names:
                out.append(Problem("N2-E108", f"after names unknown stage {dep!r}", f"{at}.after"))
            elif names.index(dep) >= i:
                out.append(Problem("N2-E108", f"after names {dep!r}, which is not an earlier stage", f"{at}.after"))
        route = s.mode in ROUTE_MODES
        for j, e in enumerate(s.ecos):
            if e not in known:
                out.append(Problem("N2-E106", f"unknown ECO {e!r}", f"{at}.ecos[{j}]"))
            elif known[e].physical and not route:
                out.append(Problem("N2-E118", f"{e} acts in place and route; stage mode {s.mode!r} never places",
                                   f"{at}.ecos[{j}]", hint='use it in a stage with mode = "route" or "route_power"'))
            elif e == "resynth_cone" and route:
                out.append(Problem("N2-E118", "resynth_cone runs in the sta modes only", f"{at}.ecos[{j}]",
                                   hint="re-synthesise in an earlier sta stage; route its survivors after"))
        deps = [names.index(d) for d in (s.after or []) if d in names] if s.after is not None else [i - 1]
        unrouted = [names[j] for j in deps if j >= 0 and spec.stages[j] is not None
                    and spec.stages[j].mode not in ROUTE_MODES]
        if route and s.keep_parents and (unrouted or i == 0):
            out.append(Problem("N2-E118", "keep_parents would rank unrouted parents (from "
                               f"{', '.join(unrouted) or 'the base case'}) against routed trials", f"{at}.keep_parents",
                               hint="keep parents only in a route stage after another route stage"))
        if route and spec.design is not None and (spec.design.liberty or (spec.tool and spec.tool.kind != "opensta")):
            out.append(Problem("N2-E118", f"mode {s.mode!r} places with qflow on a technology's LEF; this study "
                               "gives its own Liberty (design.liberty) or tool", f"{at}.mode",
                               hint="use design.tech = \"osu018\" (or osu035, osu050) for place and route"))
        for e, settings in s.params.items():
            if e not in s.ecos:
                out.append(Problem("N2-E107", f"params given for {e!r}, which the stage does not use", f"{at}.params.{e}"))
                continue
            if e not in known:
                continue
            for pname, setting in settings.items():
                ps = known[e].param(pname)
                key = f"{at}.params.{e}.{pname}"
                if ps is None:
                    legal = ", ".join(p.name for p in known[e].params) or "none"
                    out.append(Problem("N2-E107", f"{e} has no parameter {pname!r} (has: {legal})", key))
                    continue
                for v in _setting_values(setting):
                    if (msg := ps.check(v)) is not None:
                        out.append(Problem("N2-E107", msg, key))
                if isinstance(setting, list) and not setting:
                    out.append(Problem("N2-E107", "a list of choices needs at least one value", key))
                if isinstance(setting, dict) and (set(setting) != {"min", "max"} or setting["min"] > setting["max"]):
                    out.append(Problem("N2-E107", "a range is {min = a, max = b} with a ≤ b", key))
    d, tool = spec.design, spec.tool
    if d is not None:
        out += _design_problems(study)
    if tool is not None:
        out += _tool_problems(study)
    from engine.reports import import_problems

    if spec.priors is not None:
        out += import_problems(study)
    if spec.ranking is not None:
        out += _ranking_problems(spec.ranking)
    n = spec.notify
    if n is not None and n.webhook is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", n.webhook):
        out.append(Problem("N2-E120", f"webhook {n.webhook!r} is not an http(s) URL", "notify.webhook"))
    if n is not None and n.command is not None and not n.command:
        out.append(Problem("N2-E120", "command is empty", "notify.command"))
    if spec.ci is not None and spec.ranking is not None:
        for m in spec.ci.thresholds:
            if maximised(m) is None and m not in spec.ranking.directions:
                out.append(Problem("N2-E113", f"ci threshold on {m!r}: a metric with no known direction", "ci.thresholds",
                                   hint=f'add [ranking] directions = {{ {m} = "max" }} (or "min")'))
    if spec.rails is not None:
        for side in ("max", "min"):
            for m in getattr(spec.rails, side):
                if not re.fullmatch(r"[A-Za-z_]\w{0,47}(@[a-z][a-z0-9_]{0,15})?", m):
                    out.append(Problem("N2-E113", f"rail on {m!r}: not a metric name", f"rails.{side}"))
    e = spec.execution
    if e is not None and e.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            out.append(Problem("N2-E114", "executor = \"ray\" needs Ray, which is not installed", "execution.executor",
                               hint="pip install 'noodle2[ray]' (or executor = \"local\")"))
    if e is not None and e.hard_timeout_s is not None and e.hard_timeout_s < e.soft_timeout_s:
        out.append(Problem("N2-E103", "hard_timeout_s must be ≥ soft_timeout_s", "execution.hard_timeout_s"))
    if spec.study is not None:
        for name in [*(spec.study.eco_allowlist or []), *spec.study.eco_blocklist]:
            if name not in known:
                out.append(Problem("N2-E106", f"unknown ECO {name!r} in allow/blocklist", "study"))
        from engine.policy.safety import legality_problems

        out += legality_problems(spec)
    return out


def tcl_unbalanced(text: str) -> int | None:
    """The line where a Tcl body's braces or brackets stop balancing, or None when they do."""
    depth = {"{": 0, "[": 0}
    close = {"}": "{", "]": "["}
    line, i = 1, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "\n":
            line += 1
        elif ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if depth[close[ch]] < 0:
                return line
        i += 1
    return None if not any(depth.values()) else line


def _custom_problems(c: Custom) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, e in enumerate(c.ecos):
        at = f"custom.ecos[{i}]" if not e.source.startswith("file:") else e.source[5:]
        if e.name in CATALOG or e.name in seen:
            out.append(Problem("N2-E121", f"ECO {e.name!r} is defined twice (or is a built-in)", f"{at}.name"))
        seen.add(e.name)
        if (line := tcl_unbalanced(e.tcl)) is not None:
            out.append(Problem("N2-E121", f"{e.name}: the Tcl body's braces or brackets do not balance "
                               f"(body line {line})", f"{at}.tcl"))
        if e.eco_class != "placement_local" and e.max_new_instances:
            out.append(Problem("N2-E121", f"{e.name}: max_new_instances is for placement_local ECOs",
                               f"{at}.max_new_instances"))
        pnames = [p.name for p in e.params]
        if len(set(pnames)) != len(pnames):
            out.append(Problem("N2-E121", f"{e.name}: a parameter name is used twice", f"{at}.params"))
        for p in e.params:
            if not p.min <= p.default <= p.max:
                out.append(Problem("N2-E121", f"{e.name}.{p.name}: default {p.default:g} outside [{p.min:g}, {p.max:g}]",
                                   f"{at}.params"))
            if p.kind == "int" and not all(float(v).is_integer() for v in (p.min, p.max, p.default)):
                out.append(Problem("N2-E121", f"{e.name}.{p.name}: an int parameter needs whole min, max and default",
                                   f"{at}.params"))
    names = [m.name for m in c.metrics]
    for i, m in enumerate(c.metrics):
        at = f"custom.metrics[{i}]"
        if (m.regex is None) == (m.json_pointer is None):
            out.append(Problem("N2-E121", f"metric {m.name}: give exactly one of regex and json_pointer", at))
        if m.regex is not None:
            from engine.metrics import user_pattern

            try:
                if user_pattern(m.regex).groups != 1:
                    out.append(Problem("N2-E121", f"metric {m.name}: the regex needs exactly one group", f"{at}.regex"))
            except ValueError as e:
                out.append(Problem("N2-E121", f"metric {m.name}: bad regex: {e}", f"{at}.regex"))
        if m.json_pointer is not None and not (m.json_pointer == "" or m.json_pointer.startswith("/")):
            out.append(Problem("N2-E121", f"metric {m.name}: a JSON pointer starts with /", f"{at}.json_pointer"))
        if os.path.isabs(m.source) or ".." in Path(m.source).parts:
            out.append(Problem("N2-E121", f"metric {m.name}: source must be a file inside the trial directory",
                               f"{at}.source"))
        if names.count(m.name) > 1:
            out.append(Problem("N2-E121", f"metric {m.name} is defined twice", f"{at}.name"))
    return out


def _design_problems(study: Study) -> list[Problem]:
    spec, d, tool = study.spec, study.spec.design, study.spec.tool or Tool()
    out: list[Problem] = []
    if not d.rtl and not d.netlist and tool.kind == "opensta":
        out.append(Problem("N2-E101", "give rtl = [...] or netlist = \"...\"", "design"))
    if d.parasitics and not d.netlist:
        out.append(Problem("N2-E101", "parasitics describe a placed and routed netlist's nets: give netlist = "
                           "\"...\" with it", "design.parasitics"))
    for key, given in given_inputs(spec):
        if (msg := _path_problem(study, given)) is not None:
            out.append(Problem("N2-E109" if "liberty" not in key else "N2-E301", msg, key))
    for i, given in enumerate(d.include_dirs):
        if not study.resolve(given).is_dir() and path_text_problem(given) is None:
            out.append(Problem("N2-E109", f"{given!r} is not a folder", f"design.include_dirs[{i}]"))
    if tool.kind == "opensta" and not out:
        out += _tech_problems(study)
    domain = spec.study.safety_domain if spec.study is not None else "guarded"
    if tool.kind == "opensta" and d.sdc and domain != "sandbox" and _path_problem(study, d.sdc) is None:
        from engine.fsutil import read_capped
        from engine.tools.sdc import forbidden

        text = read_capped(study.resolve(d.sdc), 64 << 20, follow=True).decode(errors="replace")
        for line, cmd in forbidden(text)[:5]:
            out.append(Problem("N2-E115", f"{d.sdc} line {line} calls {cmd!r}, which is not an SDC command; the "
                               f"{domain} domain reads SDC through a reader that allows only SDC commands",
                               "design.sdc"))
    return out


def _tech_problems(study: Study) -> list[Problem]:
    """The technology, its corners and what the design asks of it: every cell of a given
    netlist in its Liberty (physical-only cells aside), every include of the RTL found, a
    route stage only on a technology qflow places and routes."""
    from engine.tools.tech import resolve_tech
    from engine.tools.base import TrialFailure

    d = study.spec.design
    try:
        tech = resolve_tech(d.tech, [study.resolve(p) for p in d.liberty] if d.liberty else None,
                            dont_use=tuple(d.dont_use), vt=any(st is not None and "vt_swap" in st.ecos
                                                              for st in study.spec.stages))
    except N2Error as err:
        return err.problems
    out: list[Problem] = []
    seen: set[str] = set()
    for i, c in enumerate(d.corners):
        if c.name in seen:
            out.append(Problem("N2-E123", f"corner {c.name!r} is named twice", f"design.corners[{i}].name"))
        seen.add(c.name)
        if not c.liberty and (c.corner or c.name) not in tech.corners:
            out.append(Problem("N2-E123", f"technology {tech.name} has no corner {c.corner or c.name!r} (it has "
                               f"{', '.join(tech.corners)})", f"design.corners[{i}]",
                               hint="name one of those as corner = \"...\", or give liberty = [...] for it"))
        if c.parasitics:
            out.append(Problem("N2-E123", f"corner {c.name!r} has a SPEF of its own, and OpenSTA 2.0.17 reads one "
                               "SPEF for every corner (its read_spef has no -corner)", f"design.corners[{i}].parasitics",
                               hint="give the SPEF once as design.parasitics; to time a corner with other "
                                    "parasitics, run it as a study of its own"))
    if d.netlist and (unknown := unknown_cells(study.resolve(d.netlist), tech)):
        out.append(Problem("N2-E124", f"the netlist uses {len(unknown)} cell(s) that {tech.name}'s Liberty does not "
                           f"have: {', '.join(unknown[:8])}" + (" ..." if len(unknown) > 8 else ""), "design.netlist",
                           hint="pick the technology the netlist was made for (design.tech), or give its Liberty "
                                "files as design.liberty"))
    if d.rtl:
        from engine.tools.yosys import layout

        try:
            layout([study.resolve(r) for r in d.rtl], [stored_name(r) for r in d.rtl],
                   [study.resolve(x) for x in d.include_dirs], [stored_name(x) for x in d.include_dirs])
        except TrialFailure as e:
            out.append(Problem("N2-E109", e.failure["reason"], "design.rtl"))
    route = [i for i, st in enumerate(study.spec.stages) if st is not None and st.mode in ROUTE_MODES]
    if route and not tech.qflow and not d.liberty:
        out.append(Problem("N2-E118", f"route stages place and route with qflow, which has no {tech.name} technology",
                           f"stages[{route[0]}].mode", hint="use mode = \"sta\" or \"sta_power\" on this "
                           "technology, or an OSU one (osu018, osu035, osu050) to place and route"))
    return out


def unknown_cells(netlist: Path, tech) -> list[str]:
    """Cells of a gate-level netlist that the technology's Liberty lacks and that are not
    physical-only (tap, fill, decap, diode, endcap by name, or connecting nothing)."""
    from engine.fsutil import read_capped
    from engine.tools.netlist import cell_usage, pinless_cells

    try:
        text = read_capped(netlist, 2 << 30, follow=True).decode(errors="replace")
    except (OSError, ValueError):
        return []  # the path check reports it
    have = liberty_cell_names(tuple(tech.liberty))
    pinless = pinless_cells(text)
    return sorted(c for c in cell_usage(text) if c not in have and c not in pinless and not tech.physical_kind(c))


def liberty_cell_names(paths: tuple[Path, ...]) -> frozenset[str]:
    """Every `cell (name)` in the files, by a scan (no full parse: validate stays quick)."""
    out: set[str] = set()
    for p in paths:
        out |= _cell_names(str(p), p.stat().st_mtime_ns)
    return frozenset(out)


@lru_cache(maxsize=32)
def _cell_names(path: str, _mtime: int) -> frozenset[str]:
    text = Path(path).read_text(errors="replace")
    return frozenset(m.group(1) for m in re.finditer(r'^\s*cell\s*\(\s*"?([^")\s]+)"?\s*\)', text, re.M))


def _tool_problems(study: Study) -> list[Problem]:
    tool = study.spec.tool
    out: list[Problem] = []
    if tool.kind == "command" and not tool.command:
        out.append(Problem("N2-E101", "kind = \"command\" needs command = [...]", "tool.command"))
    if tool.kind == "command":
        from engine.tools.command import placeholder_problem

        for i, arg in enumerate(tool.command or []):
            if (msg := placeholder_problem(arg)) is not None:
                out.append(Problem("N2-E116", msg, f"tool.command[{i}]"))
    return out


def _ranking_problems(r: Ranking) -> list[Problem]:
    out: list[Problem] = []
    metrics = [r.objective] if r.kind == "single" else (list(r.weights) if r.kind == "weighted" else r.objectives)
    if r.kind != "single" and not metrics:
        out.append(Problem("N2-E113", f"kind = {r.kind!r} needs objectives (or weights)", "ranking"))
    for m in metrics:
        if maximised(m) is None and m not in r.directions:
            out.append(Problem("N2-E113", f"metric {m!r} has no known direction", "ranking.directions",
                               hint=f'add directions = {{ {m} = "max" }} (or "min")'))
    return out


def _setting_values(setting: ParamSetting) -> list[float]:
    if isinstance(setting, dict):
        return list(setting.values())
    return list(setting) if isinstance(setting, list) else [setting]


def path_text_problem(text: str) -> str | None:
    """What makes `text` unusable as a path on any system noodle2 runs on, or None."""
    from engine.tools.quote import control_chars

    if not text:
        return "is empty"
    if bad := control_chars(text):
        return f"{text!r} holds the control character {bad[0]!r}"
    for part in text.split("/"):
        if len(part.encode()) > 255:
            return f"{text[:40]!r}… has a path component of {len(part.encode())} bytes (the limit is 255)"
    if len(text.encode()) > 4000:
        return f"{text[:40]!r}… is longer than 4,000 bytes"
    return None


def _path_problem(study: Study, given: str) -> str | None:
    if (msg := path_text_problem(given)) is not None:
        return msg
    try:
        full = study.resolve(given)
        if not full.is_file():
            return f"{given!r} does not exist (looked at {full})"
    except (OSError, ValueError) as e:
        return f"{given!r} cannot be used: {e}"
    return None


# --- mapping problems to codes and lines ----------------------------------------------------

_TYPE_CODES = {"missing": "N2-E101", "extra_forbidden": "N2-E105"}
_RANGE_TYPES = ("greater_than", "less_than", "too_short", "too_long", "string_pattern_mismatch")


def _problem_from_pydantic(err: dict[str, Any], lines: dict[tuple, int]) -> Problem:
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in ("int", "float", "list[float]", "dict[str,float]")))
    t = err["type"]
    code = _TYPE_CODES.get(t) or ("N2-E103" if t.startswith(_RANGE_TYPES) else "N2-E102")
    msg = err["msg"]
    if t == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}"
    elif t == "missing":
        msg = f"required key {loc[-1]!r} is missing"
    elif "input" in err and t != "missing":
        msg = f"{msg} (got {_short(err['input'])})"
    return Problem(code, msg, _dotted(loc), _lookup_line(loc, lines))


def _with_line(p: Problem, lines: dict[tuple, int]) -> Problem:
    loc = tuple(int(x) if x.isdigit() else x for x in re.findall(r"[^.\[\]]+", p.path))
    return Problem(p.code, p.message, p.path, _lookup_line(loc, lines), p.hint)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _dotted(loc: tuple) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def _lookup_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")


def _key_lines(source: str) -> dict[tuple, int]:
    """Map key paths to 1-based line numbers.  tomllib keeps no positions, so scan the text;
    arrays of tables are numbered by occurrence (`[[stages]]` #2 -> ("stages", 1))."""
    out: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    table: tuple = ()
    for no, line in enumerate(source.splitlines(), 1):
        if m := _HEADER.match(line):
            parts = tuple(x.strip().strip("\"'") for x in m.group(2).split("."))
            resolved: tuple = ()
            for k in parts[:-1]:  # nested under the latest element of any array table
                resolved += (k,)
                if resolved in counts:
                    resolved += (counts[resolved],)
            resolved += (parts[-1],)
            if m.group(1) == "[[":
                counts[resolved] = counts.get(resolved, -1) + 1
                out.setdefault(resolved, no)
                resolved += (counts[resolved],)
            table = resolved
            out.setdefault(table, no)
        elif m := _KEY.match(line):
            key = table + tuple(x.strip("\"'") for x in m.group(1).split("."))
            out.setdefault(key, no)
    return out
