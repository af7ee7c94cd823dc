"""Sinks in real Holoscan graphs on CPU: mp4, ID PNGs, metrics, QA log and latency report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_sources import run
from video_clips import decoded_count

from surgseg.engines.frame_qa import confidence, mask_change
from surgseg.engines.metrics import MetricAccumulator
from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig
from surgseg.engines.video.io import VideoReader

SYNTHETIC = {"type": "SyntheticSource", "size": [64, 48], "frames": 8, "seed": 1}


def run_chain(sinks: dict, segmenter: dict | None = None, source: dict | None = None):
    """source → FakeSegmenter → every sink."""
    operators = {"source": source or SYNTHETIC, "model": {"type": "FakeSegmenter", **(segmenter or {})}, **sinks}
    return run(operators, [["source", "model"], *[["model", name] for name in sinks]])


def test_video_file_sink_writes_the_overlay_of_every_frame(tmp_path: Path) -> None:
    app = run_chain({"video": {"type": "VideoFileSink", "path": str(tmp_path / "out" / "overlay.mp4")}})
    assert app.ops["video"].frames_written == 8
    frames = list(VideoReader(tmp_path / "out" / "overlay.mp4"))
    assert len(frames) == 8 and frames[0].shape == (48, 64, 3)
    first, _, _ = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=8, num_classes=2, seed=1)).render(0)
    assert np.abs(frames[0].astype(int) - first.astype(int)).mean() < 6


def test_video_file_sink_takes_the_source_frame_rate(tmp_path: Path) -> None:
    source = {**SYNTHETIC, "fps": 12.5}
    run_chain({"video": {"type": "VideoFileSink", "path": str(tmp_path / "v.mp4")}}, source=source)
    assert VideoReader(tmp_path / "v.mp4").info.fps == pytest.approx(12.5)


def test_mask_sink_writes_class_id_pngs_named_by_frame(tmp_path: Path) -> None:
    run_chain({"masks": {"type": "MaskSink", "folder": str(tmp_path / "masks")}})
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=8, num_classes=2, seed=1))
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == [f"{t:06d}.png" for t in range(8)]
    for t in (0, 7):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "masks" / f"{t:06d}.png")), clip.render(t)[1])


def test_metrics_sink_scores_against_gt_per_sequence_and_tag(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    run_chain({"metrics": {"type": "MetricsSink", "path": str(path)}}, segmenter={"jump_at": 3})
    report = json.loads(path.read_text())
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=8, num_classes=2, seed=1))
    expected = MetricAccumulator(2)
    for t in range(8):
        _, mask, _ = clip.render(t)
        expected.update(1 - mask if t == 3 else mask, mask)
    assert report["frames_scored"] == 8 and report["frames_without_gt"] == 0
    assert report["mean_dice"] == pytest.approx(expected.summary()["mean_dice"])
    assert report["mean_dice"] < 1.0
    assert report["sequences"]["synthetic-1"]["frames"] == 8
    assert sum(tag["frames"] for tag in report["tags"].values()) >= 8


def test_metrics_sink_without_gt_reports_no_scores(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    source = {"type": "TestPatternSource", "size": [48, 64], "frames": 5}
    run_chain({"metrics": {"type": "MetricsSink", "path": str(path)}}, source=source)
    assert json.loads(path.read_text()) == {"frames_scored": 0, "frames_without_gt": 5, "per_frame": []}


def test_metrics_sink_lists_each_frames_scores_for_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    run_chain({"metrics": {"type": "MetricsSink", "path": str(path)}}, segmenter={"jump_at": 3})
    per_frame = json.loads(path.read_text())["per_frame"]
    assert [row["frame_index"] for row in per_frame] == list(range(8))
    assert min(per_frame, key=lambda row: row["dice"])["frame_index"] == 3
    assert per_frame[0]["dice"] == per_frame[0]["iou"] == 1.0


def test_confidence_is_mean_max_softmax() -> None:
    flat = np.zeros((1, 2, 4, 4), np.float32)
    assert confidence(flat) == pytest.approx(0.5)
    sure = np.stack([np.full((4, 4), 4.0), np.zeros((4, 4))])
    assert confidence(sure) == pytest.approx(1 / (1 + np.exp(-4.0)))
    assert np.isnan(confidence(np.full((2, 4, 4), np.nan)))


def test_mask_change_is_one_minus_foreground_iou() -> None:
    a = np.zeros((4, 4), np.uint8)
    a[:, :2] = 1
    b = np.zeros((4, 4), np.uint8)
    b[:, 1:3] = 1
    assert mask_change(None, a) == 0.0
    assert mask_change(a, b) == pytest.approx(1 - 4 / 12)
    assert mask_change(np.zeros((4, 4)), np.zeros((4, 4))) == 0.0


def test_qa_monitor_flags_low_confidence_jumps_and_bad_output(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    run_chain({"qa": {"type": "QAMonitor", "path": str(path)}},
              segmenter={"confident_until": 6, "jump_at": 2, "bad_at": 4},
              source={"type": "TestPatternSource", "size": [48, 64], "frames": 8})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(8))
    flags = {line["frame_index"]: line["flags"] for line in lines}
    assert flags[2] == ["large_change"] and flags[3] == ["large_change"]  # the jump there and back
    assert flags[4] == ["bad_output"]
    assert flags[6] == ["low_confidence"] and flags[7] == ["low_confidence"]
    assert flags[0] == flags[1] == flags[5] == []
    assert lines[6]["confidence"] == pytest.approx(0.5)


def test_qa_monitor_only_flagged_writes_flagged_frames(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    run_chain({"qa": {"type": "QAMonitor", "path": str(path), "only_flagged": True}},
              segmenter={"confident_until": 6}, source={"type": "TestPatternSource", "size": [48, 64], "frames": 8})
    assert [json.loads(line)["frame_index"] for line in path.read_text().splitlines()] == [6, 7]


def test_latency_report_gives_percentiles_per_operator_and_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "latency.json"
    app = run({"source": {"type": "TestPatternSource", "size": [48, 64], "frames": 30},
               "slow": {"type": "PassThrough", "delay_ms": 2.0},
               "latency": {"type": "LatencyReport", "path": str(path), "warmup": 5}},
              [["source", "slow"], ["slow", "latency"]])
    report = json.loads(path.read_text())
    assert report == app.ops["latency"].report()
    assert report["frames_processed"] == 30 and report["frames_dropped"] == 0 and report["frames_decoded"] == 30
    assert set(report["per_operator_ms"]) == {"source", "slow"}
    for stats in (report["end_to_end_ms"], *report["per_operator_ms"].values()):
        assert stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert report["per_operator_ms"]["slow"]["p50"] >= 2.0
    assert report["end_to_end_ms"]["p50"] >= report["per_operator_ms"]["slow"]["p50"]


def test_video_file_sink_finalises_when_a_later_frame_fails(tmp_path: Path) -> None:
    from surgseg.operators.base import OperatorFailure

    operators = {"source": SYNTHETIC, "model": {"type": "FakeSegmenter"},
                 "video": {"type": "VideoFileSink", "path": str(tmp_path / "v.mp4")},
                 "fail": {"type": "FailAt", "frame": 5}, "end": {"type": "Collector"}}
    graph_flows = [["source", "model"], ["model", "video"], ["model", "fail"], ["fail", "end"]]
    from surgseg.app.graph_spec import validate
    from surgseg.app.runtime import run_graph

    graph = {"name": "t", "device": "cpu", "plugins": ["io_plugins", "graph_plugins"], "operators": operators,
             "flows": graph_flows}
    with pytest.raises(OperatorFailure, match="boom at frame 5"):
        run_graph(validate(graph, Path("t.yaml")))
    assert 5 <= decoded_count(tmp_path / "v.mp4") <= 6


def test_holoviz_sink_subgraph_hands_the_overlay_to_the_display_operator(tmp_path: Path) -> None:
    (tmp_path / "shown").mkdir()
    run_chain({"display": {"type": "RecordedDisplay", "directory": str(tmp_path / "shown"), "basename": "d"}})
    app = run({"replayer": {"type": "VideoStreamReplayerOp", "directory": str(tmp_path / "shown"), "basename": "d",
                            "realtime": False},
               "to_frame": {"type": "TensorToFrame"}, "sink": {"type": "Collector"}},
              [["replayer", "to_frame"], ["to_frame", "sink"]])
    shown = app.ops["sink"].messages
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=8, num_classes=2, seed=1))
    assert len(shown) == 8
    assert all(np.array_equal(m["frame"], clip.render(t)[0]) for t, m in enumerate(shown))


def test_holoviz_sink_validates_without_a_display_library() -> None:
    from surgseg.app.graph_spec import validate

    graph = {"operators": {"source": {"type": "TestPatternSource"}, "display": {"type": "HolovizSink",
                                                                                "window_title": "x"}},
             "flows": [["source", "display"]]}
    spec = validate(graph, Path("g.yaml"))
    assert spec.operators["display"].params.window_title == "x"
