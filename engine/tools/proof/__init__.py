"""Equivalence of a child netlist with its parent."""
