"""Sends each message's `overlay` (else its `frame`) as a low-latency MPEG-TS stream over UDP, SRT or RTP.

For an OR display or recorder on the network; the encoding and sending live in engines/video/stream_writer.py. A
peer that goes away never stops the graph: frames are skipped (and counted) until the connection is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.video.stream import missing_protocol
from surgseg.engines.video.stream_writer import StreamOutputConfig, StreamWriter
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class StreamSinkConfig(StreamOutputConfig):
    key: str | None = None
    """Message key to send (None: `overlay` when present, else `frame`)."""


class StreamSink(SurgsegOperator):
    Config = StreamSinkConfig
    inputs = ("in",)

    @staticmethod
    def missing_prerequisites(config: StreamSinkConfig, key: str) -> list[str]:
        """What this machine lacks to send the stream (one line each, naming what to install)."""
        missing = missing_protocol(config.url, f"{key}.url", output=True)
        return [missing] if missing else []

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        self.writer = StreamWriter(self.config)
        self.skipped = 0

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        key = self.config.key or ("overlay" if message.get("overlay") is not None else "frame")
        if not self.writer.write(to_numpy(message[key])):
            self.skipped += 1

    def stop(self) -> None:
        self.writer.close()
        log.info("%s: sent %d frames to %s%s", self.name, self.writer.frames_sent, self.config.url,
                 f" ({self.skipped} not sent: no connection)" if self.skipped else "")
