"""User-facing errors: every one has a code, a key path, a line where known, and a hint.

Codes are stable; tests and operators grep for them.  N2-E1xx are study-file problems,
N2-E2xx study-directory / runtime problems, N2-E3xx tool and technology problems.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

HINTS: dict[str, str] = {
    "N2-E100": "fix the TOML syntax at the line shown (quotes, brackets, '=' between key and value)",
    "N2-E101": "add the missing key; `noodle2 init FILE` writes a complete, commented study file",
    "N2-E102": "give the value the type shown in the message",
    "N2-E103": "bring the value into the range shown in the message",
    "N2-E104": "lower survivors or raise trials for this stage",
    "N2-E105": "remove the key or fix its spelling; unknown keys are refused so typos never pass silently",
    "N2-E106": "use an ECO from `noodle2 ecos`",
    "N2-E107": "use a parameter of this ECO within its legal range (`noodle2 ecos` lists them)",
    "N2-E108": "name earlier stages in `after`, without cycles",
    "N2-E109": "give an existing file: a path relative to the study file, or an absolute one",
    "N2-E110": "give every stage a unique name",
    "N2-E111": "pick a broader safety domain, or remove the ECO from the stage",
    "N2-E112": "list only ECOs that the tool in [tool] implements",
    "N2-E113": "fix the ranking section (objective metrics, weights, tolerances)",
    "N2-E114": "install Ray: pip install 'noodle2[ray]' (or use executor = \"local\")",
    "N2-E128": "name a template `noodle2 init --help` lists, or put your own as NAME.toml in the templates folder",
    "N2-E127": "remove noodle2's own variables (N2_*, NOODLE2_*) from [tool] env and give one-line values",
    "N2-E126": "give the stage its own [stages.ranking] on metrics its mode measures (wns_ps, tns_ps, power), or make it a route stage",
    "N2-E125": "name the design's top module in top = \"...\", and give RTL as rtl = [...], a gate-level netlist as netlist",
    "N2-E115": "remove the command from the SDC, or use safety_domain = \"sandbox\" to source it as raw Tcl",
    "N2-E116": "use only {trial_dir}, {parent_dir}, {case_id} and {eco} in [tool].command",
    "N2-E117": "use one of the themes listed (`noodle2 console --help` names them)",
    "N2-E123": "name a corner the technology has (nangate45: typ, fast, slow), or give the corner's own liberty",
    "N2-E124": "pick the technology the netlist was made for (design.tech), or give its Liberty as design.liberty",
    "N2-E122": 'name it in [safety] allow (e.g. allow = ["notify"]) if the locked study means to run it, or remove it',
    "N2-E121": "fix the custom ECO or metric definition named (`noodle2 ecos FILE` lists what loaded)",
    "N2-E120": 'give notify.webhook = "https://host/path" and/or notify.command = ["program", "arg"]',
    "N2-E119": "record a baseline first: noodle2 ci FILE --baseline FILE --update-baseline",
    "N2-E118": "physical ECOs (replace, reroute) belong in route-mode stages; route modes need a qflow technology",
    "N2-E201": "wait for the running engine to finish, or stop it (`noodle2 status DIR` shows it)",
    "N2-E202": "start a new study with `noodle2 run FILE`; a study's inputs cannot change under it",
    "N2-E203": "point at a study directory (one holding journal.jsonl), e.g. under ./studies/",
    "N2-E204": "nothing to resume: the study already ended; `noodle2 status DIR` shows the result",
    "N2-E205": "the journal is damaged before its last line; restore it from a backup",
    "N2-E206": "pick a new --study-dir; existing results are never touched",
    "N2-E207": "name a study directory that has an eco_leaderboard.json",
    "N2-E208": "free space on the study's disk (or raise the quota), then `noodle2 resume DIR`; nothing "
               "finished is lost and the interrupted trials run again",
    "N2-E209": "restore the file (a backup, or re-run the study that made it); noodle2 never reads a "
               "changed input, so nothing was charged to an ECO",
    "N2-E211": "start the cluster (`ray start --head`) or fix [execution] address, then `noodle2 resume DIR`; "
               "nothing ran, nothing is lost",
    "N2-E210": "remove the symlink; noodle2 reads and writes only inside the study directory",
    "N2-E213": "restore journal.jsonl from a backup; without it a resume would run finished trials again",
    "N2-E215": "open the console in a terminal; headless: `noodle2 run FILE --unattended`, `noodle2 status DIR`",
    "N2-E214": "pick a path you can write (a folder that exists, on a disk with space), then run the command again",
    "N2-E217": "lower [execution] memory_limit_mb to what a node offers, or add a larger node; nothing ran",
    "N2-E218": "give another --out, or --force to replace the file",
    "N2-E216": "name a case the study has (`noodle2 status DIR` shows them), or give none for the winner",
    "N2-E212": "replace it with the file noodle2 wrote (from a backup), or start the study again with `noodle2 run FILE`",
    "N2-E301": "use a technology `noodle2 techs` lists, or give your own liberty = [\"...\"]",
    "N2-E302": "install the tool, or fix [tool].command",
    "N2-E303": "check the RTL and the top module name; the Yosys log is shown above",
}


# What each code means: docs/errors.md and `noodle2 explain CODE` are made from this and HINTS.
MEANINGS: dict[str, str] = {
    "N2-E100": "The study file is not valid TOML.",
    "N2-E101": "A required key, option or section is missing.",
    "N2-E102": "A value has the wrong type.",
    "N2-E103": "A value is out of its allowed range.",
    "N2-E104": "A stage keeps more survivors than it runs trials.",
    "N2-E105": "An unknown key: a typo, or a key of another table.",
    "N2-E106": "An unknown ECO name.",
    "N2-E107": "An ECO parameter that does not exist or is outside its legal range.",
    "N2-E108": "A stage's `after` names a stage that does not come earlier, or makes a cycle.",
    "N2-E109": "An input file or folder is missing or unusable.",
    "N2-E110": "Two stages share a name.",
    "N2-E111": "An ECO's class is not allowed in the study's safety domain.",
    "N2-E112": "An ECO the configured tool does not implement.",
    "N2-E113": "The ranking (or a rail or CI threshold) names a metric that cannot be used.",
    "N2-E114": "The Ray executor is asked for but Ray is not installed.",
    "N2-E115": "The SDC calls a command that is not SDC, in a domain that reads SDC only.",
    "N2-E116": "A command tool's argument uses an unknown placeholder.",
    "N2-E117": "An unknown console theme.",
    "N2-E118": "A physical ECO or route stage where it cannot run.",
    "N2-E119": "`noodle2 ci` has no baseline to compare with.",
    "N2-E120": "A [notify] section that notifies nothing.",
    "N2-E121": "A custom or plugin ECO or metric that cannot be loaded.",
    "N2-E122": "A locked study runs code (notify, custom ECOs, plugins) it has not allowed.",
    "N2-E123": "A design corner the technology does not have, or cannot be timed as asked.",
    "N2-E126": "A stage ranks on a metric its mode cannot produce (congestion in a timing-only stage).",
    "N2-E127": "A [tool] env variable noodle2 owns, or a value that is not one line.",
    "N2-E128": "A study template that does not exist or cannot be used.",
    "N2-E124": "The netlist uses cells the technology's Liberty does not have.",
    "N2-E125": "The top module is not in the design's files, or RTL was given as a netlist.",
    "N2-E201": "Another engine is running this study.",
    "N2-E202": "A resume cannot take the change asked for.",
    "N2-E203": "Not a study directory.",
    "N2-E204": "The study has already ended.",
    "N2-E205": "The journal is damaged before its last line.",
    "N2-E206": "The file or study directory exists already.",
    "N2-E207": "The study directory has no ECO leaderboard to import.",
    "N2-E208": "The study's disk is full; the engine stopped with a checkpoint.",
    "N2-E209": "An input a trial reads changed or disappeared since it was recorded.",
    "N2-E210": "A symlink where noodle2 writes or reads study files.",
    "N2-E211": "The Ray cluster cannot be reached.",
    "N2-E212": "A state file (checkpoint, provenance) fails its check and is not trusted.",
    "N2-E213": "The journal is missing while a checkpoint exists.",
    "N2-E214": "A path named on the command line cannot be read or written.",
    "N2-E215": "The console needs a terminal.",
    "N2-E216": "The study has no such case, or no finished case yet.",
    "N2-E217": "No node of the Ray cluster can run a trial's CPU and memory request.",
    "N2-E218": "The file a command would write already exists.",
    "N2-E301": "An unknown technology, or one whose files are missing.",
    "N2-E302": "A tool noodle2 needs is not installed.",
    "N2-E303": "Synthesis of the RTL failed.",
}


def explain(code: str) -> str | None:
    """A code's meaning and fix, as `noodle2 explain` prints it; None for an unknown code."""
    code = code.strip().upper()
    if not code.startswith("N2-"):
        code = "N2-" + code
    if code not in MEANINGS:
        return None
    return f"{code}: {MEANINGS[code]}\n  fix: {HINTS.get(code, '(see the message)')}"


def errors_markdown() -> str:
    """docs/errors.md (tests/test_docs.py keeps the file in step)."""
    out = ["# Error codes", "",
           "Every coded message noodle2 prints, what it means and how to fix it; `noodle2 explain CODE` prints "
           "one.  Generated from `engine/errors.py`: `.venv/bin/python -m noodle2.engine.errors > docs/errors.md`.",
           "", "| code | meaning | fix |", "|---|---|---|"]
    for code in sorted(MEANINGS):
        fix = HINTS.get(code, "").replace("|", "\\|")
        out.append(f"| {code} | {MEANINGS[code]} | {fix} |")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    path: str = ""
    line: int | None = None
    hint: str | None = None

    def render(self) -> str:
        where = self.path
        if self.line is not None:
            where = f"{where or '(file)'} (line {self.line})"
        hint = self.hint or HINTS.get(self.code, "")
        text = f"{self.code} {where}: {self.message}" if where else f"{self.code}: {self.message}"
        return text + (f"\n        hint: {hint}" if hint else "")


class EnvironmentFault(Exception):
    """The machine, not the study: a full disk, an I/O error, an input that vanished or changed.
    Never a trial result: the engine stops as interrupted and the trials it hit run again."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.problem = Problem(code, message, hint=hint)

    def render(self) -> str:
        return self.problem.render()


def validation_reason(e: Exception) -> str:
    """One line for a pydantic ValidationError (first error, with where it is), or any error."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def env_fault(e: OSError, what: str) -> EnvironmentFault | None:
    """The fault an OSError stands for, or None when it is not the environment's."""
    if e.errno in DISK_ERRNOS:
        return EnvironmentFault("N2-E208", f"no space left on the study's disk while {what} ({e.strerror})")
    if e.errno in (errno.EIO, errno.EROFS):
        return EnvironmentFault("N2-E208", f"the study's disk failed while {what} ({e.strerror})",
                                hint="check the disk; then `noodle2 resume DIR`")
    return None


@dataclass
class N2Error(Exception):
    """One or more user-facing problems. Raised for user mistakes; never carries a traceback."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.render())

    @classmethod
    def one(cls, code: str, message: str, path: str = "", hint: str | None = None) -> "N2Error":
        return cls([Problem(code, message, path, None, hint)])

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


if __name__ == "__main__":
    print(errors_markdown(), end="")
