"""Small video files for tests: patterned clips written through surgseg's writer or PyAV directly."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from surgseg.engines.video.io import VideoWriter

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def pattern(index: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A frame whose content changes with `index` (a moving bar over a grey level)."""
    frame = np.full((*size, 3), (index * 7) % 200, np.uint8)
    frame[:, (index * 3) % size[1]] = 255
    return frame


def write_clip(path: Path, frames: int, size: tuple[int, int] = (48, 64), fps: float = 30.0) -> Path:
    with VideoWriter(path, fps=fps) as writer:
        for i in range(frames):
            writer.write(pattern(i, size))
    return path


def write_with_pyav(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, in_format: str,
                    container_format: str | None = None, options: dict[str, str] | None = None) -> Path:
    """A file written directly with PyAV (codecs and pixel formats our writer never produces)."""
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=in_format)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def decoded_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def faststart_clip(path: Path, frames: int = 60) -> Path:
    """A non-fragmented MP4 with its index first, like most camera files (truncation keeps it openable)."""
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(frames)]
    return write_with_pyav(path, pictures, "libx264", "yuv420p", "rgb24", "mp4", {"movflags": "+faststart"})


