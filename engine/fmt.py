"""Formatting shared by every view: numbers with their units, plurals."""
from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_ns(ps: float | None) -> str:
    return "—" if ps is None else f"{ps / 1000:+.3f}"


def fmt_num(v: float, integer: bool = False) -> str:
    """A parameter or limit as a person writes it: 1000000 (not 1e+06), 2000 (not 2000.0), 0.25."""
    if integer or (float(v).is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.6g}"


# a policy decision as a person says it (the journal keeps the action's name)
DECISIONS = {"disable_eco": "ECO {subject} disabled", "disable_class": "ECO class {subject} disabled",
             "skip_eco": "ECO {subject} skipped", "abort_stage": "stage {subject} aborted",
             "block_study": "study blocked by {subject}", "plateau": "study ends early ({subject})",
             "order_ecos": "ECOs ordered by their priors: {subject}"}


def decision_text(action: str, subject: str) -> str:
    return DECISIONS.get(action, action.replace("_", " ") + " {subject}").format(subject=subject)


def fmt_seconds(x: float | None) -> str:
    """A duration as every view prints it: 0.4s, 5.5s, 29.5s, 312s."""
    if x is None:
        return ""
    return f"{x:.1f}s" if x < 100 else f"{x:.0f}s"
