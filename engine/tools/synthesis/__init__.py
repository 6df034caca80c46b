"""Yosys: synthesis of the base design and cone re-synthesis."""
