"""Cell facts come from the Liberty, not from cell names: functions, size families ordered by
drive, buffers, inverters and commutative pins, for the three OSU processes and a library whose
names follow no convention."""
from __future__ import annotations

import pytest

from noodle2.engine.tools.tech import resolve_tech
from noodle2.engine.tools.tech.liberty import load, truth_table

TECHS = ["osu018", "osu035", "osu050"]


def test_truth_tables_follow_liberty_precedence():
    assert truth_table("(A B)", ["A", "B"]) == 0b1000
    assert truth_table("A+B", ["A", "B"]) == 0b1110
    assert truth_table("!(A^B)", ["A", "B"]) == 0b1001
    assert truth_table("A'", ["A"]) == 0b01
    assert truth_table("(!((S A) + (!S B)))", ["A", "B", "S"]) == truth_table("!((A & S) | (B & !S))", ["A", "B", "S"])
    assert truth_table("A B + C", ["A", "B", "C"]) == truth_table("(A*B)|C", ["A", "B", "C"])  # AND binds tighter
    with pytest.raises(ValueError):
        truth_table("A + Q", ["A", "B"])


@pytest.mark.parametrize("tech", TECHS)
def test_osu_families_buffers_inverters_and_swap_groups(tech):
    lib = load(resolve_tech(tech, None).liberty[0])
    assert lib.families["INVX1"] == ("INVX1", "INVX2", "INVX4", "INVX8")  # weakest first, by drive
    assert lib.inverters == lib.families["INVX4"]
    assert lib.buffers == ("BUFX2", "BUFX4")
    # the clock buffers are beaten by BUFX4 (as strong, faster at no load, no larger): never a size to choose
    assert set(lib.families["CLKBUF1"]) == {"CLKBUF1", "CLKBUF2", "CLKBUF3"}
    assert lib.families["AND2X2"] == ("AND2X1", "AND2X2")
    assert "DFFPOSX1" not in lib.families and lib.cells["DFFPOSX1"].sequential
    assert lib.cells["AOI22X1"].symmetric == (("A", "B"), ("C", "D"))
    assert lib.cells["NAND3X1"].symmetric == (("A", "B", "C"),)
    assert lib.cells["MUX2X1"].symmetric == ()  # S is not interchangeable with A or B
    assert set(lib.cells["FAX1"].truths) == {"YC", "YS"}


def test_a_liberty_with_its_own_names(tmp_path):
    """No X<n> suffixes: families, buffers and swap groups still come out of the functions."""
    def cell(name, area, pins, fn, slope):
        ins = "".join(f"pin({p}) {{ direction : input; capacitance : 0.01; }}\n" for p in pins)
        return f"""cell ({name}) {{ area : {area};
{ins} pin(Z) {{ direction : output; function : "{fn}";
  timing () {{ related_pin : "{pins[0]}";
    rise_transition (t) {{ index_1 ("0.0, 1.0"); index_2 ("0.1, 0.2"); values ("0.1, 0.1", "{0.1 + slope}, {0.1 + slope}"); }}
  }} }} }}
"""
    text = ("library (mine) {\nlu_table_template (t) { variable_1 : total_output_net_capacitance; "
            "variable_2 : input_net_transition; }\n"
            + cell("weak_not", 2, ["I"], "!I", 4.0) + cell("strong_not", 3, ["I"], "I'", 1.0)
            + cell("drv", 4, ["I"], "I", 2.0) + cell("nand_a", 4, ["P", "Q"], "!(P Q)", 2.0)
            + cell("andor", 5, ["P", "Q", "R"], "(P Q) + R", 2.0) + "}\n")
    (tmp_path / "mine.lib").write_text(text)
    lib = load(tmp_path / "mine.lib")
    assert lib.inverters == ("weak_not", "strong_not") and lib.buffers == ("drv",)
    assert lib.cells["nand_a"].symmetric == (("P", "Q"),) and lib.cells["andor"].symmetric == (("P", "Q"),)


TABLES = """library (t) {
  /* a note with a brace { in it */
  cell (INV) {
    area : 1;
    pin (A) { direction : input; capacitance : 0.01; }
    pin (Y) {
      direction : output; function : "!A";
      timing () { related_pin : "A"; comment : "a } in a string"; /* } */
        cell_rise (t) { values ("1, 2"); }
      }
      internal_power () { related_pin : "A"; rise_power (t) { values ("3"); } }
    }
    leakage_power () { value : 4; }
  }
  cell (BUF) {
    pin (A) { direction : input; }
    pin (Y) { direction : output; function : "A";
      timing () { }
    }
  }
}
"""


def test_the_cells_only_liberty_drops_tables_past_braces_in_strings_and_comments():
    from noodle2.engine.tools.tech.liberty import cells_text

    cut = cells_text(TABLES)
    assert "related_pin" not in cut and "cell_rise" not in cut and "value : 4" not in cut
    for kept in ('function : "!A"', 'function : "A"', "cell (BUF)", "capacitance : 0.01", "a brace { in it"):
        assert kept in cut
    assert cut.count("{") - 1 == cut.count("}")  # the comment's brace; every group still closed
    # a table never closed would take the next cell with it: the file is kept whole instead
    broken = TABLES.replace('values ("1, 2"); }', 'values ("1, 2"); { { {')
    assert cells_text(broken) == broken
