"""OpenSTA: the adapter, its Tcl ECO library, SDC and SPEF readers, report parsers."""
