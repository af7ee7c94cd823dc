"""A live capture device (V4L2 capture card or webcam) read through OpenCV, with bounded retries when it fails.

Holoscan's `V4L2VideoCaptureOp` needs Ubuntu's `libjpeg.so.8` and cannot be imported on other distributions; this
operator captures through `cv2.VideoCapture` (V4L2 backend on Linux) instead and runs as a live source: a capture
thread fills a bounded queue and drops the oldest frame when the graph falls behind. When the device stops
delivering frames it is reopened up to `retries` times; after that the stream ends cleanly, so the graph drains
and every sink finalises its output.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.rgb import as_rgb
from surgseg.operators.source import FrameSource

log = logging.getLogger(__name__)


class Capture(Protocol):
    """The part of `cv2.VideoCapture` this source uses."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


@dataclass
class V4L2SourceConfig:
    device: str = "/dev/video0"
    """Device path, or an OpenCV camera index such as "0"."""
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    """Requested capture mode; None keeps the device's current one."""
    retries: int = 5
    """Reopen attempts after the device stops delivering frames, before the stream ends."""
    retry_delay_ms: float = 200.0


class V4L2Source(FrameSource):
    Config = V4L2SourceConfig
    live: ClassVar[bool] = True

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        if not self.device_present():
            raise InputError(f"operators.{self.name}.device: no such capture device: {self.config.device}")
        self.device_lost = False
        self._capture: Capture | None = None

    def device_present(self) -> bool:
        """Whether the configured device exists (camera indices are only checked when opened)."""
        return self.config.device.isdigit() or Path(self.config.device).exists()

    def open_device(self) -> Capture:
        """Open the device with the requested mode (OpenCV's V4L2 backend for device paths)."""
        import cv2

        device = self.config.device
        capture = cv2.VideoCapture(int(device)) if device.isdigit() else cv2.VideoCapture(device, cv2.CAP_V4L2)
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.config.width),
                            (cv2.CAP_PROP_FRAME_HEIGHT, self.config.height), (cv2.CAP_PROP_FPS, self.config.fps)):
            if value is not None:
                capture.set(prop, value)
        return capture

    def open_stream(self) -> None:
        self._capture = self.open_device()
        if not self._capture.isOpened():
            raise InputError(f"operators.{self.name}.device: cannot open capture device {self.config.device}")

    def read_frame(self) -> np.ndarray | None:
        for attempt in range(self.config.retries + 1):
            if attempt:
                log.warning("%s: no frame from %s: reopening (%d/%d)", self.name, self.config.device, attempt,
                            self.config.retries)
                time.sleep(self.config.retry_delay_ms / 1000)
                self._reopen()
            ok, frame = self._capture.read() if self._capture is not None else (False, None)
            if ok and frame is not None:
                bgr = frame.ndim == 3 and frame.shape[2] == 3
                return as_rgb(np.ascontiguousarray(frame[:, :, ::-1]) if bgr else frame, self.config.device)
        log.error("%s: capture device %s lost after %d retries: ending the stream", self.name, self.config.device,
                  self.config.retries)
        self.device_lost = True
        return None

    def _reopen(self) -> None:
        self.close_stream()
        try:
            self._capture = self.open_device()
        except Exception as exc:  # the device node may be gone: keep retrying until the budget is spent
            log.warning("%s: cannot reopen %s: %s", self.name, self.config.device, exc)
            self._capture = None

    def close_stream(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
