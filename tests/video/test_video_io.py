"""engines/video/io.py: strict decoding of good and bad files; an MP4 writer that survives crashes and full disks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.video.io import VideoReader, VideoWriter, probe

from video_clips import VIDEOS, decoded_count, faststart_clip, pattern, write_clip, write_with_pyav


def test_writer_output_decodes_with_every_frame_and_the_rate(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", 25, fps=29.97)
    assert decoded_count(path) == 25
    info = probe(path)
    assert (info.width, info.height, info.codec) == (64, 48, "h264")
    assert info.fps == pytest.approx(29.97, abs=0.01)


def test_reader_returns_rgb_frames_close_to_what_was_written(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", 10)
    frames = list(VideoReader(path))
    assert len(frames) == 10
    assert frames[4].shape == (48, 64, 3) and frames[4].dtype == np.uint8
    assert np.abs(frames[4].astype(int) - pattern(4).astype(int)).mean() < 4


def test_writer_pads_odd_sizes_to_even(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "odd.mp4") as writer:
        writer.write(np.zeros((47, 63, 3), np.uint8))
    assert writer.size == (64, 48)
    assert decoded_count(tmp_path / "odd.mp4") == 1


def test_reader_start_and_end_frame_select_a_range(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", 12)
    reader = VideoReader(path, start_frame=3, end_frame=7)
    frames = list(reader)
    full = list(VideoReader(path))
    assert len(frames) == 4
    assert all(np.array_equal(a, b) for a, b in zip(frames, full[3:7]))


def test_start_frame_past_the_end_is_refused(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", 5)
    with pytest.raises(InputError, match=r"clip\.mp4: start_frame 9 is past the end \(5 frames\)"):
        list(VideoReader(path, start_frame=9))


@pytest.mark.parametrize(("codec", "pix_fmt", "in_format", "suffix", "channels"), [
    ("ffv1", "gray", "gray", "mkv", 1),
    ("png", "rgba", "rgba", "mov", 4),
])
def test_grey_and_rgba_videos_come_out_as_rgb(tmp_path: Path, codec: str, pix_fmt: str, in_format: str,
                                              suffix: str, channels: int) -> None:
    picture = np.full((24, 32, channels), 90, np.uint8)
    picture[:, :16] = 200
    frames = [picture[:, :, 0] if channels == 1 else picture] * 3
    path = write_with_pyav(tmp_path / f"clip.{suffix}", frames, codec, pix_fmt, in_format)
    decoded = list(VideoReader(path))
    assert len(decoded) == 3
    assert decoded[0].shape == (24, 32, 3)
    assert decoded[0][0, 0].tolist() == [200, 200, 200] and decoded[0][0, 31].tolist() == [90, 90, 90]


def test_zero_length_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    with pytest.raises(InputError, match=r"empty\.mp4: empty file \(0 bytes\)"):
        VideoReader(tmp_path / "empty.mp4")


def test_text_file_is_refused_as_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("these are not frames\n" * 50)
    with pytest.raises(InputError, match=r"notes\.mp4: not a readable video file"):
        VideoReader(tmp_path / "notes.mp4")


def test_picture_file_is_refused_as_not_a_video(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(pattern(0)).save(tmp_path / "frame.png")
    with pytest.raises(InputError, match=r"frame\.png: no video stream"):
        VideoReader(tmp_path / "frame.png")


def test_truncated_video_is_refused_naming_file_and_frame(tmp_path: Path) -> None:
    data = faststart_clip(tmp_path / "full.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mp4: frame \d+: .*truncated") as caught:
        list(VideoReader(cut))
    frame = int(str(caught.value).split("frame ")[1].split(":")[0])
    assert 10 < frame < 50


def test_corrupt_data_mid_stream_is_refused_naming_file_and_frame(tmp_path: Path) -> None:
    data = bytearray(faststart_clip(tmp_path / "full.mp4").read_bytes())
    middle = len(data) // 2
    data[middle: middle + 4000] = bytes(4000)
    data[middle + 8000:] = b""  # damaged and cut short, as a failing disk leaves a file
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"broken\.mp4: frame \d+: (corrupt|.*truncated)"):
        list(VideoReader(broken))


def test_frame_size_change_mid_stream_is_refused_naming_the_frame(tmp_path: Path) -> None:
    first = write_with_pyav(tmp_path / "a.ts", [pattern(i) for i in range(5)], "libx264", "yuv420p", "rgb24")
    second = write_with_pyav(tmp_path / "b.ts", [pattern(i, (64, 96)) for i in range(5)], "libx264", "yuv420p",
                             "rgb24")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    with pytest.raises(InputError, match=r"joined\.ts: frame 5: size changed mid-stream from 64x48 to 96x64"):
        list(VideoReader(joined))


def test_writer_size_change_is_refused(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "v.mp4") as writer:
        writer.write(pattern(0))
        with pytest.raises(InputError, match=r"frame 1 is 96x64, the video is 64x48"):
            writer.write(pattern(1, (64, 96)))
    assert decoded_count(tmp_path / "v.mp4") == 1


def run_writer_script(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = "import numpy as np\nfrom surgseg.engines.video.io import VideoWriter\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_recording_stays_playable_when_the_process_dies_mid_way(tmp_path: Path) -> None:
    result = run_writer_script("""
        import os
        writer = VideoWriter("crash.mp4", fps=30)
        for i in range(75):
            writer.write(np.full((48, 64, 3), i * 3, np.uint8))
        os._exit(0)  # no close(): like a kill or a crash
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    frames = decoded_count(tmp_path / "crash.mp4")
    assert 75 - 30 <= frames <= 75  # at most one fragment (1 s at 30 fps) lost


def test_full_disk_gives_a_clear_error_and_keeps_earlier_frames_playable(tmp_path: Path) -> None:
    result = run_writer_script("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that the write fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
        rng = np.random.default_rng(0)
        writer = VideoWriter("full.mp4", fps=30)
        try:
            for i in range(300):
                writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        except OSError as exc:
            print(exc)
            print("written", writer.frames_written)
        writer.close()
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    message, written = result.stdout.strip().splitlines()
    assert "full.mp4: cannot write frame" in message and "disk full?" in message
    frames_before_error = int(written.split()[1])
    assert 0 < frames_before_error < 300
    playable = decoded_count(tmp_path / "full.mp4")
    assert frames_before_error - 30 <= playable <= frames_before_error


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"evaluation videos absent: {VIDEOS}")
def test_real_1280x720_videos_decode_every_frame() -> None:
    for path in sorted(VIDEOS.glob("*.mp4")):
        info = probe(path)
        started = time.perf_counter()
        frames = sum(1 for _ in VideoReader(path))
        elapsed = time.perf_counter() - started
        print(f"{path.name}: {frames} frames {info.width}x{info.height} decoded at {frames / elapsed:.0f} fps")
        assert (info.width, info.height) == (1280, 720)
        assert info.fps == pytest.approx(29.97, abs=0.01)
        assert frames == info.frames


def test_binary_mask_with_a_third_class_value_is_refused_not_thresholded(tmp_path):
    from PIL import Image

    from surgseg.engines.video.image_folder import read_mask

    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4], mask[5:7, 5:7] = 1, 2
    Image.fromarray(mask).save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"m\.png: mask values \[2\] are not class ids \(num_classes=2\)"):
        read_mask(tmp_path / "m.png", num_classes=2)
    Image.fromarray(mask * 100).save(tmp_path / "binary.png")  # 0/100/200: 100 is neither an id nor 'on'
    with pytest.raises(InputError, match="mask values"):
        read_mask(tmp_path / "binary.png", num_classes=2)
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(tmp_path / "ok.png")
    assert read_mask(tmp_path / "ok.png", num_classes=2).sum() == 8
