"""The survivor funnel: per stage, trials → finished → survivors as proportional bars, with the
stage's best WNS so far beside (running counts while a stage runs, not only when it ends)."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from noodle2.console.view import ns, running_best, stage_counts
from noodle2.engine.journal.state import StudyState

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
        width = max(self.size.width - 30, 6)
        widest = max(st.budget for st in s.stages) or 1
        label_w = min(max(len(st.name) for st in s.stages), 12)
        sty = {k: self.get_component_rich_style(f"funnel--{k}") for k in ("trials", "survivors", "failed", "label", "best")}
        for st in s.stages:
            n = stage_counts(s, st)
            finished = n["done"] + n["failed"] + n["cancelled"]
            n_bar = max(1, round(width * st.budget / widest))
            s_bar = round(width * len(st.survivors) / widest) if st.survivors else 0
            f_bar = round(n_bar * (n["failed"] + n["cancelled"]) / st.budget) if st.budget else 0
            out.append(f"{st.name[:label_w]:<{label_w}} ", sty["label"])
            out.append(BAR * s_bar, sty["survivors"])
            out.append(BAR * max(n_bar - s_bar - f_bar, 0), sty["trials"])
            out.append("▒" * f_bar, sty["failed"])  # a block: ✗ is wide in some fonts
            out.append(f" {finished}/{st.budget}→{len(st.survivors)}", sty["label"])
            best = running_best(s, st)
            out.append(f" {ns(best) if best is not None else ''}\n", sty["best"])
        return out
