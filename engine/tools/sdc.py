"""SDC is Tcl, and `read_sdc` runs whatever the file holds, `exec` included.  In the guarded and
locked domains an SDC is read by `n2_read_sdc_safe` (eco_lib.tcl): a Tcl safe interpreter that
holds only the SDC commands below, aliased to OpenSTA's, and core Tcl without files or
processes.  `scan` finds the commands a file calls, so validation names a forbidden one before
anything runs; the safe interpreter is what enforces it."""
from __future__ import annotations

SDC_COMMANDS = frozenset("""
all_clocks all_inputs all_outputs all_registers create_clock create_generated_clock create_voltage_area
current_design current_instance get_cell get_cells get_clock get_clocks get_lib_cell get_lib_cells get_lib_pin
get_lib_pins get_libs get_net get_nets get_pin get_pins get_port get_ports group_path set_case_analysis
set_clock_gating_check set_clock_groups set_clock_latency set_clock_sense set_clock_transition
set_clock_uncertainty set_data_check set_disable_timing set_drive set_driving_cell set_false_path set_fanout_load
set_hierarchy_separator set_ideal_latency set_ideal_network set_ideal_transition set_input_delay
set_input_transition set_level_shifter_strategy set_level_shifter_threshold set_load set_logic_dc set_logic_one
set_logic_zero set_max_area set_max_capacitance set_max_delay set_max_dynamic_power set_max_fanout
set_max_leakage_power set_max_time_borrow set_max_transition set_min_capacitance set_min_delay
set_min_pulse_width set_multicycle_path set_operating_conditions set_output_delay set_port_fanout_number
set_propagated_clock set_resistance set_sense set_timing_derate set_units set_wire_load_min_block_size
set_wire_load_mode set_wire_load_model set_wire_load_selection_group delete_clock delete_generated_clock
delete_from_list unset_case_analysis unset_clock_groups unset_clock_latency unset_clock_transition
unset_clock_uncertainty unset_data_check unset_disable_timing unset_generated_clock unset_input_delay
unset_output_delay unset_path_exceptions unset_propagated_clock unset_timing_derate
""".split())
# Core Tcl that a safe interpreter keeps and SDC files use (variables, arithmetic, loops).
TCL_CORE = frozenset("""
set unset expr if else elseif foreach for while incr append list lindex llength lappend lrange lsort lsearch
concat join split string format regexp regsub switch proc return break continue dict array info
""".split())
ALLOWED = SDC_COMMANDS | TCL_CORE


def scan(text: str) -> list[tuple[int, str]]:
    """(line, command name) of every command the file calls at top level or inside [...].
    Braced words are not scripts to SDC and are not descended into; the safe interpreter
    still guards any that a loop or `if` evaluates."""
    out: list[tuple[int, str]] = []
    _commands(text, 0, len(text), 1, out)
    return out


def _commands(s: str, i: int, end: int, line: int, out: list[tuple[int, str]]) -> tuple[int, int]:
    """Scan commands in s[i:end]; returns (position after, line)."""
    at_start = True
    word: list[str] = []
    word_line = line
    first = True
    while i < end:
        c = s[i]
        if c == "\\" and i + 1 < end:
            if s[i + 1] == "\n":
                line += 1
            word.append(s[i + 1])
            i += 2
            continue
        if at_start and c in " \t":
            i += 1
            continue
        if at_start and c == "#":
            while i < end and s[i] != "\n":
                i += 1
            continue
        if c in "\n;":
            if first and word:
                out.append((word_line, "".join(word)))
            word, first, at_start = [], True, True
            line += c == "\n"
            i += 1
            continue
        if c in " \t":
            if first and word:
                out.append((word_line, "".join(word)))
            if word:
                first = False
            word = []
            i += 1
            continue
        if not word:
            word_line = line
        at_start = False
        if c == "{" and not word:
            depth, i = 1, i + 1
            start = i
            while i < end and depth:
                if s[i] == "\\":
                    i += 1
                elif s[i] == "{":
                    depth += 1
                elif s[i] == "}":
                    depth -= 1
                elif s[i] == "\n":
                    line += 1
                i += 1
            word.append(s[start:i - 1] if not depth else s[start:i])
            continue
        if c == '"' and not word:
            i += 1
            while i < end and s[i] != '"':
                if s[i] == "[":
                    i, line = _bracket(s, i, end, line, out)
                    continue
                if s[i] == "\\":
                    i += 1
                elif s[i] == "\n":
                    line += 1
                i += 1
            word.append('""')
            i += 1
            continue
        if c == "[":
            i, line = _bracket(s, i, end, line, out)
            word.append("[]")
            continue
        word.append(c)
        i += 1
    if first and word:
        out.append((word_line, "".join(word)))
    return i, line


def _bracket(s: str, i: int, end: int, line: int, out: list[tuple[int, str]]) -> tuple[int, int]:
    """s[i] == '['; scan the command substitution and return the position after its ']'."""
    depth, j = 1, i + 1
    while j < end and depth:
        if s[j] == "\\":
            j += 1
        elif s[j] == "[":
            depth += 1
        elif s[j] == "]":
            depth -= 1
        j += 1
    _commands(s, i + 1, j - 1 if not depth else j, line, out)
    return j, line + s.count("\n", i, j)


def forbidden(text: str) -> list[tuple[int, str]]:
    """Commands outside the SDC reader's allowlist; a name built by substitution is refused too."""
    return [(ln, c) for ln, c in scan(text) if c not in ALLOWED]
