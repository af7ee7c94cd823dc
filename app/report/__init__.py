"""Self-contained HTML reports (plotly inline, media as data URIs) of a run, an evaluation and a sweep."""

from surgseg.app.report.run import report_after_run, write_report

__all__ = ["report_after_run", "write_report"]
