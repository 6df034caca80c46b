"""OpenSTA: the adapter, its Tcl ECO library, SDC and SPEF readers, report parsers."""

from pathlib import Path

WORKER_TCL = Path(__file__).with_name("worker.tcl")  # the warm worker: the engine's, and resynth's own
