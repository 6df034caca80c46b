"""Views of a folded study: status, report files, the summary, plots, comparison, CI."""
