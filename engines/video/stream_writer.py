"""Live video out as MPEG-TS over UDP, SRT or RTP through PyAV (FFmpeg), tuned for latency.

H.264 (libx264 `ultrafast` + `zerolatency`: no B-frames, no lookahead, one frame in, one packet out), a keyframe
with its parameter sets every `keyframe_interval_s` so that a receiver joining mid-stream starts within that time,
no mux delay, one flush per frame, and the length written into each video PES header (FFmpeg leaves it out by
default, and a demuxer then holds every frame until the next one starts). Timestamps come from the wall clock, so a
graph that drops frames still plays at the right speed. A send error (an SRT peer that went away) closes the
connection; the next frame after `retry_s` opens it again, so the graph never stops for its display.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.video.stream import OUTPUT_FORMATS, check_stream_url

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
"""MPEG-TS's clock."""


@dataclass
class StreamOutputConfig:
    url: str
    """udp://host:port (MPEG-TS datagrams of 7 TS packets), srt://host:port (caller; needs libsrt), rtp://host:port."""
    fps: float = 30.0
    """Nominal rate given to the encoder (timestamps follow the wall clock)."""
    bitrate_kbps: int = 4000
    keyframe_interval_s: float = 0.5
    retry_s: float = 1.0
    """After a send error, wait this long before reconnecting."""

    def __post_init__(self) -> None:
        check_stream_url(self.url, "url", output=True)
        for name in ("fps", "bitrate_kbps", "keyframe_interval_s", "retry_s"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name}: must be positive, got {getattr(self, name)}")


class StreamWriter:
    """Sends HxWx3 uint8 RGB frames; the connection opens at the first frame (whose size fixes the stream's)."""

    def __init__(self, config: StreamOutputConfig) -> None:
        self.config = config
        self.frames_sent = 0
        self.send_errors = 0
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._started: float | None = None
        self._last_pts = -1
        self._retry_at = 0.0

    def write(self, frame: np.ndarray) -> bool:
        """Encode and send one frame; False when it was not sent (no connection, or a send error)."""
        height, width = frame.shape[:2]
        if self._size is None:
            self._size = (width - width % 2, height - height % 2)  # yuv420p needs even sides
        if self._container is None and not self._open():
            return False
        now = time.monotonic()
        self._started = now if self._started is None else self._started
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: self._size[1], : self._size[0]]),
                                             format="rgb24")
        self._last_pts = max(self._last_pts + 1, round((now - self._started) / TIME_BASE))
        picture.pts, picture.time_base = self._last_pts, TIME_BASE
        try:
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            self._failed(exc)
            return False
        self.frames_sent += 1
        return True

    def close(self) -> None:
        """Flush the encoder and close the connection."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: closing the stream: %s", self.config.url, exc)
        self._container = self._stream = None

    def _open(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        parts = urlsplit(self.config.url)
        scheme = parts.scheme.lower()
        url = self.config.url
        if scheme == "udp" and "pkt_size" not in parts.query:  # 7 TS packets per datagram: no TS packet split
            url += ("&" if parts.query else "?") + "pkt_size=1316"
        try:
            container = av.open(url, mode="w", format=OUTPUT_FORMATS[scheme],
                                options={"max_delay": "0", "flush_packets": "1", "omit_video_pes_length": "0"})
        except (av.FFmpegError, OSError) as exc:
            self._failed(exc)
            return False
        stream = container.add_stream("libx264", rate=Fraction(self.config.fps).limit_denominator(1001))
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.bit_rate = self.config.bitrate_kbps * 1000
        stream.codec_context.options = h264_options(self.config)
        self._container, self._stream, self._started, self._last_pts = container, stream, None, -1
        log.info("%s: sending %dx%d H.264 in %s", self.config.url, *self._size, OUTPUT_FORMATS[scheme])
        return True

    def _failed(self, exc: BaseException) -> None:
        self.send_errors += 1
        if self.send_errors == 1:
            log.warning("%s: cannot send (%s): retrying every %.1f s", self.config.url, exc, self.config.retry_s)
        self._retry_at = time.monotonic() + self.config.retry_s
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as close_exc:  # the connection is broken already
                log.debug("%s: closing after the error: %s", self.config.url, close_exc)
        self._container = self._stream = None


def h264_options(config: StreamOutputConfig) -> dict[str, str]:
    """libx264 settings for live output: no lookahead or B-frames, a keyframe every `keyframe_interval_s`."""
    gop = max(1, round(config.keyframe_interval_s * config.fps))
    return {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "keyint_min": str(gop), "bf": "0"}
