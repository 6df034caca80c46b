"""The safety trace: every gate the engine checked, with the values it compared.  The engine
journals the gates as it decides (GatesChecked events); the trace files and the console only
read them back, so they can never disagree with what the engine did."""
from __future__ import annotations

from typing import Any


def gate(name: str, subject: str, ok: bool, values: dict[str, Any], stage: int | None = None) -> dict[str, Any]:
    return {"gate": name, "stage": stage, "subject": subject, "result": "pass" if ok else "fail", "values": values}


def numbered(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"n": i, **g} for i, g in enumerate(gates, 1)]


def trace_md(rows: list[dict[str, Any]]) -> str:
    out = ["| # | stage | gate | subject | result | values |", "|---|---|---|---|---|---|"]
    for r in numbered(rows):
        vals = ", ".join(f"{k}={v}" for k, v in r["values"].items())
        out.append(f"| {r['n']} | {'' if r['stage'] is None else r['stage']} | {r['gate']} | {r['subject']} | "
                   f"{'✓ pass' if r['result'] == 'pass' else '✗ FAIL'} | {vals} |")
    return "\n".join(out) + "\n"
