"""The report of one graph run, built from the files the run left: the overlay video, metrics.json, latency.json,
the QA monitor's JSONL, and the graph YAML that ran (saved as graph.yaml beside them).

Per-frame series and where they come from: confidence, prior age, per-operator milliseconds, seed / re-seed /
release events and QA flags from the QA JSONL (one line per frame, `frame_index`); end-to-end latency from
latency.json's `end_to_end_samples_ms` (frames after `warmup_frames`); Dice / IoU from metrics.json's `per_frame`
list (`{"frame_index", "dice", "iou"}`) when the metrics sink wrote one. Dropped frames: only the total is recorded.
What a run did not record is listed on the page, not guessed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgseg.app.report.machine import machine_info, machine_rows
from surgseg.app.report.page import Page, escape, figure_div, image_uri, note, pre, table
from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

GRAPH_FILE = "graph.yaml"
GRAPH_PICTURE = "graph.png"
REPORT_FILE = "report.html"
SINK_TYPES = {"VideoFileSink": "video", "MetricsSink": "metrics", "LatencyReport": "latency", "QAMonitor": "qa"}
EVENTS = ("seeded", "reseeded", "released")
WORST_FRAMES = 8
MARKER_LIMIT = 3000
"""Above this many frames the timeline draws lines only."""


@dataclass
class RunFiles:
    run_dir: Path
    video: Path | None = None
    metrics: Path | None = None
    latency: Path | None = None
    qa: Path | None = None
    graph_yaml: Path | None = None
    graph_picture: Path | None = None


@dataclass
class Timeline:
    """Per-frame series (lists indexed by frame; None where a frame has no value) and events."""

    frames: int
    series: dict[str, list[float | None]] = field(default_factory=dict)
    operators: dict[str, list[float | None]] = field(default_factory=dict)
    events: list[tuple[int, str]] = field(default_factory=list)
    flags: dict[int, list[str]] = field(default_factory=dict)
    drops: dict[int, int] = field(default_factory=dict)
    """Frame → frames the source dropped just before it."""
    missing: list[str] = field(default_factory=list)


def video_sink_dir(spec: Any) -> Path | None:
    """The folder of the graph's first VideoFileSink, or None when the graph writes no video."""
    for name, op in spec.raw.get("operators", {}).items():
        if isinstance(op, dict) and op.get("type") == "VideoFileSink" and op.get("path"):
            return Path(str(op["path"])).parent
    return None


def record_graph(spec: Any, run_dir: Path) -> None:
    """Save the YAML that ran (overrides applied) and a picture of the graph into the run folder."""
    from surgseg.app.graph_picture import draw
    from surgseg.engines.atomic import atomic_path, atomic_write_text

    atomic_write_text(run_dir / GRAPH_FILE, yaml.safe_dump(spec.raw, sort_keys=False))
    with atomic_path(run_dir / GRAPH_PICTURE) as tmp:
        draw(spec, tmp)


def find_files(run_dir: Path) -> RunFiles:
    """The run's files: named by graph.yaml's sinks when it is there, else found by name in the folder."""
    files = RunFiles(run_dir)
    graph = run_dir / GRAPH_FILE
    if graph.is_file():
        files.graph_yaml = graph
        raw = yaml.safe_load(graph.read_text()) or {}
        for op in (raw.get("operators") or {}).values():
            kind = SINK_TYPES.get(op.get("type")) if isinstance(op, dict) else None
            if kind and getattr(files, kind) is None and Path(str(op.get("path", ""))).is_file():
                setattr(files, kind, Path(str(op["path"])))
    picture = run_dir / GRAPH_PICTURE
    files.graph_picture = picture if picture.is_file() else None
    fallback = {"video": sorted(run_dir.glob("*.mp4")), "metrics": [run_dir / "metrics.json"],
                "latency": [run_dir / "latency.json"], "qa": sorted(run_dir.glob("*.jsonl"))}
    for kind, candidates in fallback.items():
        found = [p for p in candidates if p.is_file()]
        if getattr(files, kind) is None and found:
            setattr(files, kind, found[0])
    return files


def read_qa(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputError(f"{path}:{number}: not a JSON line") from None
    return rows


def read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None


def build_timeline(frames: int, metrics: dict[str, Any], latency: dict[str, Any], qa: list[dict[str, Any]]) -> Timeline:
    """Every per-frame series the files hold, aligned on the frame index; what they lack goes to `missing`."""
    t = Timeline(max([frames, *(int(r["frame_index"]) + 1 for r in qa if r.get("frame_index") is not None)]))
    _add_scores(t, metrics)
    _add_qa(t, qa)
    _add_end_to_end(t, latency)
    return t


def _column(t: Timeline) -> list[float | None]:
    return [None] * t.frames


def _add_scores(t: Timeline, metrics: dict[str, Any]) -> None:
    per_frame = [row for row in metrics.get("per_frame") or [] if 0 <= int(row["frame_index"]) < t.frames]
    if not per_frame:
        t.missing.append("Dice / IoU per frame (metrics.json has no `per_frame` list)" if metrics
                         else "Dice / IoU (no metrics.json: the graph has no MetricsSink or no ground truth)")
    for name in ("dice", "iou"):
        if per_frame:
            t.series[name] = _column(t)
        for row in per_frame:
            if row.get(name) is not None:
                t.series[name][int(row["frame_index"])] = float(row[name])


def _add_qa(t: Timeline, qa: list[dict[str, Any]]) -> None:
    dropped_before = 0
    for row in (r for r in qa if r.get("frame_index") is not None):
        i = int(row["frame_index"])
        if row.get("confidence") is not None:
            t.series.setdefault("confidence", _column(t))[i] = float(row["confidence"])
        age = row.get("prior_age")
        age = age.get("frames") if isinstance(age, dict) else age
        if age is not None:
            t.series.setdefault("prior age (frames)", _column(t))[i] = float(age)
        for name, ms in (row.get("timings_ms") or {}).items():
            t.operators.setdefault(name, _column(t))[i] = float(ms)
        t.events += [(i, f"{event} {row[event]}") for event in EVENTS if row.get(event)]
        if row.get("flags"):
            t.flags[i] = list(row["flags"])
        if row.get("dropped_total") is not None:
            if int(row["dropped_total"]) > dropped_before:
                t.drops[i] = int(row["dropped_total"]) - dropped_before
            dropped_before = int(row["dropped_total"])
    if not qa:
        t.missing.append("confidence, prior age, per-operator latency, seeding events and QA flags per frame "
                         "(no QA JSONL: add a QAMonitor to the graph)")
    elif "prior age (frames)" not in t.series:
        t.missing.append("prior age (the run's SAM 2 prior is synchronous, or absent)")
    if not any(row.get("dropped_total") is not None for row in qa):
        t.missing.append("dropped frames per frame (latency.json records the total only; the QA JSONL has no "
                         "`dropped_total`)")


def _add_end_to_end(t: Timeline, latency: dict[str, Any]) -> None:
    """latency.json's samples start after its warm-up frames."""
    samples = latency.get("end_to_end_samples_ms") or []
    if not samples:
        t.missing.append("end-to-end latency per frame (no latency.json samples)")
        return
    warmup = int(latency.get("warmup_frames", 0))
    values = _column(t)
    for k, ms in enumerate(samples[: max(t.frames - warmup, 0)]):
        values[warmup + k] = float(ms)
    t.operators = {"end-to-end": values, **t.operators}


def timeline_figure(t: Timeline) -> Any:
    """Quality with seeding events and QA flags, latency per operator, and prior age, each a row (when recorded), on
    one shared frame axis."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    quality = [name for name in ("dice", "iou", "confidence") if name in t.series]
    panels = [title for title, present in (("quality", quality or t.events or t.flags or t.drops),
                                          ("latency (ms)", t.operators),
                                          ("prior age (frames)", "prior age (frames)" in t.series)) if present]
    panels = panels or ["latency (ms)"]
    row = {title: i + 1 for i, title in enumerate(panels)}
    weights = {"quality": 0.45, "latency (ms)": 0.35, "prior age (frames)": 0.2}
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=panels,
                        row_heights=[weights[p] for p in panels])
    x = list(range(t.frames))
    mode = "lines+markers" if t.frames <= MARKER_LIMIT else "lines"

    def line(name: str, values: list[float | None], panel: str, unit: str, size: int) -> None:
        fig.add_trace(go.Scatter(x=x, y=values, name=name, mode=mode, marker={"size": size},
                                 hovertemplate=f"frame %{{x}}<br>{name} %{{y:.3f}}{unit}<extra></extra>"),
                      row=row[panel], col=1)

    def marks(frames: list[int], y: float, name: str, labels: list[str], marker: dict[str, Any]) -> None:
        fig.add_trace(go.Scatter(x=frames, y=[y] * len(frames), name=name, mode="markers", marker=marker,
                                 text=labels, hovertemplate="frame %{x}<br>%{text}<extra></extra>"),
                      row=row["quality"], col=1)

    for name in quality:
        line(name, t.series[name], "quality", "", 5)
    for name, values in t.operators.items():
        line(f"{name} ms", values, "latency (ms)", " ms", 4)
    if "prior age (frames)" in row:
        line("prior age", t.series["prior age (frames)"], "prior age (frames)", " frames", 4)
    if t.events:
        marks([i for i, _ in t.events], 1.08, "SAM 2 seeding", [label for _, label in t.events],
              {"symbol": "triangle-down", "size": 11, "color": "#d62728"})
    if t.flags:
        flagged = sorted(t.flags)
        marks(flagged, -0.06, "QA flags", [", ".join(t.flags[i]) for i in flagged],
              {"symbol": "x", "size": 9, "color": "#9467bd"})
    if t.drops:
        dropped = sorted(t.drops)
        marks(dropped, 1.08, "dropped frames", [f"{t.drops[i]} dropped before this frame" for i in dropped],
              {"symbol": "line-ns-open", "size": 14, "color": "#ff7f0e"})
    if "quality" in row:
        fig.update_yaxes(range=[-0.12, 1.14], row=row["quality"], col=1)
    fig.update_xaxes(title_text="frame", range=[-0.5, t.frames - 0.5], row=len(panels), col=1)
    fig.add_shape(type="line", x0=0, x1=0, y0=0, y1=1, xref="x", yref="paper",
                  line={"color": "#111", "width": 1.5, "dash": "dot"})
    fig.update_layout(margin={"l": 50, "r": 20, "t": 30, "b": 40}, hovermode="closest", showlegend=True,
                      legend={"orientation": "h", "y": -0.15}, template="plotly_white", clickmode="event")
    return fig


def worst_frames(t: Timeline, count: int = WORST_FRAMES) -> list[tuple[int, str]]:
    """(frame, why) of the frames to look at first: flagged ones, then the lowest Dice (else confidence)."""
    score_name = "dice" if "dice" in t.series else "confidence" if "confidence" in t.series else None
    scores = t.series.get(score_name, [None] * t.frames) if score_name else [None] * t.frames

    def key(i: int) -> tuple[int, float]:
        return (0 if i in t.flags else 1, scores[i] if scores[i] is not None else 2.0)

    candidates = [i for i in range(t.frames) if i in t.flags or scores[i] is not None]
    chosen = sorted(candidates, key=key)[:count]
    return [(i, f"{score_name} {scores[i]:.3f}" if scores[i] is not None else "") for i in chosen]


SYNC_SCRIPT = """
(function(){
  const gd = document.getElementById('timeline'), video = document.getElementById('overlay-video');
  const label = document.getElementById('frame-label'), fps = %(fps)s, frames = %(frames)d;
  if (!gd || !video) return;
  const frameAt = t => Math.max(0, Math.min(frames - 1, Math.floor(t * fps + 1e-6)));
  const seek = f => {
    if (video.readyState < 1) { video.addEventListener('loadedmetadata', () => seek(f), {once: true}); return; }
    video.pause();
    video.currentTime = (f + 0.5) / fps;
  };
  let shown = -1;
  const cursor = () => {
    const f = frameAt(video.currentTime);
    if (f === shown) return;
    shown = f;
    label.textContent = 'frame ' + f + ' / ' + (frames - 1);
    Plotly.relayout(gd, {'shapes[0].x0': f, 'shapes[0].x1': f});
  };
  gd.on('plotly_click', e => { if (e.points && e.points.length) seek(Math.round(e.points[0].x)); });
  ['timeupdate', 'seeked', 'loadedmetadata'].forEach(name => video.addEventListener(name, cursor));
  if (video.requestVideoFrameCallback) {
    const onFrame = (now, meta) => { cursor(); video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
  }
  const asked = location.hash.match(/frame=(\\d+)/);
  if (asked) seek(Number(asked[1]));
  document.querySelectorAll('[data-frame]').forEach(el => el.addEventListener('click', () => {
    seek(Number(el.dataset.frame)); video.scrollIntoView({behavior: 'smooth', block: 'center'});
  }));
})();
"""


def write_report(run_dir: str | Path, spec: Any = None) -> Path:
    """Write `<run_dir>/report.html` from the run's files (and, when given, the graph spec that ran); return it."""
    from surgseg.app.report.media import BrowserVideo, browser_video, read_frames

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    if spec is not None:
        record_graph(spec, run_dir)
    files = find_files(run_dir)
    if not any((files.video, files.metrics, files.latency, files.qa)):
        raise InputError(f"{run_dir}: no run files here (overlay .mp4, metrics.json, latency.json or QA .jsonl)")
    metrics, latency, qa = read_json(files.metrics), read_json(files.latency), read_qa(files.qa)
    video: BrowserVideo | None = None
    video_note = "the run wrote no video"
    if files.video is not None:
        try:
            video = browser_video(files.video, run_dir)
            video_note = video.note
        except (ValueError, OSError, InputError) as exc:
            video_note = f"{files.video}: not playable in a browser and not transcodable ({exc}); frame strip below"
    frames = video.frames if video else int(latency.get("frames_processed", 0))
    t = build_timeline(frames, metrics, latency, qa)
    name = yaml.safe_load(files.graph_yaml.read_text()).get("name", run_dir.name) if files.graph_yaml else run_dir.name
    page = Page(f"surgseg run: {name}", f"{run_dir.resolve()} · {t.frames} frames")
    page.add("Summary", table(["what", "value"], summary_rows(metrics, latency, t)))
    page.add("Overlay video and timeline", _player(video, video_note, t) + note(
        "Click a point of the timeline (or a thumbnail below) to seek the video; the dotted line follows playback."))
    if video is None and files.video is not None:
        strip = [int(i) for i in np.linspace(0, max(t.frames - 1, 0), min(12, t.frames)).round()]
        page.add("Frame strip", _thumbs([(i, "") for i in strip], read_frames(files.video, strip), t))
    worst = worst_frames(t)
    if worst and files.video is not None:
        pictures = read_frames(files.video, [i for i, _ in worst])
        page.add("Frames to look at (QA flags first, then the lowest score)", _thumbs(worst, pictures, t))
    if t.missing:
        page.add("Not recorded by this run", "<ul>" + "".join(f"<li>{escape(m)}</li>" for m in t.missing) + "</ul>")
    page.add("Graph", _graph_section(files))
    page.add("Machine and versions", table(["what", "value"], machine_rows(machine_info())))
    if video is not None:
        page.scripts.append(SYNC_SCRIPT % {"fps": repr(float(video.fps)), "frames": t.frames})
    path = page.write(run_dir / REPORT_FILE)
    log.info("report → %s", path)
    return path


def report_after_run(spec: Any) -> Path | None:
    """The report of a run that just finished, when its graph wrote a video (else None); a report that cannot be
    made is logged, not raised: the run itself succeeded."""
    run_dir = video_sink_dir(spec)
    if run_dir is None:
        log.debug("%s: no VideoFileSink, no report", spec.path)
        return None
    try:
        return write_report(run_dir, spec)
    except InputError as exc:
        log.warning("no report: %s", exc)
        return None


def summary_rows(metrics: dict[str, Any], latency: dict[str, Any], t: Timeline) -> list[list[Any]]:
    rows: list[list[Any]] = [["frames", t.frames]]
    for key in ("frames_processed", "frames_dropped", "throughput_fps"):
        if key in latency:
            rows.append([key.replace("_", " "), latency[key]])
    for q in ("p50", "p95", "max"):
        if q in latency.get("end_to_end_ms", {}):
            rows.append([f"end-to-end latency {q} (ms)", latency["end_to_end_ms"][q]])
    for key in ("mean_dice", "mean_iou", "mean_boundary_f", "frames_scored"):
        if key in metrics:
            rows.append([key.replace("_", " "), metrics[key]])
    counts: dict[str, int] = {}
    for flags in t.flags.values():
        for flag in flags:
            counts[flag] = counts.get(flag, 0) + 1
    rows += [[f"QA flag: {flag}", n] for flag, n in sorted(counts.items())]
    rows += [["SAM 2 seeding events", len(t.events)]] if t.events else []
    return rows


def _player(video: Any, video_note: str, t: Timeline) -> str:
    fig = timeline_figure(t)
    player = (f'<div><video id="overlay-video" controls muted preload="auto" width="480">'
              f'<source src="{escape(video.src)}" type="{video.mime}"></video>'
              f'<div id="frame-label" class="note">frame 0 / {t.frames - 1}</div></div>' if video else "")
    return (f'<div class="row">{player}<div style="flex:1;min-width:520px">'
            f'{figure_div(fig, "timeline", height=520)}</div></div>{note(video_note)}')


def _thumbs(worst: list[tuple[int, str]], pictures: dict[int, Any], t: Timeline) -> str:
    cards = []
    for i, why in worst:
        if i not in pictures:
            continue
        flags = "".join(f'<span class="flag">{escape(f)}</span>' for f in t.flags.get(i, []))
        cards.append(f'<div class="thumb" data-frame="{i}"><img alt="frame {i}" src="{image_uri(pictures[i], 520)}">'
                     f"<div>frame {i} {escape(why)}</div>{flags}</div>")
    return f'<div class="thumbs">{"".join(cards)}</div>'


def _graph_section(files: RunFiles) -> str:
    parts = []
    if files.graph_picture is not None:
        from surgseg.app.report.page import file_uri

        parts.append(f'<img alt="graph" style="max-width:100%" src="{file_uri(files.graph_picture, "image/png")}">')
    if files.graph_yaml is not None:
        parts.append(pre(files.graph_yaml.read_text()))
    return "".join(parts) or note("graph.yaml not found in the run folder (`surgseg run` saves it there)")

