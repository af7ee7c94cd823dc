"""The report of `surgseg sweep`: latency vs Dice of every configuration, the Pareto front, each configuration's
settings on hover, and the front as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from surgseg.app.report.machine import machine_info, machine_rows
from surgseg.app.report.page import Page, figure_div, note, table


def hover_text(row: dict[str, Any]) -> str:
    """A configuration's settings, scores and latency, one per line."""
    settings = "<br>".join(f"{axis} = {json.dumps(value)}" for axis, value in row["values"].items())
    m, lat = row["metrics"], row["latency_ms"]
    return (f"{settings}<br>Dice {m['dice']:.3f} · IoU {m['iou']:.3f} · BF {m['boundary_f']:.3f}"
            f"<br>p50 {lat['p50']:.1f} ms · p95 {lat['p95']:.1f} ms · {row['frames']} frames")


def pareto_figure(rows: list[dict[str, Any]], front: list[int]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    others = [i for i in range(len(rows)) if i not in front]
    for name, members, style in (("configurations", others, {"color": "#9aa3b0", "size": 9}),
                                 ("Pareto front", front, {"color": "#d62728", "size": 11})):
        fig.add_trace(go.Scatter(
            x=[rows[i]["latency_ms"]["p50"] for i in members], y=[rows[i]["metrics"]["dice"] for i in members],
            name=name, mode="lines+markers" if name == "Pareto front" else "markers", marker=style,
            text=[hover_text(rows[i]) for i in members], hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(xaxis={"title": "end-to-end latency p50 (ms/frame)"}, yaxis={"title": "mean Dice"},
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 20, "b": 50}, hovermode="closest")
    return fig


def write_sweep_report(path: Path, rows: list[dict[str, Any]], front: list[int], graph: Path) -> Path:
    """report.html of a sweep: `rows` as in results.json, `front` their Pareto indices sorted by latency."""
    page = Page("surgseg sweep", f"{graph} · {len(rows)} configurations · {len(front)} on the Pareto front")
    page.add("Latency vs Dice", figure_div(pareto_figure(rows, front), "pareto", height=480)
             + note("Hover a point for its configuration; upper left is better (faster and more accurate)."))
    page.add("Pareto front", table(
        ["configuration", "Dice", "IoU", "Boundary F", "p50 ms", "p95 ms", "p99 ms", "frames"],
        [[rows[i]["label"], rows[i]["metrics"]["dice"], rows[i]["metrics"]["iou"], rows[i]["metrics"]["boundary_f"],
          rows[i]["latency_ms"]["p50"], rows[i]["latency_ms"]["p95"], rows[i]["latency_ms"]["p99"], rows[i]["frames"]]
         for i in front]))
    page.add("Machine and versions", table(["what", "value"], machine_rows(machine_info())))
    return page.write(path)
