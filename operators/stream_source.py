"""A live network stream (RTSP, SRT, MPEG-TS over UDP, RTP) as a frame source: reconnects after drops, ends cleanly.

Frames are read on the capture thread of `FrameSource`'s live mode (bounded queue, oldest frame dropped and counted
when the graph falls behind). The decoding, low-latency options and reconnection live in engines/video/stream.py.
The first frame after a reconnection carries `meta["stream_gap_ms"]` (how long no frame came) and
`meta["stream_reconnects"]`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from surgseg.engines.video.stream import StreamInputConfig, StreamReader, missing_protocol
from surgseg.operators.source import STOP_REQUESTED, FrameSource

log = logging.getLogger(__name__)


class StreamSource(FrameSource):
    Config = StreamInputConfig
    live: ClassVar[bool] = True

    @staticmethod
    def missing_prerequisites(config: StreamInputConfig, key: str) -> list[str]:
        """What this machine lacks to open the stream (one line each, naming what to install)."""
        missing = missing_protocol(config.url, f"{key}.url")
        return [missing] if missing else []

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        self.reader = StreamReader(self.config, should_stop=self._stopping)
        self._gaps_reported = 0

    def _stopping(self) -> bool:
        return self._capture_done.is_set() or STOP_REQUESTED.is_set()

    def open_stream(self) -> None:
        self.reader.open()

    def read_frame(self) -> np.ndarray | dict[str, Any] | None:
        frame = self.reader.read()
        if frame is None or len(self.reader.gaps_s) == self._gaps_reported:
            return frame
        self._gaps_reported = len(self.reader.gaps_s)
        return {"frame": frame, "meta": {"stream_gap_ms": self.reader.gaps_s[-1] * 1000,
                                         "stream_reconnects": self._gaps_reported}}

    def close_stream(self) -> None:
        self.reader.close()
        gaps = self.reader.gaps_s
        if gaps:
            log.warning("%s: %d reconnects, %.2f s without frames in all (longest %.2f s)", self.name, len(gaps),
                        sum(gaps), max(gaps))
