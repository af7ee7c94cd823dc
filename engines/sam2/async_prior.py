"""SAM 2 off the critical path: a worker thread runs the tracker on the newest frame while every frame goes on.

Every frame hands its image to `AsyncTracker.frame` and gets back, at once, the newest prior SAM 2 has finished,
with the frame index it was made on (its age). The worker always takes the newest frame waiting: an older one that
was never started is skipped (counted), never queued, so SAM 2's cost sets how fresh the prior is, not the frame
rate. Optionally the stale prior is carried to the current frame with dense optical flow (`engines/motion.py`).

SAM 2 keeps tracking on the frames it processes: its memory advances every K processed frames (the tracker's own
cadence), and its feedback is the refined mask of the frame it processed last (kept in a small ring by frame index),
so the memory it conditions on matches the image it saw. Seeds and clicks ride with the next frame SAM 2 takes; a
click that arrives on a skipped frame is carried to the next one instead of being lost.

A failure in the worker is logged once with its frame; SAM 2 stops and the fast path goes on with the last prior
(`error` says what happened, so the run's exit code can).

The step the worker runs is pluggable: `InThreadStep` steps the tracker on the worker thread itself
(`runtime.worker: thread`); `worker_process.WorkerProcess` sends the frame to a tracker in a child process and waits
for its answer (`runtime.worker: process`). Everything above is the same for both.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from surgseg.engines.sam2.tracker import PriorTracker, SeedRequest, TrackerEvents

log = logging.getLogger(__name__)

FEEDBACK_RING = 256
"""Refined masks kept by frame index for the worker's feedback (model-size uint8: a few MiB at most)."""


@dataclass(frozen=True)
class PublishedPrior:
    """SAM 2's newest finished prior and what it was made on."""

    frame_index: int
    timestamp_ns: int | None
    prior: Any
    image: Any
    events: TrackerEvents
    memory: dict[int, dict[str, list]]
    """The engine's memory state right after this frame (read by the worker, so the fast path never races it)."""


@dataclass(frozen=True)
class PriorAge:
    """How old the prior used for a frame is: frames and capture milliseconds since the frame it was made on."""

    frames: int | None
    ms: float | None
    fresh: bool
    """True on the first frame that uses a newly published prior (its events are reported then, once)."""


class TrackerStep(Protocol):
    """What AsyncTracker's worker runs: one tracker step, and what the fast path needs before the first one."""

    @property
    def seeded(self) -> bool: ...

    def __call__(self, image: Any, feedback: np.ndarray | None,
                 request: SeedRequest | None) -> tuple[Any, TrackerEvents, dict[int, dict[str, list]]]: ...

    def empty_prior(self, size: tuple[int, int], like: Any) -> Any: ...

    def close(self, timeout: float) -> None: ...


class InThreadStep:
    """The tracker stepped on the worker thread itself (`runtime.worker: thread`)."""

    def __init__(self, tracker: PriorTracker) -> None:
        self.tracker = tracker

    @property
    def seeded(self) -> bool:
        return self.tracker.seeded

    def __call__(self, image: Any, feedback: np.ndarray | None,
                 request: SeedRequest | None) -> tuple[Any, TrackerEvents, dict[int, dict[str, list]]]:
        """The prior and events of `tracker.frame`, and the engine's memory state right after it."""
        prior, events = self.tracker.frame(image, feedback, request)
        return prior, events, self.tracker.engine.memory_state()

    def empty_prior(self, size: tuple[int, int], like: Any) -> Any:
        return self.tracker.empty_prior(size, like)

    def close(self, timeout: float) -> None:
        """Nothing to stop: the tracker lives in this process."""


@dataclass
class _Submission:
    frame_index: int
    timestamp_ns: int | None
    image: Any
    request: SeedRequest | None


class AsyncTracker:
    """A tracker step driven by a worker thread over the newest submitted frame; thread-safe, no busy waiting."""

    def __init__(self, step: TrackerStep, warper: Any | None = None, name: str = "sam2", nice: int = 0) -> None:
        self.step = step
        self.nice = nice
        self.warper = warper
        self.processed = 0
        self.skipped = 0
        self.error: str | None = None
        self._cond = threading.Condition()
        self._pending: _Submission | None = None
        self._published: PublishedPrior | None = None
        self._reported: int | None = None
        self._closing = False
        self._busy = False
        self._feedback: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._last_processed: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the fast path
    def frame(self, index: int, timestamp_ns: int | None, image: Any, feedback: tuple[int, np.ndarray] | None,
              request: SeedRequest | None) -> tuple[Any, PriorAge, PublishedPrior | None]:
        """The newest prior for frame `index` (warped to `image` when a warper is set), its age, and the published
        prior itself the first time it is used (its events are reported once). `feedback` is (frame index, refined
        model-size mask)."""
        with self._cond:
            if feedback is not None:
                self._feedback[feedback[0]] = feedback[1]
                while len(self._feedback) > FEEDBACK_RING:
                    self._feedback.popitem(last=False)
            self._submit(_Submission(index, timestamp_ns, image, request))
            published = self._published
        if published is None:
            return self.step.empty_prior(tuple(image.shape[-2:]), image), PriorAge(None, None, False), None
        fresh = published.frame_index != self._reported
        self._reported = published.frame_index
        age_ms = None
        if timestamp_ns is not None and published.timestamp_ns is not None:
            age_ms = (timestamp_ns - published.timestamp_ns) / 1e6
        prior = published.prior
        if self.warper is not None and published.frame_index != index:
            prior = self._warp(prior, published.image, image)
        return prior, PriorAge(index - published.frame_index, age_ms, fresh), published if fresh else None

    def _submit(self, submission: _Submission) -> None:
        """Replace the waiting frame by the newest (caller holds the lock); a waiting request is carried over."""
        if self.error is not None or self._closing:
            return
        waiting = self._pending
        if waiting is not None:
            self.skipped += 1
            if submission.request is None and waiting.request is not None:
                submission = replace(submission, request=waiting.request)
        self._pending = submission
        self._cond.notify()

    def _warp(self, prior: Any, prior_image: Any, image: Any) -> Any:
        host = prior.detach().cpu().numpy() if isinstance(prior, torch.Tensor) else np.asarray(prior)
        warped = self.warper.warp(host[0], _host(prior_image), _host(image))[None]
        return torch.from_numpy(warped).to(prior.device) if isinstance(prior, torch.Tensor) else warped

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        lower_priority(self.nice)
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job, self._pending = self._pending, None
                feedback = None if self._last_processed is None else self._feedback.get(self._last_processed)
                self._busy = True
            try:
                prior, events, memory = self.step(job.image, feedback, self._live_request(job.request))
            except Exception as exc:  # noqa: BLE001 - the fast path must survive whatever SAM 2 raises
                self._fail(job.frame_index, exc)
                return
            with self._cond:
                self._published = PublishedPrior(job.frame_index, job.timestamp_ns, prior, job.image, events, memory)
                self._last_processed = job.frame_index
                self.processed += 1
                self._busy = False
                self._cond.notify_all()

    def _live_request(self, request: SeedRequest | None) -> SeedRequest | None:
        """A first-frame seed is dropped once the tracker is seeded (it rode on frames SAM 2 never took)."""
        if request is not None and request.initial and self.step.seeded:
            return None
        return request

    def _fail(self, frame_index: int, exc: Exception) -> None:
        error = f"SAM 2 failed on frame {frame_index}: {type(exc).__name__}: {exc}"
        log.error("%s; the fast path goes on with the last prior", error, exc_info=exc)
        with self._cond:
            self.error = error
            self._pending = None
            self._busy = False
            self._cond.notify_all()

    # ------------------------------------------------------------------ control
    @property
    def seeded(self) -> bool:
        """Whether SAM 2 tracks something (as of its newest step)."""
        return self.step.seeded

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame is waiting or in work (tests and a draining stop); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: (self._pending is None and not self._busy) or self.error is not None,
                                       timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the worker after the step in progress (a waiting frame is dropped), then the step itself (a worker
        process); idempotent."""
        with self._cond:
            if self._pending is not None:
                self.skipped += 1
                self._pending = None
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        busy = self._thread.is_alive()
        if busy:
            log.warning("SAM 2 worker still busy after %.0f s at stop", timeout)
        self.step.close(0.0 if busy else timeout)


def lower_priority(nice: int) -> None:
    """Make the calling thread `nice` steps nicer (Linux: a thread's own; threads it starts later inherit it)."""
    if nice:
        try:
            os.nice(nice)
        except OSError as exc:  # e.g. a platform without nice values: SAM 2 keeps the graph's priority
            log.warning("SAM 2 worker: could not lower its priority (%s)", exc)


def _host(image: Any) -> Any:
    return image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
