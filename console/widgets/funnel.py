"""The survivor funnel: per stage, trials → survivors as proportional bars, best WNS beside."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.reports import fmt_ns
from engine.state import StudyState

BAR = "█"


class SurvivorFunnel(Widget):
    COMPONENT_CLASSES = {"funnel--trials", "funnel--survivors", "funnel--failed", "funnel--label", "funnel--best"}

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.state: StudyState | None = None

    def show(self, state: StudyState) -> None:
        self.state = state
        self.refresh(layout=True)  # height is auto: stages appear as the study plans them

    def render(self) -> Text:
        s = self.state
        out = Text()
        if s is None or not s.stages:
            return Text("no stages yet")
        width = max(self.size.width - 26, 6)
        widest = max(st.budget for st in s.stages) or 1
        label_w = min(max(len(st.name) for st in s.stages), 10)
        sty = {k: self.get_component_rich_style(f"funnel--{k}") for k in ("trials", "survivors", "failed", "label", "best")}
        for st in s.stages:
            trials = [s.trials[c] for c in st.cases]
            failed = sum(t.status == "failed" for t in trials)
            n_bar = max(1, round(width * st.budget / widest))
            s_bar = round(width * len(st.survivors) / widest) if st.survivors else 0
            f_bar = round(n_bar * failed / st.budget) if st.budget else 0
            out.append(f"{st.name[:label_w]:<{label_w}} ", sty["label"])
            out.append(BAR * s_bar, sty["survivors"])
            out.append(BAR * max(n_bar - s_bar - f_bar, 0), sty["trials"])
            out.append("✗" * f_bar, sty["failed"])
            best = s.trials[st.survivors[0]].metrics.get("wns_ps") if st.survivors and s.trials[st.survivors[0]].metrics else None
            out.append(f" {st.budget}→{len(st.survivors)}", sty["label"])
            out.append(f" {fmt_ns(best) if best is not None else ''}\n", sty["best"])
        return out
