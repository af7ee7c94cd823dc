"""The report of `surgseg evaluate`: overall and per-class scores, prior vs refined per video and per frame, and the
worst frames as image | prior | refined | ground-truth panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from surgseg.app.report.machine import machine_info, machine_rows
from surgseg.app.report.page import Page, escape, figure_div, image_uri, note, table

METRIC_NAMES = {"dice": "Dice", "iou": "IoU", "boundary_f": "Boundary F"}
PANEL_WIDTH = 960


def score_rows(scores: dict[str, Any]) -> list[list[Any]]:
    """One row per class and one for the foreground mean: prior and refined side by side for each metric."""
    refined, prior = scores["refined"], scores.get("prior")
    rows = []
    for cls, values in refined["per_class"].items():
        rows.append([cls, *(v for m in METRIC_NAMES for v in
                            ((prior["per_class"][cls][m] if prior else None), values[m]))])
    rows.append(["mean (foreground)", *(v for m in METRIC_NAMES for v in
                                          ((prior[f"mean_{m}"] if prior else None), refined[f"mean_{m}"]))])
    return rows


def video_figure(scores: dict[str, Any]) -> Any:
    """Mean Dice per video, prior vs refined."""
    import plotly.graph_objects as go

    videos = list(scores["refined"]["sequences"])
    fig = go.Figure()
    for who in ("prior", "refined"):
        if scores.get(who):
            seq = scores[who]["sequences"]
            fig.add_trace(go.Bar(x=videos, y=[seq[v]["mean_dice"] for v in videos], name=f"{who} Dice",
                                 customdata=[seq[v]["frames"] for v in videos],
                                 hovertemplate="%{x}<br>" + who + " Dice %{y:.3f}<br>%{customdata} frames<extra></extra>"))
    fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": "mean Dice"}, template="plotly_white",
                      margin={"l": 50, "r": 20, "t": 20, "b": 60})
    return fig


def frame_figure(frames: list[dict[str, Any]]) -> Any:
    """Refined Dice of every frame in order (and the prior's when there is one), hover naming the frame."""
    import plotly.graph_objects as go

    fig = go.Figure()
    x = list(range(len(frames)))
    labels = [f"{f['video']} / {f['stem']}" for f in frames]
    for who in ("prior", "refined"):
        if who in frames[0]:
            fig.add_trace(go.Scatter(x=x, y=[f[who]["dice"] for f in frames], name=f"{who} Dice", mode="markers",
                                     text=labels, hovertemplate="%{text}<br>" + who + " Dice %{y:.3f}<extra></extra>"))
    fig.update_layout(xaxis={"title": "frame (index order)"}, yaxis={"range": [-0.02, 1.02], "title": "Dice"},
                      template="plotly_white", margin={"l": 50, "r": 20, "t": 20, "b": 50})
    return fig


def write_evaluate_report(path: Path, result: dict[str, Any], worst: list[tuple[str, np.ndarray]]) -> Path:
    """report.html of an evaluation (`training.evaluate`'s JSON-ready result and its worst-frame panels)."""
    scores, model, data, prior = result["scores"], result["model"], result["data"], result["prior"]
    page = Page("surgseg evaluate", f"{model['path']} on {data['index']}"
                f"{' (split ' + data['split'] + ')' if data['split'] else ''} · {data['frames']} frames, "
                f"{data['videos']} videos · prior: {prior['mode']}")
    header = ["class", *(f"{who} {name}" for name in METRIC_NAMES.values() for who in ("prior", "refined"))]
    page.add("Scores (frame-averaged)", table(header, score_rows(scores)) + note(
        "Dice, IoU and DAVIS Boundary F at each frame's source resolution (engines.metrics); the mean is over "
        "foreground classes. Prior: the SAM 2-like prior alone, thresholded at logit 0."
        if scores.get("prior") else "No prior (--prior none): the refiner alone."))
    page.add("Per video", figure_div(video_figure(scores), "per-video", height=360))
    page.add("Per frame", figure_div(frame_figure(result["frames"]), "per-frame", height=360))
    if worst:
        panels = "".join(f'<div class="panel"><div>{escape(caption)}</div>'
                         f'<img alt="{escape(caption)}" src="{image_uri(panel, PANEL_WIDTH)}"></div>'
                         for caption, panel in worst)
        page.add("Worst frames: image | prior | refined | ground truth", panels)
    page.add("Model and data", table(["what", "value"], [
        ["model", model["path"]], ["loaded as", model["kind"]], ["classes", ", ".join(model["classes"])],
        ["input size (H, W)", model["input_size"]], ["index", data["index"]], ["split", data["split"] or "all rows"],
        ["prior", prior["mode"]], ["prior seed", prior["seed"]], ["prior folder", prior["dir"]]]))
    page.add("Machine and versions", table(["what", "value"], machine_rows(machine_info())))
    return page.write(path)
