"""OpenSTA: the adapter, its Tcl ECO library, SDC and SPEF readers, report parsers."""

from pathlib import Path

STA_ARGV = ("sta", "-no_init", "-no_splash")  # a script's run: no ~/.sta, no banner
WORKER_TCL = Path(__file__).with_name("worker.tcl")  # the warm worker: the engine's, and resynth's own
# -exit: should the worker's program fail before it serves, sta exits instead of reading the
# trial directories sent on its stdin as Tcl commands at its interactive prompt
WORKER_ARGV = (*STA_ARGV, "-exit", str(WORKER_TCL))
