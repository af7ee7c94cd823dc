"""The base of every frame source: pacing, frame limits, stop requests and, for live devices, drop-oldest.

Replay sources read on demand and, when `realtime` is set, wait for each frame's presentation time. Live
sources (`live = True`) read on a capture thread into a bounded queue: when the graph is slower than the
camera, the oldest frame is dropped and counted, so latency stays bounded.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, ClassVar

import numpy as np

from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)

STOP_REQUESTED = threading.Event()
"""Set by the application on SIGINT/SIGTERM: every source ends its stream and the graph drains."""


class FrameSource(SurgsegOperator):
    """Emits `{"frame": HxWx3 uint8 RGB, "meta": {...}}` on port `frame` until the stream ends."""

    outputs = ("frame",)
    live: ClassVar[bool] = False
    queue_size: ClassVar[int] = 2

    def __init__(self, fragment: Any, *args: Any, frame_limit: int | None = None, **kwargs: Any) -> None:
        self.frame_limit = frame_limit
        self.emitted = 0
        self.dropped = 0
        self._queue: collections.deque[tuple[Any, int, float]] = collections.deque()
        self._queue_ready = threading.Condition()
        self._capture_thread: threading.Thread | None = None
        self._capture_done = threading.Event()
        self._capture_error: BaseException | None = None
        self._next_deadline: float | None = None
        super().__init__(fragment, *args, **kwargs)

    # --- what a concrete source implements -------------------------------------------------------------
    def open_stream(self) -> None:
        """Open the file or device (called from start())."""

    def read_frame(self) -> np.ndarray | dict[str, Any] | None:
        """Next frame (HxWx3 uint8 RGB), or None at the end of the stream.

        A source that knows more about the frame returns `{"frame": ..., <extra message keys such as gt_mask, tags>,
        "meta": {<extra metadata>}}`: the whole item travels through pacing and the live queue together, so a
        frame's annotations can never be paired with another frame.
        """
        raise NotImplementedError

    def close_stream(self) -> None:
        """Release the file or device (called from stop(), also after errors)."""

    def frame_period_s(self) -> float | None:
        """Seconds between frames when paced in real time; None means as fast as possible."""
        return None

    # --- Holoscan life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.open_stream()
        if self.live:
            self._capture_thread = threading.Thread(target=self._capture_loop, name=f"{self.name}-capture", daemon=True)
            self._capture_thread.start()

    def stop(self) -> None:
        self._capture_done.set()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=5.0)
        self.dropped += len(self._queue)  # captured but never processed: a stop request came first
        self._queue.clear()
        self.close_stream()
        if self.dropped:
            log.warning("%s: dropped %d of %d frames (graph slower than the source)", self.name, self.dropped,
                        self.dropped + self.emitted)
        log.info("%s: emitted %d frames", self.name, self.emitted)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message] | None:
        if STOP_REQUESTED.is_set() or (self.frame_limit is not None and self.emitted >= self.frame_limit):
            return self._end()
        taken = self._take_live() if self.live else self._take_replay()
        if taken is None:
            return self._end()
        read, captured_ns, read_ms = taken
        item = dict(read) if isinstance(read, dict) else {"frame": read}
        meta = {"frame_index": self.emitted, "timestamp_ns": time.time_ns(), "captured_ns": captured_ns,
                "dropped_total": self.dropped, "timings_ms": {self.name: read_ms}}
        meta.update(item.pop("meta", {}))
        self.emitted += 1
        return {"frame": {**item, "meta": meta}}

    def _end(self) -> None:
        self.stop_execution()
        return None

    def _take_replay(self) -> tuple[Any, int, float] | None:
        period = self.frame_period_s()
        if period is not None:
            now = time.perf_counter()
            if self._next_deadline is None:
                self._next_deadline = now
            wait = self._next_deadline - now
            if wait > 0:
                time.sleep(wait)
            self._next_deadline += period
        started = time.perf_counter_ns()
        frame = self.read_frame()
        done = time.perf_counter_ns()
        return None if frame is None else (frame, done, (done - started) / 1e6)

    def _capture_loop(self) -> None:
        try:
            while not self._capture_done.is_set() and not STOP_REQUESTED.is_set():
                taken = self._take_replay()
                with self._queue_ready:
                    if taken is None:
                        break
                    if len(self._queue) >= self.queue_size:
                        self._queue.popleft()
                        self.dropped += 1
                    self._queue.append(taken)
                    self._queue_ready.notify()
        except BaseException as exc:  # re-raised on the graph's thread by _take_live
            self._capture_error = exc
        finally:
            self._capture_done.set()
            with self._queue_ready:
                self._queue_ready.notify()

    def _take_live(self) -> tuple[Any, int, float] | None:
        with self._queue_ready:
            while not self._queue:
                if self._capture_error is not None:
                    raise self._capture_error
                if self._capture_done.is_set() or STOP_REQUESTED.is_set():
                    return None
                self._queue_ready.wait(timeout=0.1)
            return self._queue.popleft()
