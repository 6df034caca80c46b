"""`noodle2` command line.  User mistakes end in a coded message and exit 2, never a traceback."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3
STATUS_EXIT = {"complete": EXIT_OK, "failed": EXIT_FAILED, "blocked": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}

EPILOG = """\
examples:
  noodle2                                            open the console on ./studies
  noodle2 run sample_studies/quickstart.toml         run a study in the console
  noodle2 run sample_studies/quickstart.toml --unattended     headless, one line per trial
  noodle2 run sample_studies/quickstart.toml --dry-run        print the plan only
  noodle2 validate sample_studies/large_unattended.toml
  noodle2 resume studies/quickstart-20261126-141500
  noodle2 status studies/quickstart-20261126-141500
  noodle2 watch  studies/quickstart-20261126-141500

exit codes: 0 done, 1 study failed or blocked, 2 usage/validation error, 3 interrupted (resumable)
"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="noodle2", description="Physical-design ECO studies: run, resume, watch.",
                                epilog=EPILOG, formatter_class=fmt)
    p.add_argument("--theme", help="console theme: dark, light, high-contrast (or NOODLE2_THEME)")
    sub = p.add_subparsers(dest="cmd")

    r = sub.add_parser("run", help="start a new study from a study file", formatter_class=fmt, epilog="""\
examples:
  noodle2 run sample_studies/quickstart.toml --unattended
  noodle2 run sample_studies/quickstart.toml --json > events.jsonl
  noodle2 run my.toml --study-dir /scratch/my-study --unattended
  nohup noodle2 run my.toml --unattended > my.log 2>&1 &
""")
    r.add_argument("file", type=Path)
    r.add_argument("--unattended", action="store_true", help="no console: print one line per trial")
    r.add_argument("--json", action="store_true", help="print events as JSON lines (implies --unattended)")
    r.add_argument("--dry-run", action="store_true", help="validate and print the plan; run nothing")
    r.add_argument("--study-dir", type=Path, help="where the study goes (default: ./studies/<name>-<time>)")
    r.add_argument("--root", type=Path, default=Path("studies"), help="parent of new study dirs")

    rs = sub.add_parser("resume", help="continue an interrupted study", formatter_class=fmt, epilog="""\
examples:
  noodle2 resume studies/quickstart-20261126-141500
  noodle2 resume studies/quickstart-20261126-141500 --json
""")
    rs.add_argument("study_dir", type=Path)
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--console", action="store_true", help="follow it in the console")

    v = sub.add_parser("validate", help="check a study file and print its plan", formatter_class=fmt, epilog="""\
examples:
  noodle2 validate sample_studies/quickstart.toml
""")
    v.add_argument("file", type=Path)

    st = sub.add_parser("status", help="one-screen summary of a study", formatter_class=fmt, epilog="""\
examples:
  noodle2 status studies/quickstart-20261126-141500
""")
    st.add_argument("study_dir", type=Path)

    w = sub.add_parser("watch", help="follow a study another process runs", formatter_class=fmt, epilog="""\
examples:
  noodle2 watch studies/quickstart-20261126-141500
  noodle2 watch studies/quickstart-20261126-141500 --json
""")
    w.add_argument("study_dir", type=Path)
    w.add_argument("--json", action="store_true")

    c = sub.add_parser("console", help="open the console (study picker)", formatter_class=fmt, epilog="""\
examples:
  noodle2 console
  noodle2 console /scratch/studies --theme high-contrast
""")
    c.add_argument("root", type=Path, nargs="?", default=Path("studies"))

    e = sub.add_parser("ecos", help="list the ECO catalog", formatter_class=fmt, epilog="examples:\n  noodle2 ecos\n")
    del e
    return p


def main(argv: list[str] | None = None) -> int:
    from engine.errors import N2Error

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except N2Error as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd is None or args.cmd == "console":
        from console.app import run_console

        return run_console(getattr(args, "root", Path("studies")), theme=args.theme)
    if args.cmd == "validate":
        return cmd_validate(args.file)
    if args.cmd == "run":
        return cmd_run(args)
    if args.cmd == "resume":
        return cmd_resume(args)
    if args.cmd == "status":
        return cmd_status(args.study_dir)
    if args.cmd == "watch":
        return cmd_watch(args.study_dir, args.json)
    if args.cmd == "ecos":
        return cmd_ecos()
    return EXIT_USAGE


def cmd_validate(file: Path) -> int:
    from engine.plan import format_plan
    from engine.spec import load_study

    study = load_study(file)
    print(format_plan(study))
    return EXIT_OK


def cmd_ecos() -> int:
    from engine.ecos import CATALOG

    for e in CATALOG.values():
        print(f"{e.name:<22} {e.eco_class.value:<18} {e.description}")
        for p in e.params:
            print(f"    {p.name:<12} {p.kind.__name__:<5} [{p.lo:g}, {p.hi:g}] default {p.default:g}  {p.doc}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from engine.plan import format_plan
    from engine.spec import load_study
    from engine.studydir import new_study_dir

    study = load_study(args.file)
    if args.dry_run:
        print(format_plan(study))
        return EXIT_OK
    study_dir = new_study_dir(study, args.root, args.study_dir)
    if not (args.unattended or args.json):
        from console.app import run_console

        return run_console(study_dir.parent, theme=args.theme, open_study=study_dir, start_engine=True)
    human = sys.stderr if args.json else sys.stdout  # --json keeps stdout pure JSON lines
    print(format_plan(study), file=human)
    print(f"study dir: {study_dir}", file=human, flush=True)
    return run_engine(study_dir, json=args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.journal import recover
    from engine.studydir import open_for_resume, require_study_dir

    require_study_dir(args.study_dir)
    s = recover(args.study_dir).state
    if s.status in ("complete", "failed", "blocked"):
        print(f"study {s.name} already finished ({s.status}); nothing to resume. "
              f"`noodle2 status {args.study_dir}` shows the result.")
        return EXIT_OK
    open_for_resume(args.study_dir)  # refuse before anything runs
    if args.console:
        from console.app import run_console

        return run_console(args.study_dir.parent, open_study=args.study_dir.resolve(), start_engine=True)
    return run_engine(args.study_dir, json=args.json)


def run_engine(study_dir: Path, json: bool = False) -> int:
    """Run or resume the study in this process (the console starts this as its own process)."""
    import anyio

    from console.headless import Printer
    from engine.runner import Engine
    from engine.studydir import open_for_resume, read_provenance
    from engine.tools import make_tool

    study_dir = study_dir.resolve()
    study = open_for_resume(study_dir)
    engine = Engine(study_dir, study, make_tool(study, study_dir), listeners=[Printer(json=json)],
                    provenance=read_provenance(study_dir))
    status = anyio.run(engine.run)
    if engine.fault is not None:
        print(engine.fault.render(), file=sys.stderr)
        print(f"resume with: noodle2 resume {study_dir}", file=sys.stderr)
    return STATUS_EXIT.get(status, EXIT_FAILED)


def cmd_status(study_dir: Path) -> int:
    from engine.fsutil import lock_holder
    from engine.journal import recover
    from engine.reports import status_text
    from engine.studydir import require_study_dir

    require_study_dir(study_dir)
    rec = recover(study_dir)
    for w in rec.warnings:
        print(f"! {w}", file=sys.stderr)
    print(status_text(rec.state, lock_holder(study_dir)))
    return EXIT_OK


def cmd_watch(study_dir: Path, json: bool) -> int:
    """Follow the journal of a study another process runs; needs no lock and changes nothing."""
    from engine.errors import N2Error

    from console.headless import Printer
    from engine import events as ev
    from engine.fsutil import lock_holder
    from engine.journal import JOURNAL, read_events
    from engine.state import FoldError, StudyState, fold
    from engine.studydir import require_study_dir

    require_study_dir(study_dir)
    state, offset, line, printer = StudyState(), 0, 1, Printer(json=json)
    idle_since = time.monotonic()
    try:
        while True:
            r = read_events(study_dir / JOURNAL, offset, final=False, first_line=line)
            offset, line = r.end, r.next_line
            for e, n in zip(r.events, r.lines):
                try:
                    fold(state, e)
                except FoldError as err:
                    raise N2Error.one("N2-E205", f"{study_dir / JOURNAL} line {n} is corrupt: {err}") from None
                printer(e, state)
                if isinstance(e, ev.StudyFinished):
                    return STATUS_EXIT.get(e.status, EXIT_FAILED)
            if r.events:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 2 and lock_holder(study_dir) is None:
                print(f"⏸ no engine is running {state.name or study_dir}; resume with: noodle2 resume {study_dir}")
                return EXIT_INTERRUPTED
            time.sleep(0.1)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
