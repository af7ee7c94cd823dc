"""Video files in and out through PyAV (FFmpeg): a strict frame reader and a crash-safe H.264 MP4 writer.

Reading: any container FFmpeg demuxes (mp4, mov, mkv, avi, ts, ...); frames come out as HxWx3 uint8 RGB whatever
the stored pixel format (grey and alpha formats are converted, alpha dropped). Every problem becomes one
`InputError` line naming the file and, mid-stream, the frame index: empty or non-video files, undecodable or
truncated data, a frame size that changes mid-stream.

Writing: H.264 (libx264, yuv420p) in a *fragmented* MP4 (`movflags=frag_keyframe+empty_moov+default_base_moof`,
`flush_packets=1`). The header goes out first and each fragment (one GOP, `keyframe_interval_s` long) is written
and flushed to the file as soon as it is complete, so the file on disk is playable at every moment: a crash, a kill
or a full disk loses at most the fragment being built (after a write error the file is cut back to the last
complete fragment, so no half fragment remains); a normal close adds the index (`mfra`) at the end. Writing
to a temporary name and renaming at the end would lose the whole recording on a crash.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.rgb import as_rgb

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("image2", "tty")
"""FFmpeg demuxers that open pictures or text files as 'video': refused as not being videos."""
EXACT_FRAME_COUNT_FORMATS = ("mov", "mp4")
"""Containers whose header frame count is exact, so that fewer decoded frames means a truncated file."""
FRAGMENTED_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frames: int | None
    """Frame count from the container header, None when the container does not say."""
    codec: str
    pixel_format: str


class VideoReader:
    """Decodes frames `start_frame` ≤ i < `end_frame` of a video file as HxWx3 uint8 RGB."""

    def __init__(self, path: str | Path, start_frame: int = 0, end_frame: int | None = None) -> None:
        if start_frame < 0 or (end_frame is not None and end_frame <= start_frame):
            raise InputError(f"{path}: need 0 ≤ start_frame < end_frame, got start {start_frame}, end {end_frame}")
        self.path = Path(path)
        self.start_frame, self.end_frame = start_frame, end_frame
        self._container, self._stream = _open_video(self.path)
        self.info = _describe(self.path, self._container, self._stream)
        self.index = 0
        """File index of the next frame to decode."""
        self._frames = self._decode()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def read(self) -> np.ndarray | None:
        """The next frame, or None after `end_frame` or the end of the file."""
        return next(self._frames, None)

    def close(self) -> None:
        self._container.close()

    def _decode(self) -> Iterator[np.ndarray]:
        first_size: tuple[int, int] | None = None
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    if self.end_frame is not None and self.index >= self.end_frame:
                        return
                    size = (frame.width, frame.height)
                    first_size = first_size or size
                    if size != first_size:
                        raise InputError(f"{self.path}: frame {self.index}: size changed mid-stream from "
                                         f"{first_size[0]}x{first_size[1]} to {size[0]}x{size[1]}")
                    self.index += 1
                    if self.index > self.start_frame:
                        yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: frame {self.index}: corrupt or truncated video data "
                             f"({_reason(exc)})") from None
        self._check_complete()

    def _check_complete(self) -> None:
        expected = self.info.frames
        exact = any(name in EXACT_FRAME_COUNT_FORMATS for name in self._container.format.name.split(","))
        if exact and expected and self.index < expected:
            raise InputError(f"{self.path}: frame {self.index}: file ends early (header says {expected} frames): "
                             f"truncated video")
        if self.index <= self.start_frame:
            raise InputError(f"{self.path}: start_frame {self.start_frame} is past the end ({self.index} frames)")


def probe(path: str | Path) -> VideoInfo:
    """Header facts of a video file (size, rate, frame count) without decoding it."""
    container, stream = _open_video(Path(path))
    try:
        return _describe(Path(path), container, stream)
    finally:
        container.close()


def _open_video(path: Path) -> tuple[Any, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not a video")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video file ({_reason(exc)})") from None
    name = container.format.name
    if not container.streams.video or name in IMAGE_FORMATS or name.endswith("_pipe"):
        container.close()
        raise InputError(f"{path}: no video stream (format '{name}'); for pictures use an image folder source")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    context = stream.codec_context  # None when the header is cut before the codec parameters
    if context is None or not context.width or not context.height:
        container.close()
        raise InputError(f"{path}: video stream has no frame size (damaged header)")
    return container, stream


def _describe(path: Path, container: Any, stream: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not 0 < fps < 1000:
        log.warning("%s: no usable frame rate in the header (%s): assuming 30 fps", path, rate)
        fps = 30.0
    ctx = stream.codec_context
    return VideoInfo(path=str(path), width=ctx.width, height=ctx.height, fps=fps, frames=stream.frames or None,
                     codec=ctx.name, pixel_format=ctx.format.name if ctx.format else "unknown")


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


class VideoWriter:
    """H.264 MP4 writer whose file stays playable up to the last complete fragment, whatever happens."""

    def __init__(self, path: str | Path, fps: float = 30.0, crf: int = 23, preset: str = "superfast",
                 keyframe_interval_s: float = 1.0) -> None:
        if not 0 < fps < 1000:
            raise InputError(f"{path}: frame rate must be in (0, 1000), got {fps}")
        self.path = Path(path)
        self.fps, self.crf, self.preset = fps, crf, preset
        self.gop = max(1, round(fps * keyframe_interval_s))
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        """(width, height) of the stored video (frames of odd size are padded by one pixel)."""
        self._container: Any = None
        self._stream: Any = None
        self._failed = False
        self._complete_bytes = 0
        """File size after the last successful write: always the end of a complete fragment."""

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def failed(self) -> bool:
        """A write failed: the file holds only the fragments completed before it."""
        return self._failed

    def write(self, frame: np.ndarray) -> None:
        """Encode one HxWx3 uint8 RGB frame (grey/RGBA converted); OSError naming the file when the disk refuses it."""
        if self._failed:
            raise OSError(f"{self.path}: writer stopped after an earlier write error")
        frame = _even_sized(np.ascontiguousarray(as_rgb(frame, str(self.path))))
        if self._container is None:
            self._open(frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise InputError(f"{self.path}: frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the video is {self.size[0]}x{self.size[1]}")
        self._mux(self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent; after a write error keeps what is on disk)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if not self._failed:
                self._mux(self._stream.encode(None))
        finally:
            try:
                container.close()
            except (av.FFmpegError, OSError) as exc:
                self._failed = True
                log.warning("%s: could not finish the file (%s); fragments already written stay playable",
                            self.path, _reason(exc))
            if self._failed:
                os.truncate(self.path, self._complete_bytes)

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), "w", format="mp4", options=FRAGMENTED_MP4_OPTIONS)
        except (av.FFmpegError, OSError) as exc:
            raise OSError(f"{self.path}: cannot create the video file ({_reason(exc)})") from None
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream(
            "libx264", rate=rate,
            options={"crf": str(self.crf), "preset": self.preset, "tune": "zerolatency", "g": str(self.gop)})
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self.size = (width, height)

    def _mux(self, packets: list[Any]) -> None:
        try:
            for packet in packets:
                self._container.mux(packet)
                self._complete_bytes = os.path.getsize(self.path)
        except (av.FFmpegError, OSError) as exc:
            self._failed = True
            raise OSError(f"{self.path}: cannot write frame {self.frames_written} ({_reason(exc)}; disk full?); "
                          f"the fragments completed before it stay playable (at most {self.gop} frames lost)") from None


def _even_sized(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column when odd."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if not pad_h and not pad_w:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
