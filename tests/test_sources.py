"""Sources in real Holoscan graphs on CPU: video files, image folders, synthetic clips, recordings, live pacing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from graph_helpers import surgseg
from PIL import Image
from video_clips import VIDEOS, write_clip

from surgseg.app.graph_spec import validate
from surgseg.app.runtime import GraphApplication, run_graph
from surgseg.engines.errors import InputError
from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig
from surgseg.engines.video.io import VideoReader


def run(operators: dict[str, Any], flows: list[Any], frame_limit: int | None = None) -> GraphApplication:
    graph = {"name": "test", "device": "cpu", "plugins": ["io_plugins"], "operators": operators, "flows": flows}
    return run_graph(validate(graph, Path("test.yaml")), frame_limit=frame_limit)


def collect(source: dict[str, Any], frame_limit: int | None = None) -> list[dict[str, Any]]:
    """Messages a source emits, through a Collector sink."""
    app = run({"source": source, "sink": {"type": "Collector"}}, [["source", "sink"]], frame_limit)
    return app.ops["sink"].messages


def test_video_file_source_emits_every_frame_as_decoded(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 12)
    messages = collect({"type": "VideoFileSource", "path": str(clip)})
    expected = list(VideoReader(clip))
    assert [m["meta"]["frame_index"] for m in messages] == list(range(12))
    assert all(np.array_equal(m["frame"], e) for m, e in zip(messages, expected))
    assert messages[0]["meta"]["fps"] == pytest.approx(30.0)


def test_video_file_source_start_end_and_loop(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 10)
    source = {"type": "VideoFileSource", "path": str(clip), "start_frame": 2, "end_frame": 5, "loop": True}
    messages = collect(source, frame_limit=8)
    assert [m["meta"]["source_index"] for m in messages] == [2, 3, 4, 2, 3, 4, 2, 3]


def test_video_file_source_paces_at_the_file_rate_when_realtime(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 8, fps=20.0)
    messages = collect({"type": "VideoFileSource", "path": str(clip), "realtime": True})
    captured = np.array([m["meta"]["captured_ns"] for m in messages]) / 1e9
    # frame k is read no earlier than k periods after frame 0 was (sleeping never returns early; the 20 ms slack
    # covers frame 0's slower first decode, since the stamp is taken after decoding)
    assert np.all(captured - captured[0] >= np.arange(8) / 20.0 - 0.02)


def test_missing_video_is_refused_before_the_graph_starts(tmp_path: Path) -> None:
    graph = {"operators": {"source": {"type": "VideoFileSource", "path": str(tmp_path / "nope.mp4")},
                           "sink": {"type": "FrameCounterSink"}}, "flows": [["source", "sink"]]}
    with pytest.raises(InputError, match=r"operators\.source\.path: no such file or folder"):
        validate(graph, Path("test.yaml"))


def write_folder(folder: Path, count: int, masks: Path | None = None) -> None:
    folder.mkdir()
    for i in range(1, count + 1):
        picture = np.full((24, 32, 3), i * 10, np.uint8)
        Image.fromarray(picture).save(folder / f"{i}.png")
        if masks is not None:
            masks.mkdir(exist_ok=True)
            mask = np.zeros((24, 32), np.uint8)
            mask[:, :i] = 255
            Image.fromarray(mask).save(masks / f"{i}.png")


def test_image_folder_source_orders_numerically_and_pairs_gt_masks(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", 11, tmp_path / "masks")
    messages = collect({"type": "ImageFolderSource", "path": str(tmp_path / "images"),
                        "masks": str(tmp_path / "masks")})
    assert [int(m["frame"][0, 0, 0]) for m in messages] == [i * 10 for i in range(1, 12)]
    assert [int(m["gt_mask"].sum()) for m in messages] == [24 * i for i in range(1, 12)]
    assert messages[0]["gt_mask"].dtype == np.uint8 and set(np.unique(messages[-1]["gt_mask"])) == {0, 1}
    assert messages[0]["meta"]["sequence"] == "images"


def test_image_folder_source_without_masks_emits_no_gt(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", 3)
    messages = collect({"type": "ImageFolderSource", "path": str(tmp_path / "images")})
    assert len(messages) == 3 and "gt_mask" not in messages[0]


def test_image_folder_with_a_missing_mask_is_refused_naming_the_image(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", 4, tmp_path / "masks")
    (tmp_path / "masks" / "3.png").unlink()
    with pytest.raises(InputError, match=r"3\.png: no mask named 3\.\* in"):
        collect({"type": "ImageFolderSource", "path": str(tmp_path / "images"), "masks": str(tmp_path / "masks")})


def test_synthetic_source_emits_the_clip_with_gt_and_tags() -> None:
    messages = collect({"type": "SyntheticSource", "size": [64, 48], "frames": 6, "seed": 3})
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=6, num_classes=2, seed=3))
    assert len(messages) == 6
    for t, message in enumerate(messages):
        frame, mask, tags = clip.render(t)
        assert np.array_equal(message["frame"], frame) and np.array_equal(message["gt_mask"], mask)
        assert message["tags"] == tags


def test_synthetic_source_draws_a_field_of_view_the_detector_finds() -> None:
    from surgseg.engines.fov import detect_fov

    [message] = collect({"type": "SyntheticSource", "size": [320, 256], "frames": 1, "seed": 3, "domain": True,
                         "fov": "circle", "palette": "liver"})
    assert message["frame"][0, 0].max() < 40 and not message["gt_mask"][0, 0]  # black border, never instrument
    assert detect_fov(message["frame"]).kind in ("circle", "clipped_circle")


def test_synthetic_source_shows_the_instrument_only_in_the_given_intervals() -> None:
    messages = collect({"type": "SyntheticSource", "size": [96, 64], "frames": 8, "seed": 3,
                        "presence": [[2, 4], [6, 8]], "smoke": [], "occlusion": [], "glare": [], "fast_motion": []})
    assert [bool(m["gt_mask"].any()) for m in messages] == [False, False, True, True, False, False, True, True]
    assert [m["tags"] for m in messages[:2]] == [["absent"], ["absent"]]


def test_image_folder_source_reads_cvc_clinicdb_with_binary_masks(shared_data: Path) -> None:
    root = shared_data / "cvc-clinicdb"
    messages = collect({"type": "ImageFolderSource", "path": str(root / "images"), "masks": str(root / "masks"),
                        "end_frame": 5})
    assert [Path(m["meta"]["source_path"]).name for m in messages] == [f"{i}.png" for i in range(1, 6)]
    for message in messages:
        assert message["frame"].shape == (288, 384, 3) and message["gt_mask"].shape == (288, 384)
        assert set(np.unique(message["gt_mask"])) <= {0, 1} and message["gt_mask"].any()


@pytest.mark.parametrize("source", [
    {"type": "TestPatternSource", "size": [48, 64], "frames": 120, "fps": 400.0, "live": True},
    {"type": "SyntheticSource", "size": [64, 48], "frames": 120, "fps": 400.0, "live": True},
])
def test_live_source_faster_than_the_graph_drops_oldest_and_keeps_latency_bounded(source: dict[str, Any]) -> None:
    app = run({"source": source, "slow": {"type": "PassThrough", "delay_ms": 10.0}, "sink": {"type": "Collector"}},
              [["source", "slow"], ["slow", "sink"]])
    sink, produced = app.ops["sink"], app.ops["source"]
    processed = len(sink.messages)
    dropped = sink.messages[-1]["meta"]["dropped_total"]
    assert processed + dropped == 120 == produced.emitted + produced.dropped
    assert dropped > 30
    latency_s = (np.array(sink.arrived_ns) - [m["meta"]["captured_ns"] for m in sink.messages]) / 1e9
    # an unbounded queue would reach ~(120 frames × 10 ms) = 1.2 s by the end; drop-oldest keeps it near 2–3 frames
    assert latency_s.max() < 0.4
    if source["type"] == "SyntheticSource":  # each GT mask still belongs to its own frame after the drops
        clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=120, num_classes=2, seed=0))
        for message in sink.messages[::10]:
            frame, mask, _ = clip.render(message["meta"]["source_index"])
            assert np.array_equal(message["frame"], frame) and np.array_equal(message["gt_mask"], mask)


def test_recording_made_by_surgseg_record_replays_bit_exactly(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 9)
    result = surgseg("record", "--input", str(clip), "--out", str(tmp_path / "rec" / "clip"))
    assert result.returncode == 0, result.stderr
    assert "recorded 9 frames" in result.stderr
    app = run({"replayer": {"type": "VideoStreamReplayerOp", "directory": str(tmp_path / "rec"), "basename": "clip",
                            "realtime": False},
               "to_frame": {"type": "TensorToFrame"}, "sink": {"type": "Collector"}},
              [["replayer", "to_frame"], ["to_frame", "sink"]])
    messages = app.ops["sink"].messages
    expected = list(VideoReader(clip))
    assert [m["meta"]["frame_index"] for m in messages] == list(range(9))
    assert all(np.array_equal(m["frame"], e) for m, e in zip(messages, expected))


def test_v4l2_source_with_no_device_is_refused_before_the_graph_starts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"operators\.source\.device: no such capture device: .*video99"):
        collect({"type": "V4L2Source", "device": str(tmp_path / "video99")})


@pytest.mark.slow
@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"evaluation videos absent: {VIDEOS}")
@pytest.mark.parametrize("realtime", [False, True])
def test_real_video_replays_every_frame_and_paces_at_29_97_fps(tmp_path: Path, realtime: bool) -> None:
    path = sorted(VIDEOS.glob("*.mp4"))[0]
    app = run({"source": {"type": "VideoFileSource", "path": str(path), "realtime": realtime},
               "latency": {"type": "LatencyReport", "path": str(tmp_path / "latency.json")}},
              [["source", "latency"]])
    report = app.ops["latency"].report()
    expected = VideoReader(path).info.frames
    assert report["frames_processed"] == expected and report["frames_dropped"] == 0
    print(f"{path.name} realtime={realtime}: {report['throughput_fps']} fps, end-to-end {report['end_to_end_ms']}")
    if realtime:
        assert report["throughput_fps"] == pytest.approx(29.97, rel=0.03)
