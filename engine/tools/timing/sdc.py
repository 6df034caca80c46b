"""SDC is Tcl, and `read_sdc` runs whatever the file holds, `exec` included.  In the guarded and
locked domains an SDC is read by `n2_read_sdc_safe` (eco_lib.tcl): a Tcl safe interpreter that
holds only the SDC commands below, aliased through a checker to OpenSTA's, and core Tcl without
files or processes.  `forbidden` finds the commands a file calls, inside loop and `if` bodies
too, so validation names a forbidden one before anything runs; the safe interpreter and the
checker are what enforce it."""
from __future__ import annotations

import re
from dataclasses import dataclass

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
concat join split string format regexp regsub switch proc return break continue dict array info catch
""".split())
ALLOWED = SDC_COMMANDS | TCL_CORE
# Which words of a control command are scripts ("s") or expressions ("e"); "last": its last word.
_SCRIPT_WORDS: dict[str, dict[int | str, str]] = {
    "while": {1: "e", 2: "s"}, "for": {1: "s", 2: "e", 3: "s", 4: "s"}, "foreach": {"last": "s"},
    "catch": {1: "s"}, "proc": {3: "s"}, "time": {1: "s"}, "uplevel": {"last": "s"}, "expr": {"all": "e"},
    "eval": {"all": "s"}, "lmap": {"last": "s"}, "apply": {1: "s"},
}
_SUBCOMMAND_SCRIPTS = {("dict", "for"), ("dict", "map"), ("dict", "update"), ("dict", "with"), ("namespace", "eval")}
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass(frozen=True)
class Word:
    text: str
    braced: bool
    line: int


def scan(text: str) -> list[tuple[int, str]]:
    """(line, command name) of every command the file calls: at top level, inside [...], in the
    bodies and conditions of if/while/for/foreach/catch/proc/switch, and any [name ...] written
    inside other braced words (data that a later eval would run)."""
    out: list[tuple[int, str]] = []
    _script(text, 1, out)
    return out


def forbidden(text: str) -> list[tuple[int, str]]:
    """Commands outside the SDC reader's allowlist; a name built by substitution is refused too."""
    return [(ln, c) for ln, c in scan(text) if c not in ALLOWED]


def notes(text: str) -> list[tuple[int, str]]:
    """What the SDC-only reader translates for OpenSTA 2.0.17, by line, to say so in the plan."""
    return [(ln, "`all_inputs -no_clocks` is read as all_inputs without the clock source ports "
                 "(OpenSTA 2.0.17 has no -no_clocks)")
            for ln, _ in _calls_with(text, "all_inputs", "-no_clocks")]


def _calls_with(text: str, name: str, flag: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def visit(words: list[Word]) -> None:
        if words and words[0].text == name and any(w.text == flag for w in words[1:]):
            found.append((words[0].line, name))
    _script(text, 1, [], visit)
    return found


def _script(s: str, line: int, out: list[tuple[int, str]], visit=None) -> None:
    for words in _commands(s, line, out, visit):
        if not words:
            continue
        name = words[0].text
        out.append((words[0].line, name))
        if visit is not None:
            visit(words)
        for k, w in enumerate(words[1:], 1):
            if not w.braced:
                continue
            kind = _role(name, words, k)
            if kind == "s":
                _script(w.text, w.line, out, visit)
            elif kind == "switchlist":
                for j, (body, at) in enumerate(_list_words(w.text, w.line)):
                    if j % 2 == 1 and body != "-":
                        _script(body, at, out, visit)
            elif kind == "e":
                _expression(w.text, w.line, out, visit)
            else:
                _data(w.text, w.line, out)


def _role(name: str, words: list[Word], k: int) -> str:
    if name == "if":
        prev = words[k - 1].text if not words[k - 1].braced else ""
        return "e" if k == 1 or prev == "elseif" else "s"
    if name == "switch":
        return _switch_role(words, k)
    if (name, words[1].text) in _SUBCOMMAND_SCRIPTS:
        return "s" if k == len(words) - 1 else ""
    rule = _SCRIPT_WORDS.get(name, {})
    return rule.get(k) or rule.get("all") or (rule.get("last") if k == len(words) - 1 else None) or ""


def _switch_role(words: list[Word], k: int) -> str:
    """switch ?options? string {pattern body ...} | pattern body ...: bodies are scripts."""
    i = 1
    while i < len(words) and words[i].text.startswith("-") and not words[i].braced:
        i += 1
        if words[i - 1].text == "--":
            break
    rest = words[i + 1:]  # after the string
    if len(rest) == 1 and k == len(words) - 1:
        return "switchlist"
    j = k - (i + 1)
    return "s" if j >= 0 and j % 2 == 1 and words[k].text != "-" else ""


def _expression(s: str, line: int, out: list[tuple[int, str]], visit) -> None:
    """Command substitutions inside an expression."""
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == "[":
            j = _close_bracket(s, i)
            _script(s[i + 1:j], line + s.count("\n", 0, i), out, visit)
            i = j + 1
            continue
        i += 1


def _data(s: str, line: int, out: list[tuple[int, str]]) -> None:
    """A braced word that no command here evaluates (a list, a switch body list, an argument):
    a [name ...] in it would run if something evaluated it later.  Bus indexes ([3], [*]) and
    switch bodies are told apart from commands by their first word."""
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == "[":
            j = _close_bracket(s, i)
            inner = s[i + 1:j].lstrip()
            m = _NAME.match(inner)
            if m and (len(m.group(0)) > 1 or inner[len(m.group(0)):len(m.group(0)) + 1] in (" ", "\t", "")):
                _script(s[i + 1:j], line + s.count("\n", 0, i), out)
            i = j + 1
            continue
        if s[i] == "{":  # a nested list element
            j = _close_brace(s, i)
            _data(s[i + 1:j], line + s.count("\n", 0, i), out)
            i = j + 1
            continue
        i += 1


def _list_words(s: str, line: int) -> list[tuple[str, int]]:
    """A braced list's elements (braces stripped), each with its line."""
    out: list[tuple[str, int]] = []
    for words in _commands(s.replace(";", " "), line, [], None):
        out += [(w.text, w.line) for w in words]
    return out


def _close_bracket(s: str, i: int) -> int:
    return _close(s, i, "[", "]")


def _close_brace(s: str, i: int) -> int:
    return _close(s, i, "{", "}")


def _close(s: str, i: int, opening: str, closing: str) -> int:
    """Index of what closes s[i] (backslashes escape; a braced word inside brackets is skipped
    whole), or len(s) when nothing does."""
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        elif c == "{" and opening == "[":
            j = _close(s, j, "{", "}")
        j += 1
    return len(s)


def _commands(s: str, line: int, out: list[tuple[int, str]], visit) -> list[list[Word]]:
    """Split a script into commands of words; command substitutions in bare and quoted words
    are scanned as they are met."""
    cmds: list[list[Word]] = []
    words: list[Word] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] == "\n":
            line += 1
            i += 2
            continue
        if c in " \t\r":
            i += 1
            continue
        if c in "\n;":
            cmds.append(words)
            words = []
            line += c == "\n"
            i += 1
            continue
        if c == "#" and not words:
            while i < n and s[i] != "\n":
                i += 2 if s[i] == "\\" else 1
            continue
        start_line = line
        if s.startswith("{*}", i):
            i += 3
            if i >= n or s[i] in " \t\n;":
                words.append(Word("*", False, start_line))
                continue
        if s[i] == "{":
            j = _close_brace(s, i)
            text = s[i + 1:j]
            line += text.count("\n")
            words.append(Word(text, True, start_line))
            i = j + 1
            continue
        if s[i] == '"':
            j = _quoted_word(s, i, line, out, visit, words)
            line += s.count("\n", i, j)
            i = j + 1
            continue
        i, line = _bare_word(s, i, line, out, visit, words)
    cmds.append(words)
    return cmds


def _quoted_word(s: str, i: int, line: int, out: list[tuple[int, str]], visit, words: list[Word]) -> int:
    """The "..." word at i into `words`, its [substitutions] scanned; returns its closing quote."""
    j, n = i + 1, len(s)
    buf: list[str] = []
    while j < n and s[j] != '"':
        if s[j] == "\\":
            buf.append(s[j:j + 2])
            j += 2
            continue
        if s[j] == "[":
            k = _close_bracket(s, j)
            _script(s[j + 1:k], line + s.count("\n", i, j), out, visit)
            buf.append("[]")
            j = k + 1
            continue
        buf.append(s[j])
        j += 1
    words.append(Word('"' + "".join(buf) + '"', False, line))
    return j


def _bare_word(s: str, i: int, line: int, out: list[tuple[int, str]], visit, words: list[Word]) -> tuple[int, int]:
    """The bare word at i into `words`, its [substitutions] scanned; returns (end, line there)."""
    start_line, j, n = line, i, len(s)
    buf: list[str] = []
    while j < n and s[j] not in " \t\r\n;":
        if s[j] == "\\":
            buf.append(s[j + 1:j + 2])
            j += 2
            continue
        if s[j] == "[":
            k = _close_bracket(s, j)
            _script(s[j + 1:k], line + s.count("\n", i, j), out, visit)
            buf.append("[]")
            line += s.count("\n", j, k)
            j = k + 1
            continue
        buf.append(s[j])
        j += 1
    words.append(Word("".join(buf), False, start_line))
    return j, line
