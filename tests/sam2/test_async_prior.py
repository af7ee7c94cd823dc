"""AsyncTracker: SAM 2 on a worker thread over the newest frame; the fast path never waits for it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from surgseg.engines.sam2.async_prior import AsyncTracker
from surgseg.engines.sam2.tracker import SeedRequest, TrackerEvents

WAIT_S = 10.0


class GatedTracker:
    """Stands in for PriorTracker: each frame() blocks until the test opens the gate; records what it was given."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.gate = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.calls: list[tuple[int, int | None, SeedRequest | None]] = []
        self.seeded = False
        self.fail_on = fail_on
        self.engine = self

    def memory_state(self) -> dict:
        return {1: {"memory_frames": [len(self.calls)]}}

    def frame(self, image, feedback, request):
        index = int(image[0, 0, 0, 0])
        self.calls.append((index, None if feedback is None else int(feedback[0, 0]), request))
        self.started.release()
        assert self.gate.acquire(timeout=WAIT_S)
        if index == self.fail_on:
            raise RuntimeError("boom")
        if request is not None:
            self.seeded = True
        return np.full((1, 1, 4, 4), float(index), np.float32), TrackerEvents(index, seeded=[1] if request else [])

    def empty_prior(self, size, like):
        return np.zeros((1, 1, *size), np.float32)


def image(index: int) -> np.ndarray:
    return np.full((1, 3, 4, 4), float(index), np.float32)


def finish_one(tracker: GatedTracker, worker: AsyncTracker) -> None:
    """Let the step in progress finish and wait until the worker is idle or has started the next one."""
    assert tracker.started.acquire(timeout=WAIT_S)
    tracker.gate.release()


@pytest.fixture
def gated():
    tracker = GatedTracker()
    worker = AsyncTracker(tracker)
    yield tracker, worker
    for _ in range(8):
        tracker.gate.release()
    worker.close(timeout=WAIT_S)


def test_the_fast_path_gets_an_empty_prior_until_sam2_finishes_a_frame(gated) -> None:
    tracker, worker = gated
    prior, age, published = worker.frame(5, 0, image(5), None, None)
    assert np.all(prior == 0) and age.frames is None and published is None
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    prior, age, published = worker.frame(6, 33_000_000, image(6), None, None)
    assert np.all(prior == 5.0) and age.frames == 1 and published.frame_index == 5


def test_sam2_takes_the_newest_frame_and_skips_the_older_ones(gated) -> None:
    tracker, worker = gated
    worker.frame(0, 0, image(0), None, None)
    assert tracker.started.acquire(timeout=WAIT_S)  # SAM 2 busy on frame 0
    for index in (1, 2, 3):
        worker.frame(index, None, image(index), None, None)
    tracker.gate.release()
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    assert [call[0] for call in tracker.calls] == [0, 3]
    assert worker.skipped == 2 and worker.processed == 2


def test_prior_age_counts_frames_and_capture_time_since_the_priors_frame(gated) -> None:
    tracker, worker = gated
    worker.frame(10, 1_000_000_000, image(10), None, None)
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    prior, age, published = worker.frame(14, 1_133_000_000, image(14), None, None)
    assert float(prior[0, 0, 0, 0]) == 10.0
    assert age.frames == 4 and age.ms == pytest.approx(133.0) and age.fresh
    _, again, published_again = worker.frame(15, 1_166_000_000, image(15), None, None)
    assert again.frames == 5 and not again.fresh and published_again is None


def test_feedback_is_the_refined_mask_of_the_frame_sam2_processed_last(gated) -> None:
    tracker, worker = gated

    def submit(index: int) -> None:  # the refined mask of frame index-1 arrives with frame index
        worker.frame(index, None, image(index), (index - 1, np.full((2, 2), index - 1, np.uint8)), None)

    worker.frame(0, None, image(0), None, None)
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    submit(1)
    assert tracker.started.acquire(timeout=WAIT_S)  # SAM 2 busy on frame 1
    submit(2)
    submit(3)
    tracker.gate.release()
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    assert [(index, feedback) for index, feedback, _ in tracker.calls] == [(0, None), (1, 0), (3, 1)]


def test_a_click_on_a_skipped_frame_rides_with_the_next_frame_sam2_takes(gated) -> None:
    tracker, worker = gated
    worker.frame(0, None, image(0), None, None)
    assert tracker.started.acquire(timeout=WAIT_S)
    click = SeedRequest(prompts=None, mask=np.ones((4, 4), np.uint8))
    worker.frame(1, None, image(1), None, click)
    worker.frame(2, None, image(2), None, None)
    tracker.gate.release()
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    assert [(index, request is click) for index, _, request in tracker.calls] == [(0, False), (2, True)]


def test_the_first_frames_seed_is_dropped_once_the_tracker_is_seeded(gated) -> None:
    tracker, worker = gated
    seed = SeedRequest(mask=np.ones((4, 4), np.uint8), initial=True)
    worker.frame(0, None, image(0), None, seed)
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    worker.frame(1, None, image(1), None, seed)
    finish_one(tracker, worker)
    assert worker.wait_idle(WAIT_S)
    assert [request is seed for _, _, request in tracker.calls] == [True, False]


def test_a_sam2_failure_is_kept_once_and_the_fast_path_keeps_the_last_prior(caplog) -> None:
    tracker = GatedTracker(fail_on=1)
    worker = AsyncTracker(tracker)
    try:
        worker.frame(0, None, image(0), None, None)
        finish_one(tracker, worker)
        assert worker.wait_idle(WAIT_S)
        worker.frame(1, None, image(1), None, None)
        finish_one(tracker, worker)
        assert worker.wait_idle(WAIT_S)
        prior, age, _ = worker.frame(2, None, image(2), None, None)
        assert worker.error == "SAM 2 failed on frame 1: RuntimeError: boom"
        assert float(prior[0, 0, 0, 0]) == 0.0 and age.frames == 2
        assert sum("SAM 2 failed on frame 1" in r.getMessage() for r in caplog.records) == 1
        assert [call[0] for call in tracker.calls] == [0, 1]
    finally:
        worker.close(timeout=WAIT_S)


def test_close_ends_the_worker_and_counts_a_waiting_frame_as_skipped(gated) -> None:
    tracker, worker = gated
    worker.frame(0, None, image(0), None, None)
    assert tracker.started.acquire(timeout=WAIT_S)
    worker.frame(1, None, image(1), None, None)
    tracker.gate.release()
    worker.close(timeout=WAIT_S)
    assert not worker._thread.is_alive()
    assert worker.processed == 1 and worker.skipped == 1


def test_a_warper_carries_an_older_prior_to_the_current_image() -> None:
    class Shift:
        def warp(self, prior, prior_image, current_image):
            return np.roll(prior, 1, axis=-1) + 100.0

    tracker = GatedTracker()
    worker = AsyncTracker(tracker, warper=Shift())
    try:
        worker.frame(0, None, image(0), None, None)
        finish_one(tracker, worker)
        assert worker.wait_idle(WAIT_S)
        warped, age, _ = worker.frame(3, None, image(3), None, None)
        assert age.frames == 3 and float(warped[0, 0, 0, 0]) == 100.0 and warped.shape == (1, 1, 4, 4)
    finally:
        tracker.gate.release()
        worker.close(timeout=WAIT_S)


def test_async_sam2_on_a_cpu_leaves_the_fast_path_one_core(monkeypatch) -> None:
    import os

    import torch

    from surgseg.engines.sam2.backends import make_modules
    from surgseg.engines.sam2.config import RuntimeConfig, SAM2Config

    class Model(torch.nn.Module):
        def forward_image(self, image):
            return image

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    try:
        make_modules(Model(), SAM2Config(runtime=RuntimeConfig(mode="async")), "cpu")
        assert torch.get_num_threads() == 3
        make_modules(Model(), SAM2Config(runtime=RuntimeConfig(mode="async", threads=2)), "cpu")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
