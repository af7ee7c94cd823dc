"""Bad inputs and faults at the edges of a graph: each gives one clear line, and what was written stays playable."""

from __future__ import annotations

import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from graph_helpers import cli_env, surgseg, surgseg_popen, write_graph
from PIL import Image
from test_sources import collect, run, write_folder
from video_clips import decoded_count, faststart_clip, write_clip, write_with_pyav

from surgseg.engines.errors import InputError


def video_graph(source: dict[str, Any], out: Path) -> dict[str, Any]:
    """source → VideoFileSink(out)."""
    return {"name": "fault", "device": "cpu", "plugins": ["io_plugins"],
            "operators": {"source": source, "video": {"type": "VideoFileSink", "path": str(out)}},
            "flows": [["source", "video"]]}


def frames_reported(stderr: str) -> int:
    found = re.search(r"video: wrote (\d+) frames", stderr)
    assert found, stderr
    return int(found.group(1))


def test_corrupt_video_mid_stream_stops_with_one_line_naming_file_and_frame(tmp_path: Path) -> None:
    data = bytearray(faststart_clip(tmp_path / "full.mp4").read_bytes())
    data[len(data) // 2:] = b""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    result = surgseg("run", str(write_graph(tmp_path, video_graph({"type": "VideoFileSource", "path": str(broken)},
                                                                   out))))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and re.search(r"broken\.mp4: frame \d+: .*truncated", errors[0]), result.stderr
    assert decoded_count(out) == frames_reported(result.stderr) > 10


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.mp4", b"", r"empty\.mp4: empty file \(0 bytes\)"),
    ("notes.avi", b"not a video at all\n" * 40, r"notes\.avi: not a readable video file"),
])
def test_empty_or_non_video_file_exits_2_before_the_graph_starts(tmp_path: Path, name: str, content: bytes,
                                                                  message: str) -> None:
    (tmp_path / name).write_bytes(content)
    graph = write_graph(tmp_path, video_graph({"type": "VideoFileSource", "path": str(tmp_path / name)},
                                              tmp_path / "out.mp4"))
    result = surgseg("run", str(graph))
    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(("codec", "pix_fmt", "channels", "suffix"),
                         [("ffv1", "gray", 1, "mkv"), ("png", "rgba", 4, "mov")])
def test_grey_and_rgba_videos_enter_the_graph_as_rgb(tmp_path: Path, codec: str, pix_fmt: str,
                                                     channels: int, suffix: str) -> None:
    picture = np.full((24, 32, channels), 77, np.uint8)
    path = write_with_pyav(tmp_path / f"clip.{suffix}", [picture[:, :, 0] if channels == 1 else picture] * 4, codec,
                           pix_fmt, pix_fmt)
    messages = collect({"type": "VideoFileSource", "path": str(path)})
    assert len(messages) == 4
    assert messages[0]["frame"].shape == (24, 32, 3) and int(messages[0]["frame"][5, 5, 1]) == 77


def test_frame_size_change_mid_stream_stops_naming_the_frame(tmp_path: Path) -> None:
    small = write_with_pyav(tmp_path / "a.ts", [np.zeros((48, 64, 3), np.uint8)] * 4, "libx264", "yuv420p", "rgb24")
    large = write_with_pyav(tmp_path / "b.ts", [np.zeros((64, 96, 3), np.uint8)] * 4, "libx264", "yuv420p", "rgb24")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    with pytest.raises(InputError, match=r"joined\.ts: frame 4: size changed mid-stream from 64x48 to 96x64"):
        run(video_graph({"type": "VideoFileSource", "path": str(joined)}, tmp_path / "out.mp4")["operators"],
            [["source", "video"]])
    assert decoded_count(tmp_path / "out.mp4") == 4


def test_broken_png_in_the_middle_of_a_folder_stops_naming_it(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", 6)
    data = (tmp_path / "images" / "4.png").read_bytes()
    (tmp_path / "images" / "4.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"images/4\.png: broken or unreadable picture"):
        collect({"type": "ImageFolderSource", "path": str(tmp_path / "images")})


def test_image_folder_with_a_picture_of_another_size_is_refused_naming_it(tmp_path: Path) -> None:
    write_folder(tmp_path / "images", 4)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "images" / "3.png")
    with pytest.raises(InputError, match=r"3\.png: picture is 40x30, the sequence started at 32x24"):
        collect({"type": "ImageFolderSource", "path": str(tmp_path / "images")})


def test_capture_device_disappearing_ends_cleanly_with_the_recording_finalised(tmp_path: Path) -> None:
    out = tmp_path / "capture.mp4"
    source = {"type": "FlakyCapture", "device": "fake", "frames_before_loss": 25, "retries": 3,
              "retry_delay_ms": 5.0}
    app = run(video_graph(source, out)["operators"], [["source", "video"]])
    capture, video = app.ops["source"], app.ops["video"]
    assert capture.device_lost and capture.opens == 1 + 3
    assert capture.emitted + capture.dropped == 25
    assert video.frames_written == capture.emitted == decoded_count(out)
    first = next(av.open(str(out)).decode(video=0)).to_ndarray(format="rgb24")
    assert first[10, 10, 2] > 150 and first[10, 10, 0] < 60  # BGR from the device arrives as RGB


def test_full_disk_gives_a_clear_error_and_the_earlier_video_stays_playable(tmp_path: Path) -> None:
    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    out = tmp_path / "out.mp4"
    clip = write_clip(tmp_path / "clip.mp4", 1)
    noise = {"type": "SyntheticSource", "size": [96, 64], "frames": 400}
    graph = write_graph(tmp_path, video_graph(noise, out))
    result = subprocess.run([sys.executable, "-m", "surgseg.app.cli", "run", str(graph)], capture_output=True,
                            text=True, env=cli_env(), timeout=180, preexec_fn=limit_file_size)
    assert clip.exists()
    assert result.returncode == 1
    pattern = r"out\.mp4: cannot write frame (\d+) \(File too large; disk full\?\)"
    assert re.search(pattern, result.stderr), result.stderr
    failed_at = int(re.search(r"cannot write frame (\d+)", result.stderr).group(1))
    assert 0 < failed_at - 30 <= decoded_count(out) <= failed_at


@pytest.mark.slow
def test_stop_signals_at_random_moments_exit_0_with_a_playable_video(tmp_path: Path) -> None:
    rng = random.Random(7)
    source = {"type": "TestPatternSource", "size": [48, 64], "frames": 0, "fps": 60.0, "realtime": True}
    for trial, sig in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM]):
        out = tmp_path / f"run{trial}.mp4"
        process = surgseg_popen("run", str(write_graph(tmp_path, video_graph(source, out), f"g{trial}.yaml")))
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        frames = frames_reported(stderr)
        assert frames > 0 and decoded_count(out) == frames
