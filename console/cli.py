"""`noodle2` command line.  User mistakes end in a coded message and exit 2, never a traceback.

`--theme` (the commands that open the console) works before or after the command name.  Every
example below is run by tests/test_cli_examples.py.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3
STATUS_EXIT = {"complete": EXIT_OK, "failed": EXIT_FAILED, "blocked": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}
EXAMPLE_DIR = "studies/quickstart-20261126-141500"

EPILOG = f"""\
examples:
  noodle2                                            open the console on ./studies
  noodle2 init my.toml                               write a complete, commented study file
  noodle2 run sample_studies/quickstart.toml         run a study in the console
  noodle2 run sample_studies/quickstart.toml --unattended     headless, one line per trial
  noodle2 run sample_studies/quickstart.toml --dry-run        print the plan only
  noodle2 validate sample_studies/large_unattended.toml
  noodle2 resume {EXAMPLE_DIR}
  noodle2 status {EXAMPLE_DIR}
  noodle2 watch  {EXAMPLE_DIR}
  noodle2 report {EXAMPLE_DIR}                 summary.html, plots, trials.csv, change list

exit codes: 0 done, 1 study failed or blocked (ci: a regression), 2 usage/validation error,
            3 interrupted (resumable)
"""


def _themes() -> list[str]:
    from noodle2.console.themes import SHORT

    return list(SHORT)


def _techs() -> list[str]:
    from noodle2.engine.tools.tech import names

    return names()


CONSOLE_COMMANDS = ("console", "run", "resume")


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--theme", default=argparse.SUPPRESS, metavar="THEME",
                        help=f"console theme: {', '.join(_themes())} (or NOODLE2_THEME)")
    p = argparse.ArgumentParser(prog="noodle2", description="Physical-design ECO studies: run, resume, watch.",
                                epilog=EPILOG, formatter_class=fmt, parents=[common])
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def command(name: str, help_: str, examples: list[str]) -> argparse.ArgumentParser:
        epilog = "examples:\n" + "".join(f"  {e}\n" for e in examples)
        # --theme only where a console can open: console, run, resume
        return sub.add_parser(name, help=help_, description=help_, formatter_class=fmt, epilog=epilog,
                              parents=[common] if name in CONSOLE_COMMANDS else [])

    _run_commands(command)
    _view_commands(command)
    _catalog_commands(command)
    return p


Command = Callable[[str, str, list[str]], argparse.ArgumentParser]


def _run_commands(command: Command) -> None:
    """Commands that start, continue or prepare a study."""
    r = command("run", "start a new study from a study file", [
        "noodle2 run sample_studies/quickstart.toml --unattended",
        "noodle2 run sample_studies/quickstart.toml --json > events.jsonl",
        "noodle2 run my.toml --study-dir scratch/my-study --unattended",
        "noodle2 run sample_studies/quickstart.toml --theme light"])
    r.add_argument("file", type=Path, help="the study file (TOML)")
    r.add_argument("--unattended", action="store_true", help="no console: print one line per trial")
    r.add_argument("--json", action="store_true", help="print events as JSON lines on stdout (implies --unattended)")
    r.add_argument("--dry-run", action="store_true", help="validate and print the plan; run nothing")
    r.add_argument("--study-dir", type=Path, help="where the study goes (default: ./studies/<name>-<time>)")
    r.add_argument("--root", type=Path, default=Path("studies"), help="parent of new study dirs (default: ./studies)")

    rs = command("resume", "continue an interrupted study", [
        f"noodle2 resume {EXAMPLE_DIR}",
        f"noodle2 resume {EXAMPLE_DIR} --json",
        f"noodle2 resume {EXAMPLE_DIR} --amend sample_studies/quickstart.toml"])
    rs.add_argument("study_dir", type=Path, help="the study directory")
    rs.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")
    rs.add_argument("--console", action="store_true", help="follow it in the console")
    rs.add_argument("--unattended", action="store_true",
                    help="headless, as `run --unattended` (already the default: accepted so scripts use one flag)")
    rs.add_argument("--amend", type=Path, metavar="FILE",
                    help="take a corrected study file: only keys that leave recorded results as they are (execution, "
                         "notify, ci, descriptions, [safety] allow, custom metrics no trial has recorded)")

    _validate_and_init(command)


def _validate_and_init(command: Command) -> None:
    v = command("validate", "check a study file and print its plan and legality report", [
        "noodle2 validate sample_studies/quickstart.toml",
        "noodle2 validate my.toml"])
    v.add_argument("file", type=Path, help="the study file (TOML)")

    i = command("init", "write a complete, commented study file that validates and runs as it is", [
        "noodle2 init my.toml",
        "noodle2 init mine.toml --rtl sample_studies/designs/alu32/alu32.v --top alu32 "
        "--sdc sample_studies/designs/alu32/alu32.sdc",
        "noodle2 init long.toml --template climb"])
    i.add_argument("file", type=Path, nargs="?", default=Path("study.toml"), help="where to write it (default: study.toml)")
    src = i.add_mutually_exclusive_group()
    src.add_argument("--rtl", type=Path, action="append", help="RTL to synthesise (repeatable)")
    src.add_argument("--netlist", type=Path, help="a gate-level netlist instead of RTL")
    i.add_argument("--top", help="the top module (default: the sample design's)")
    i.add_argument("--sdc", type=Path, help="the SDC (default: the sample design's)")
    i.add_argument("--tech", help="technology: " + ", ".join(_techs()) + " (default: the one whose cells a "
                   "--netlist uses, else osu018)")
    i.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    i.add_argument("--template", default="generic", metavar="NAME",
                   help="the stages to start from: generic (4 stages, 25 trials), climb (the sample studies' "
                        "100-trial template), or NAME.toml in $NOODLE2_TEMPLATES or ~/.config/noodle2/templates")


def _view_commands(command: Command) -> None:
    """Commands that look at studies: status, watch, the console, reports, CI, comparison."""
    st = command("status", "one-screen summary of a study", [
        f"noodle2 status {EXAMPLE_DIR}",
        f"noodle2 status {EXAMPLE_DIR} --json"])
    st.add_argument("study_dir", type=Path, help="the study directory")
    st.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    w = command("watch", "follow a study another process runs", [
        f"noodle2 watch {EXAMPLE_DIR}",
        f"noodle2 watch {EXAMPLE_DIR} --json"])
    w.add_argument("study_dir", type=Path, help="the study directory")
    w.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")

    c = command("console", "open the console (study picker)", [
        "noodle2 console",
        "noodle2 console studies --theme high-contrast"])
    c.add_argument("root", type=Path, nargs="?", default=Path("studies"), help="folder of study dirs (default: ./studies)")

    rp = command("report", "write summary.html (self-contained) and summary.md with plots, trials.csv, lineage.svg "
                 "and the winner's change list and replay Tcl", [
                     f"noodle2 report {EXAMPLE_DIR}",
                     f"noodle2 report {EXAMPLE_DIR} --out review/"])
    rp.add_argument("study_dir", type=Path, help="the study directory")
    rp.add_argument("--out", type=Path, help="where to write (default: STUDY_DIR/report)")

    pv = command("provenance", "how a case was made: every input and output with its hash, the tools and command "
                 "lines, the chain of ECOs from the base with proofs and journal lines (JSON and Markdown); --verify "
                 "re-checks the hashes and replays the chain in sta", [
                     f"noodle2 provenance {EXAMPLE_DIR}",
                     f"noodle2 provenance {EXAMPLE_DIR} --verify",
                     f"noodle2 provenance {EXAMPLE_DIR} mac16_1_2 --out review/"])
    pv.add_argument("study_dir", type=Path, help="the study directory")
    pv.add_argument("case", nargs="?", help="the case (default: the winner)")
    pv.add_argument("--out", type=Path, help="where to write (default: STUDY_DIR/report)")
    pv.add_argument("--verify", action="store_true", help="re-check every hash and replay the chain; exit 1 on a mismatch")

    sg = command("suggest", "write the next study file from what this one learned: parameter ranges narrowed to "
                 "where the better trials were, ECOs that never gained dropped; it validates as written", [
                     f"noodle2 suggest {EXAMPLE_DIR}",
                     f"noodle2 suggest {EXAMPLE_DIR} --out next.toml"])
    sg.add_argument("study_dir", type=Path, help="the study directory")
    sg.add_argument("--out", type=Path, help="where to write (default: NAME.next.toml in the current folder)")
    sg.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    ci = command("ci", "run a study for CI and compare its result with a baseline "
                 "(exit 0 pass, 1 regression, 2 usage, 3 interrupted)", [
                     "noodle2 ci sample_studies/quickstart.toml --baseline baseline.json --update-baseline",
                     "noodle2 ci sample_studies/quickstart.toml --baseline baseline.json --junit ci.xml"])
    ci.add_argument("file", type=Path, help="the study file; runs locked unless it sets safety_domain")
    ci.add_argument("--baseline", type=Path, required=True, help="the baseline JSON to compare with (or to write)")
    ci.add_argument("--junit", type=Path, help="write JUnit XML: a testcase per metric and per stage gate")
    ci.add_argument("--update-baseline", action="store_true", help="record this run as the new baseline")
    ci.add_argument("--study-dir", type=Path, help="where the run goes (default: a new dir under --root)")
    ci.add_argument("--root", type=Path, default=Path("studies"), help="folder for new study dirs (default: ./studies)")

    cp = command("compare", "two studies side by side: best metrics better or worse, ECO effectiveness, the winners' "
                 "change lists", [f"noodle2 compare {EXAMPLE_DIR} studies/quickstart-20261127-090000"])
    cp.add_argument("study_a", type=Path, help="the reference study directory")
    cp.add_argument("study_b", type=Path, help="the study compared with it")
    cp.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                    help="colour better and worse (auto: on a terminal, unless NO_COLOR is set)")



def _catalog_commands(command: Command) -> None:
    """Commands about the installation: the cluster, the ECOs, the technologies, the schema."""
    rc = command("ray-check", "check a Ray cluster: nodes, CPUs, memory, the tools on every node, one trial round "
                  "trip per node", ["noodle2 ray-check", "noodle2 ray-check --tools sta,yosys,qflow"])
    rc.add_argument("address", nargs="?", default="local",
                    help='the cluster: "local" (start one here), "auto", or host:port such as 10.0.0.1:6379 '
                         '(default: local)')
    rc.add_argument("--tools", default="sta,yosys", help="tools every node needs (default: sta,yosys)")

    ec = command("ecos", "list the ECO catalog: built-in, from plugins, and a study file's own", [
        "noodle2 ecos", "noodle2 ecos sample_studies/quickstart.toml"])
    ec.add_argument("file", type=Path, nargs="?", help="also list this study file's custom ECOs and metrics")
    command("techs", "list the technologies: shipped or installed, their corners, time unit and whether qflow "
            "places and routes them", ["noodle2 techs"])
    command("schema", "print the study file's JSON Schema (for Taplo, VS Code's Even Better TOML)", [
        "noodle2 schema > noodle2.schema.json"])
    ex = command("explain", "what an error code means and how to fix it (all of them: docs/errors.md)", [
        "noodle2 explain N2-E113", "noodle2 explain E104"])
    ex.add_argument("code", help="an error code, e.g. N2-E113")
    co = command("completion", "print a shell completion script: bash reads it from "
                 "~/.local/share/bash-completion/completions/noodle2, zsh as _noodle2 in a folder of $fpath, fish "
                 "from ~/.config/fish/completions/noodle2.fish", [
                     "noodle2 completion bash > noodle2.bash", "noodle2 completion zsh > _noodle2",
                     "noodle2 completion fish > noodle2.fish"])
    co.add_argument("shell", choices=["bash", "zsh", "fish"])


def main(argv: list[str] | None = None) -> int:
    from noodle2.engine.errors import HINTS, EnvironmentFault, N2Error

    try:
        args = _parser().parse_args(argv)
        theme = getattr(args, "theme", None)
        if theme is not None and theme not in _themes():
            print(f"noodle2: N2-E117 unknown theme {theme!r}; use one of: {', '.join(_themes())}", file=sys.stderr)
            return EXIT_USAGE
        return _dispatch(args)
    except N2Error as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE
    except EnvironmentFault as f:  # the machine, before any study ran (a full disk while making its folder)
        print(f.render(), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `noodle2 watch DIR | head`: the reader left; leave quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as e:  # a path the user named that cannot be read or written
        where = f" {e.filename}" if e.filename else ""
        hint = (f"check the path: {os.path.abspath(e.filename)} does not exist"
                if isinstance(e, FileNotFoundError) and e.filename else HINTS["N2-E214"])
        print(f"noodle2: N2-E214 cannot use{where}: {e.strerror or e}\n        hint: {hint}", file=sys.stderr)
        return EXIT_USAGE


def invocation() -> str:
    """This program as the user can paste it: the noodle2 script they ran, or python -m."""
    arg0 = sys.argv[0] if sys.argv else "noodle2"
    if Path(arg0).name == "noodle2":
        return shlex.quote(arg0)
    return f"{shlex.quote(sys.executable)} -m noodle2.console.cli"


def _dispatch(args: argparse.Namespace) -> int:
    theme = getattr(args, "theme", None)
    if args.cmd is None or args.cmd == "console":
        return _console(getattr(args, "root", Path("studies")), theme)
    if args.cmd == "validate":
        return cmd_validate(args.file)
    if args.cmd == "run":
        return cmd_run(args, theme)
    if args.cmd == "resume":
        return cmd_resume(args, theme)
    if args.cmd == "status":
        return cmd_status(args.study_dir, args.json)
    if args.cmd == "watch":
        return cmd_watch(args.study_dir, args.json)
    if args.cmd == "ecos":
        return cmd_ecos(args.file)
    if args.cmd == "init":
        return cmd_init(args)
    if args.cmd == "schema":
        return cmd_schema()
    if args.cmd == "techs":
        return cmd_techs()
    if args.cmd == "report":
        return cmd_report(args.study_dir, args.out)
    if args.cmd == "ci":
        return cmd_ci(args)
    if args.cmd == "suggest":
        return cmd_suggest(args.study_dir, args.out, args.force)
    if args.cmd == "provenance":
        return cmd_provenance(args.study_dir, args.case, args.out, args.verify)
    if args.cmd == "compare":
        return cmd_compare(args)
    if args.cmd == "explain":
        return cmd_explain(args.code)
    if args.cmd == "completion":
        from noodle2.console.completion import script

        print(script(args.shell, _parser()), end="")
        return EXIT_OK
    if args.cmd == "ray-check":
        return cmd_ray_check(args.address, [t for t in args.tools.split(",") if t])
    return EXIT_USAGE


def _has_terminal() -> bool:
    """The full-screen console needs a terminal on both ends; cron, CI, nohup and pipes get none.
    The smoke mode of the tests of --help examples draws nothing (headless) and needs none."""
    if os.environ.get("NOODLE2_CONSOLE_SMOKE"):
        return True
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def _console(root: Path, theme: str | None, **kw) -> int:
    from noodle2.console.app import run_console
    from noodle2.console.themes import UnknownTheme
    from noodle2.engine.errors import N2Error

    if not _has_terminal():
        raise N2Error.one("N2-E215", "the console needs a terminal: stdin or stdout is not a tty, or TERM is dumb",
                          hint=f"run it in a terminal; without one: `{invocation()} run FILE --unattended`, "
                               f"`{invocation()} status DIR` or `{invocation()} watch DIR`")

    try:
        return run_console(root, theme=theme, **kw)
    except UnknownTheme as e:
        print(f"noodle2: N2-E117 {e}", file=sys.stderr)
        return EXIT_USAGE


def cmd_explain(code: str) -> int:
    from noodle2.engine.errors import MEANINGS, N2Error, explain

    text = explain(code)
    if text is None:
        near = difflib.get_close_matches(code.upper(), list(MEANINGS), n=1, cutoff=0.6)
        raise N2Error.one("N2-E101", f"no error code {code!r}",
                          hint=(f"did you mean {near[0]}? " if near else "") + "docs/errors.md lists every code")
    print(text)
    return EXIT_OK


def cmd_validate(file: Path) -> int:
    from noodle2.engine.study.load import load_study
    from noodle2.engine.study.plan import format_plan

    study = load_study(file)
    print(format_plan(study))
    return EXIT_OK


def cmd_ecos(file: Path | None = None) -> int:
    from noodle2.engine.catalog.ecos import CATALOG, catalog, definitions
    from noodle2.engine.fmt import fmt_num
    from noodle2.engine.study.plugins import broken, plugin_ecos, plugin_metrics

    shown = {**definitions(plugin_ecos()), **CATALOG}
    metrics = list(plugin_metrics())
    if file is not None:
        from noodle2.engine.study.load import load_study

        spec = load_study(file).spec
        shown.update(catalog(spec))
        metrics += [m for m in spec.custom.metrics if m.name not in {x.name for x in metrics}]
    for e in shown.values():
        origin = "" if e.source == "built-in" else f"  [{e.source}]"
        print(f"{e.name:<22} {e.eco_class.value:<18} {e.description}{origin}")
        for p in e.params:
            r = f"[{fmt_num(p.lo)}, {fmt_num(p.hi)}] default {fmt_num(p.default, p.kind is int)}"
            span = f" (sampled up to the base case's {p.span} when a stage sets no range)" if p.span else ""
            print(f"    {p.name:<16} {p.kind.__name__:<5} {r}  {p.doc}{span}")
    if metrics:
        print("\ncustom metrics:")
        for m in metrics:
            how = f"/{m.regex}/" if m.regex else m.json_pointer
            print(f"  {m.name:<22} {m.direction:<4} {m.unit:<6} from {m.source} {how}  [{m.source_name}]")
    for b in broken():
        print(f"! plugin failed to load: {b}", file=sys.stderr)
    return EXIT_OK


def cmd_techs() -> int:
    from noodle2.engine.errors import N2Error
    from noodle2.engine.tools.tech import facts, names, resolve_tech

    for name in names():
        f = facts(name)
        try:
            resolve_tech(name, None)
            where = "shipped" if "root" not in f else "installed"
        except N2Error:
            where = f"not installed: {f.get('install', '')}"
        corners = ", ".join(f["corners"])
        vts = f" + VT sets {', '.join(f['vt'])}" if f.get("vt") else ""
        print(f"{name:<10} {where:<12} corners {corners}{vts}; time in {f.get('time_unit', 'ns')}; "
              f"{'place and route with qflow' if f.get('qflow') else 'timing only (no qflow technology)'}")
        print(f"{'':<10} {f.get('description', '')}")
    return EXIT_OK


def cmd_schema() -> int:
    import orjson

    from noodle2.engine.study.models import json_schema

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from noodle2.engine.errors import N2Error
    from noodle2.engine.study.load import parse_study
    from noodle2.engine.study.template import study_file

    if args.file.exists() and not args.force:
        raise N2Error.one("N2-E206", f"{args.file} exists", hint="pick another name, or add --force to overwrite it")
    text = study_file(args.file.parent.resolve(), rtl=args.rtl, netlist=args.netlist, top=args.top, sdc=args.sdc,
                      tech=args.tech, template=args.template)
    parse_study(text, args.file.resolve())  # it must validate before it is written: a failed init leaves nothing
    args.file.parent.mkdir(parents=True, exist_ok=True)
    args.file.write_text(text)
    print(f"wrote {args.file}: it validates as it is.  Next:\n  {invocation()} validate {shlex.quote(str(args.file))}\n"
          f"  {invocation()} run {shlex.quote(str(args.file))}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, theme: str | None) -> int:
    from noodle2.engine.run.studydir import new_study_dir
    from noodle2.engine.study.load import load_study
    from noodle2.engine.study.plan import format_plan

    study = load_study(args.file)
    if args.dry_run:
        print(format_plan(study))
        return EXIT_OK
    if not (args.unattended or args.json):
        from noodle2.console.themes import UnknownTheme, choose

        try:
            choose(theme)  # a bad theme is refused before a study dir is made
        except UnknownTheme as e:
            print(f"noodle2: N2-E117 {e}", file=sys.stderr)
            return EXIT_USAGE
    headless = args.unattended or args.json or not _has_terminal()
    if not (args.unattended or args.json) and headless:
        print("noodle2: no terminal (stdin or stdout is not a tty, or TERM=dumb): running headless, as with "
              "--unattended", file=sys.stderr)
    study_dir = new_study_dir(study, args.root, args.study_dir)
    if not headless:
        return _console(study_dir.parent, theme, open_study=study_dir, start_engine=True)
    from noodle2.console.headless import say

    human = sys.stderr if args.json else sys.stdout  # --json keeps stdout pure JSON lines
    say(format_plan(study), human)
    say(f"study dir: {study_dir}", human)
    return run_engine(study_dir, json=args.json)


def cmd_resume(args: argparse.Namespace, theme: str | None = None) -> int:
    from noodle2.engine.errors import N2Error
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.run.studydir import open_for_resume

    require_study_dir(args.study_dir)
    s = recover(args.study_dir).state
    if s.status in ("complete", "failed", "blocked"):
        print(f"study {s.name} already finished ({s.status}); nothing to resume. "
              f"`{invocation()} status {shlex.quote(str(args.study_dir))}` shows the result.")
        return EXIT_OK
    open_for_resume(args.study_dir, ignore_original=args.amend is not None)  # refuse before anything runs
    if args.amend is not None:
        if args.console:
            raise N2Error.one("N2-E202", "--amend runs headless; resume with --amend first, then open the console",
                              hint=f"{invocation()} resume {shlex.quote(str(args.study_dir))} --amend "
                                   f"{shlex.quote(str(args.amend))}")
        return run_engine(args.study_dir, json=args.json, amend=args.amend)
    if args.console and _has_terminal():
        return _console(args.study_dir.parent, theme, open_study=args.study_dir.resolve(), start_engine=True)
    if args.console:
        print("noodle2: no terminal: resuming headless", file=sys.stderr)
    return run_engine(args.study_dir, json=args.json)


def run_engine(study_dir: Path, json: bool = False, amend: Path | None = None) -> int:
    """Run or resume the study in this process (the console starts this as its own process)."""
    import anyio

    from noodle2.console.headless import Printer
    from noodle2.engine.run.engine import Engine
    from noodle2.engine.run.studydir import amend_for_resume, open_for_resume, read_provenance
    from noodle2.engine.tools import make_tool

    study_dir = study_dir.resolve()
    study = open_for_resume(study_dir, ignore_original=amend is not None)
    amendment = amend_for_resume(study_dir, amend) if amend is not None else None
    if amendment is not None:
        study = amendment.study
    engine = Engine(study_dir, study, make_tool(study, study_dir), listeners=[Printer(json=json)],
                    provenance=read_provenance(study_dir), resume_command=f"{invocation()} resume",
                    amendment=amendment)
    engine.hold_signals_at_end = True
    try:
        status = anyio.run(engine.run)
    finally:
        _absorb_late_signals()
    if engine.fault is not None:
        print(engine.fault.render(), file=sys.stderr)
        print(f"resume with: {invocation()} resume {shlex.quote(str(study_dir))}", file=sys.stderr)
    return STATUS_EXIT.get(status, EXIT_FAILED)


def _absorb_late_signals() -> None:
    """A stop signal that arrives once the study has ended changes nothing: the process exits
    with the study's own code (the engine blocked them before it let go of its handlers)."""
    import signal

    from noodle2.engine.run.control import STOP_SIGNALS

    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def cmd_status(study_dir: Path, json: bool = False) -> int:
    from noodle2.engine.fsutil import lock_holder
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.reports.status import status_json, status_text

    require_study_dir(study_dir)
    rec = recover(study_dir)
    for w in rec.warnings:
        print(f"! {w}", file=sys.stderr)
    if json:
        import orjson

        sys.stdout.write(orjson.dumps(status_json(rec.state, lock_holder(study_dir))).decode() + "\n")
    else:
        print(status_text(rec.state, lock_holder(study_dir), resume=f"{invocation()} resume {shlex.quote(str(study_dir))}"))
    return EXIT_OK


def cmd_report(study_dir: Path, out: Path | None) -> int:
    """Reads the study (no lock: an engine may still run it) and writes the report files."""
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.reports import summary

    require_study_dir(study_dir)
    rec = recover(study_dir)
    got = summary.write(study_dir, rec.state, out)
    print(f"report: {got['out']}/summary.html")
    print(f"  wrote {', '.join(got['written'])}")
    for n in got["notes"]:
        print(f"  note: {n}")
    return EXIT_OK


def cmd_suggest(study_dir: Path, out: Path | None, force: bool) -> int:
    """What the study learned, and the next study file written from it."""
    from noodle2.engine.errors import N2Error
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.policy.learn import lessons, recommendations
    from noodle2.engine.run.studydir import read_provenance
    from noodle2.engine.study import suggest
    from noodle2.engine.study.load import load_study

    require_study_dir(study_dir)
    d = study_dir.resolve()
    s = recover(d).state
    study = load_study(d / "inputs" / "study.toml", stored=True)
    source = Path(read_provenance(d).get("source_study") or d / "inputs" / "study.toml")
    origin = source.parent if source.parent.is_dir() else d / "inputs"
    out = out or Path(f"{source.stem}.next.toml")  # here, never into a sample's or a package's folder
    if out.exists() and not force:
        raise N2Error.one("N2-E218", f"{out} exists", hint="give another --out, or --force to replace it")
    obj, got = lessons(s, study.spec.ranking)
    print(f"what {s.name} learned ({obj}, gain per trial over its parent):")
    for line in recommendations(obj, got):
        print(f"  {line}")
    changed = suggest.write(study, s, out, origin)
    print(f"wrote {out} ({len(changed)} change(s)); it validates: {invocation()} validate {shlex.quote(str(out))}")
    return EXIT_OK


def cmd_provenance(study_dir: Path, case: str | None, out: Path | None, verify: bool) -> int:
    """Reads the study (no lock) and writes provenance-<case>.json and .md; --verify checks them."""
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.reports import provenance

    require_study_dir(study_dir)
    d = study_dir.resolve()
    s = recover(d).state
    t = provenance.pick_case(s, case)
    doc = provenance.write(d, s, t, out)
    print(f"provenance of {t.case_id}: {doc['json']} and {doc['md']}")
    if not verify:
        return EXIT_OK
    checks = provenance.verify(d, s, doc["doc"])
    for name, ok, detail in checks:
        print(f"  {'✓' if ok else '✗'} {name}: {detail}")
    bad = sum(not ok for _, ok, _ in checks)
    print(f"verify: {len(checks) - bad}/{len(checks)} checks match" + ("" if not bad else f"; {bad} do not"))
    return EXIT_OK if not bad else EXIT_FAILED


def cmd_ray_check(address: str, tools: list[str]) -> int:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        print("noodle2: N2-E114 Ray is not installed\n        hint: pip install 'noodle2[ray]'", file=sys.stderr)
        return EXIT_USAGE
    from noodle2.engine.executors.ray_exec import check

    try:
        lines, ok = check(address, tools)
    except Exception as e:  # noqa: BLE001 - Ray's connection errors, said plainly
        print(f"noodle2: N2-E211 cannot reach the Ray cluster at {address}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(lines))
    print("ray-check: " + ("ok" if ok else "FAILED: see the nodes above"))
    return EXIT_OK if ok else EXIT_FAILED


def cmd_compare(args: argparse.Namespace) -> int:
    from noodle2.engine.journal.store import recover, require_study_dir
    from noodle2.engine.reports.compare import compare

    for d in (args.study_a, args.study_b):
        require_study_dir(d)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    sys.stdout.write(compare((args.study_a, recover(args.study_a).state), (args.study_b, recover(args.study_b).state),
                             colour))
    return EXIT_OK


def cmd_ci(args: argparse.Namespace) -> int:
    """Run headless, then hold the result to the baseline.  Exit 0 pass, 1 regression (or a
    study that did not complete), 2 usage, 3 interrupted."""
    import time
    import tomllib

    import orjson

    from noodle2.engine.journal.store import recover
    from noodle2.engine.reports import ci
    from noodle2.engine.run.studydir import new_study_dir
    from noodle2.engine.study.load import parse_study
    from noodle2.engine.study.models import maximised

    if not args.update_baseline and not args.baseline.is_file():
        print(f"noodle2: N2-E119 no baseline at {args.baseline}", file=sys.stderr)
        print("        hint: record one first: noodle2 ci FILE --baseline FILE --update-baseline", file=sys.stderr)
        return EXIT_USAGE
    text = args.file.read_text(encoding="utf-8") if args.file.is_file() else ""
    try:
        explicit = "safety_domain" in tomllib.loads(text).get("study", {})
    except tomllib.TOMLDecodeError:
        explicit = True  # parse_study reports the syntax error with its line
    if text and not explicit:  # CI runs locked unless the study file says otherwise
        text = re.sub(r"^\[study\][^\n]*\n", lambda m: m.group(0) + 'safety_domain = "locked"  # noodle2 ci default\n',
                      text, count=1, flags=re.M)
    study = parse_study(text, args.file) if text else parse_study(args.file.read_text(), args.file)
    study_dir = new_study_dir(study, args.root, args.study_dir)
    print(f"ci: {study.spec.study.name} in the {study.spec.study.safety_domain} domain, study dir {study_dir}", flush=True)
    t0 = time.monotonic()
    rc = run_engine(study_dir)
    s = recover(study_dir).state
    current = ci.baseline(s)
    if rc == EXIT_INTERRUPTED:
        return rc
    if args.update_baseline:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        args.baseline.write_bytes(orjson.dumps(current, option=orjson.OPT_INDENT_2))
        print(f"ci: baseline recorded in {args.baseline}")
        return EXIT_OK if rc == EXIT_OK else EXIT_FAILED
    base = orjson.loads(args.baseline.read_bytes())
    directions = {m: (study.spec.ranking.directions.get(m) == "max") if m in study.spec.ranking.directions
                  else bool(maximised(m)) for m in study.spec.ci.thresholds}
    checks = ci.compare(base, current, study.spec.ci.thresholds, directions, study.spec.ci.stage_gates)
    print(ci.table(checks))
    if args.junit:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        args.junit.write_text(ci.junit(s.name, checks, time.monotonic() - t0))
        print(f"ci: JUnit XML in {args.junit}")
    failed = [c for c in checks if not c.passed]
    print(f"ci: {'PASS' if not failed and rc == EXIT_OK else 'REGRESSION'}: {len(checks) - len(failed)}/{len(checks)} "
          f"checks passed" + ("" if rc == EXIT_OK else f"; the study ended {s.status}"))
    return EXIT_OK if not failed and rc == EXIT_OK else EXIT_FAILED


def cmd_watch(study_dir: Path, json: bool) -> int:
    """Follow the journal of a study another process runs; needs no lock and changes nothing."""
    import time

    from noodle2.console.follow import StudyFollower
    from noodle2.console.headless import Printer
    from noodle2.engine.journal import events as ev
    from noodle2.engine.journal.store import require_study_dir

    require_study_dir(study_dir)
    follower = StudyFollower(study_dir, replay=True)
    printer = Printer(json=json)
    idle_since = time.monotonic()
    while True:
        new = follower.poll_each(printer)
        for e in new:
            if isinstance(e, ev.StudyFinished):
                return STATUS_EXIT.get(e.status, EXIT_FAILED)
        if new:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 2 and follower.engine_pid() is None:
            print(f"⏸ no engine is running {follower.state.name or study_dir}; resume with: "
                  f"{invocation()} resume {shlex.quote(str(study_dir))}", flush=True)
            return EXIT_INTERRUPTED
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
