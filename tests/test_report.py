"""report.html of a run, an evaluation and a sweep: self-contained, frame-synchronised, and checked in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml

from surgseg.app.cli import main as surgseg
from surgseg.app.report import write_report
from surgseg.app.report.media import browser_video
from surgseg.app.report.run import build_timeline, worst_frames
from surgseg.app.report.sweep import pareto_figure, write_sweep_report
from surgseg.engines.video.io import VideoWriter, probe

FRAMES = 12
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
                  "--window-size=1280,1400"]


def frames(count: int = FRAMES, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """A bright square moving right over a gradient, one step per frame."""
    out = []
    for t in range(count):
        frame = np.zeros((*size, 3), np.uint8)
        frame[..., 2] = np.linspace(40, 200, size[1], dtype=np.uint8)
        frame[10:30, 2 + 3 * t : 22 + 3 * t] = (0, 220, 0)
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a run with video, metrics (per frame), latency and a QA monitor leaves behind."""
    folder = tmp_path_factory.mktemp("run")
    with VideoWriter(folder / "overlay.mp4", fps=10) as writer:
        for frame in frames():
            writer.write(frame)
    per_frame = [{"frame_index": i, "dice": 0.9 - 0.05 * (i == 7), "iou": 0.8} for i in range(FRAMES)]
    (folder / "metrics.json").write_text(json.dumps({"mean_dice": 0.9, "frames_scored": FRAMES, "per_frame": per_frame}))
    (folder / "latency.json").write_text(json.dumps({
        "frames_processed": FRAMES, "frames_dropped": 0, "warmup_frames": 2,
        "end_to_end_samples_ms": [20.0 + i for i in range(FRAMES - 2)], "end_to_end_ms": {"p50": 25.0}}))
    qa = [{"frame_index": i, "confidence": 0.95, "flags": ["low_confidence"] if i == 4 else [],
           "timings_ms": {"prior": 15.0, "refiner": 2.0}, **({"seeded": [1]} if i == 0 else {})}
          for i in range(FRAMES)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in qa))
    (folder / "graph.yaml").write_text(yaml.safe_dump({"name": "tiny", "operators": {
        "video": {"type": "VideoFileSink", "path": str(folder / "overlay.mp4")}}}))
    write_report(folder)
    return folder


def test_timeline_has_one_value_per_frame_in_every_series(run_dir: Path) -> None:
    metrics, latency = (json.loads((run_dir / name).read_text()) for name in ("metrics.json", "latency.json"))
    qa = [json.loads(line) for line in (run_dir / "qa.jsonl").read_text().splitlines()]
    t = build_timeline(FRAMES, metrics, latency, qa)
    assert t.frames == FRAMES
    assert {name: len(v) for name, v in t.series.items()} == {"dice": FRAMES, "iou": FRAMES, "confidence": FRAMES}
    assert set(t.operators) == {"end-to-end", "prior", "refiner"}
    assert t.operators["end-to-end"][:3] == [None, None, 20.0]  # warm-up frames have no sample
    assert t.events == [(0, "seeded [1]")] and t.flags == {4: ["low_confidence"]}


def test_dropped_frames_are_placed_where_the_source_dropped_them() -> None:
    qa = [{"frame_index": i, "dropped_total": total} for i, total in enumerate((0, 0, 2, 2, 3))]
    assert build_timeline(5, {}, {}, qa).drops == {2: 2, 4: 1}


def test_what_the_run_did_not_record_is_listed() -> None:
    t = build_timeline(5, {"mean_dice": 0.5}, {}, [])
    assert any("per_frame" in line for line in t.missing)
    assert any("QAMonitor" in line for line in t.missing)
    assert not t.series and not t.operators


def test_flagged_frames_come_first_then_the_lowest_dice(run_dir: Path) -> None:
    t = build_timeline(FRAMES, json.loads((run_dir / "metrics.json").read_text()), {},
                       [{"frame_index": 4, "flags": ["large_change"]}])
    assert [i for i, _ in worst_frames(t, 2)] == [4, 7]


def test_report_is_one_offline_file(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert "<script src" not in page and "<link" not in page
    assert 'src="data:video/mp4;base64,' in page
    assert page.count('class="thumb"') == 8 and "low_confidence" in page
    assert "name: tiny" in page


def test_mp4v_video_is_transcoded_to_h264_for_the_browser(tmp_path: Path) -> None:
    path = tmp_path / "mp4v.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in frames(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    video = browser_video(path, tmp_path)
    assert probe(tmp_path / "report_media" / "mp4v.mp4").codec == "h264"
    assert video.mime == "video/mp4" and video.frames == 5 and "transcoded" in video.note


def test_large_video_is_referenced_relative_to_the_report(run_dir: Path) -> None:
    video = browser_video(run_dir / "overlay.mp4", run_dir, embed_limit=100)
    assert video.src == "overlay.mp4" and "keep it beside" in video.note


def test_run_writes_a_report_unless_told_not_to(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(yaml.safe_dump({
        "name": "pattern_to_video", "device": "cpu", "scheduler": {"type": "greedy"},
        "operators": {"source": {"type": "TestPatternSource", "size": [48, 64], "frames": 6},
                      "video": {"type": "VideoFileSink", "path": str(tmp_path / "out" / "overlay.mp4")}},
        "flows": [["source", "video"]]}))
    assert surgseg(["run", str(graph), "--no-report"]) == 0
    assert not (tmp_path / "out" / "report.html").exists()
    assert surgseg(["run", str(graph)]) == 0
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "graph.png").is_file()
    assert surgseg(["report", str(tmp_path / "absent")]) == 2
    (tmp_path / "empty").mkdir()
    assert surgseg(["report", str(tmp_path / "empty")]) == 2  # a folder with no run files


def test_sweep_report_shows_each_configuration_on_hover(tmp_path: Path) -> None:
    rows = [{"label": f"size={s}", "values": {"size": s}, "frames": 10,
             "metrics": {"dice": d, "iou": d - 0.1, "boundary_f": d - 0.2},
             "latency_ms": {"p50": lat, "p95": lat + 5, "p99": lat + 9}}
            for s, d, lat in ((128, 0.7, 40.0), (256, 0.8, 90.0), (384, 0.75, 150.0))]
    fig = pareto_figure(rows, [0, 1])
    assert [trace.name for trace in fig.data] == ["configurations", "Pareto front"]
    assert fig.data[0].text[0].startswith("size = 384<br>Dice 0.750")
    assert [text.split("<br>")[0] for text in fig.data[1].text] == ["size = 128", "size = 256"]
    page = write_sweep_report(tmp_path / "report.html", rows, [0, 1], Path("replay_fast.yaml")).read_text()
    assert "2 on the Pareto front" in page and 'id="pareto"' in page


# ------------------------------------------------------------------------------------------------ real browser
class _TimelinePoints(HTMLParser):
    """Counts the marker paths of the first scatter trace inside the element with id="timeline"."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.timeline_depth, self.trace_depth, self.done, self.points = 0, None, None, False, 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.depth += 1
        if attributes.get("id") == "timeline":
            self.timeline_depth = self.depth
        classes = (attributes.get("class") or "").split()
        inside = self.timeline_depth is not None and not self.done
        if inside and self.trace_depth is None and tag == "g" and classes[:2] == ["trace", "scatter"]:
            self.trace_depth = self.depth
        elif inside and self.trace_depth is not None and tag == "path" and "point" in classes:
            self.points += 1

    def handle_endtag(self, tag: str) -> None:
        if self.trace_depth == self.depth:
            self.done = True
        if self.timeline_depth == self.depth:
            self.timeline_depth = None
        self.depth -= 1


def chromium(url: str, user_data: Path, screenshot: Path) -> subprocess.CompletedProcess:
    """One headless run: the DOM after the page's scripts ran on stdout, console lines on stderr, a screenshot."""
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", f"--screenshot={screenshot}",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (`make system-extras` installs it)")
def test_report_opens_in_headless_chromium_with_a_point_per_frame(run_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    browser = chromium((run_dir / "report.html").as_uri(), tmp_path / "profile", shot)
    assert [line for line in browser.stderr.splitlines() if ":CONSOLE" in line] == []
    counter = _TimelinePoints()
    counter.feed(browser.stdout)
    assert counter.points == FRAMES
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (1400, 1280)
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 200


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (`make system-extras` installs it)")
def test_clicking_the_timeline_or_a_frame_link_seeks_the_video(run_dir: Path, tmp_path: Path) -> None:
    """A click on the timeline's point of frame 7 (emitted as plotly emits it), and a #frame=5 link."""
    page = tmp_path / "report.html"
    click = "<script>document.getElementById('timeline').emit('plotly_click', {points: [{x: 7}]});</script></body>"
    page.write_text((run_dir / "report.html").read_text().replace("</body>", click))
    clicked = chromium(page.as_uri(), tmp_path / "profile1", tmp_path / "clicked.png")
    assert f"frame 7 / {FRAMES - 1}" in clicked.stdout
    linked = chromium((run_dir / "report.html").as_uri() + "#frame=5", tmp_path / "profile2", tmp_path / "linked.png")
    assert f"frame 5 / {FRAMES - 1}" in linked.stdout
