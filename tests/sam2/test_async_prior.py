"""AsyncTracker: SAM 2 on a worker thread (or in a worker process) over the newest frame; the fast path never waits
for it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.async_prior import AsyncTracker, InThreadStep
from surgseg.engines.sam2.config import (InstancesConfig, MemoryConfig, ModelConfig, RuntimeConfig, SAM2Config,
                                         SeedingConfig)
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.engines.sam2.tracker import SeedRequest, TrackerEvents
from surgseg.engines.sam2.worker_process import TrackerSpec, WorkerProcess

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
    worker = AsyncTracker(InThreadStep(tracker))
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
    worker = AsyncTracker(InThreadStep(tracker))
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
    worker = AsyncTracker(InThreadStep(tracker), warper=Shift())
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
    from surgseg.engines.sam2.backends import make_modules

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


# ------------------------------------------------------------------------------------------------- worker process
class StandInTracker:
    """PriorTracker's surface without a model, for the worker process: frame i's prior is filled with i and a
    warning is logged; it raises on `fail_on` and sleeps `hang_s` on `hang_on`."""

    num_classes = 2

    def __init__(self, fail_on: int | None, hang_on: int | None, hang_s: float) -> None:
        self.fail_on, self.hang_on, self.hang_s = fail_on, hang_on, hang_s
        self.seeded = False
        self.engine = self
        self.steps = 0

    def memory_state(self) -> dict:
        return {1: {"memory_frames": [self.steps]}}

    def frame(self, image, feedback, request):
        index = int(image[0, 0, 0, 0])
        self.steps += 1
        if index == self.hang_on:
            time.sleep(self.hang_s)
        if index == self.fail_on:
            raise RuntimeError("boom")
        logging.getLogger("surgseg.stand_in").warning("stand-in step on frame %d", index)
        self.seeded = self.seeded or request is not None
        return np.full((1, 1, *image.shape[-2:]), float(index), np.float32), TrackerEvents(index)


@dataclass(frozen=True)
class StandInSpec:
    """A picklable factory of `StandInTracker` (the worker process imports this module to build it)."""

    fail_on: int | None = None
    hang_on: int | None = None
    hang_s: float = 0.0

    def __call__(self) -> StandInTracker:
        return StandInTracker(self.fail_on, self.hang_on, self.hang_s)


def submit_and_wait(worker: AsyncTracker, index: int, picture=None) -> tuple:
    out = worker.frame(index, None, image(index) if picture is None else picture, None, None)
    assert worker.wait_idle(WAIT_S)
    return out


def child_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def tiny_sam2_config(instances: bool) -> SAM2Config:
    return SAM2Config(model=ModelConfig(image_size=128), memory=MemoryConfig(every=2),
                      seeding=SeedingConfig(condition_every=2, frames=2, min_area=16),
                      runtime=RuntimeConfig(mode="async", worker="process", threads=1),
                      instances=InstancesConfig(enabled=instances))


def two_blobs() -> np.ndarray:
    mask = np.zeros((64, 80), np.uint8)
    mask[8:28, 10:30] = 1
    mask[36:58, 44:72] = 1
    return mask


def published_steps(step, frames: int) -> list:
    """Every frame waited for, so the same tracker steps run: what SAM 2 published for each, in order."""
    rng = np.random.default_rng(3)
    images = [rng.standard_normal((1, 3, 64, 80)).astype(np.float32) for _ in range(frames + 1)]
    mask = two_blobs()
    requests = {0: SeedRequest(mask=mask, initial=True), 3: SeedRequest(prompts=prompts_from_mask(mask[::-1], 2))}
    worker = AsyncTracker(step)
    published = []
    try:
        for t, picture in enumerate(images):
            fed = None if t == 0 else (t - 1, mask)
            _, _, fresh = worker.frame(t, None, picture, fed, requests.get(t))
            assert worker.wait_idle(WAIT_S * 6) and worker.error is None
            published.append(fresh)
    finally:
        worker.close(timeout=WAIT_S)
    return published[1:]


@pytest.mark.parametrize("instances", [False, True], ids=["classes", "instances"])
def test_a_worker_process_steps_sam2_exactly_like_the_worker_thread(instances) -> None:
    config = tiny_sam2_config(instances)
    in_thread = published_steps(InThreadStep(TrackerSpec(config)()), frames=5)
    in_process = published_steps(WorkerProcess(TrackerSpec(config)), frames=5)
    for thread, process in zip(in_thread, in_process, strict=True):
        assert thread.frame_index == process.frame_index
        np.testing.assert_array_equal(process.prior, thread.prior)
        assert process.memory == thread.memory
        assert (process.events.seeded, process.events.reseeded) == (thread.events.seeded, thread.events.reseeded)
        assert process.events.instance_events == thread.events.instance_events
    assert in_process[-1].memory, "SAM 2 tracked something"
    if instances:
        assert sorted(in_process[-1].events.instance_hint.classes) == sorted(in_thread[-1].events.instance_hint.classes)


def test_the_worker_is_a_thread_or_a_process() -> None:
    assert RuntimeConfig().worker == "thread" and RuntimeConfig(mode="async", worker="process").worker == "process"
    with pytest.raises(InputError, match="worker: invalid value 'fork'"):
        RuntimeConfig(mode="async", worker="fork")


def test_a_worker_process_gives_a_torch_image_a_torch_prior() -> None:
    worker = AsyncTracker(WorkerProcess(StandInSpec()))
    try:
        empty, _, _ = submit_and_wait(worker, 0, torch.full((1, 3, 4, 4), 0.0))
        assert isinstance(empty, torch.Tensor) and empty.shape == (1, 1, 4, 4) and not empty.any()
        prior, age, published = worker.frame(1, None, torch.full((1, 3, 4, 4), 1.0), None, None)
        assert isinstance(prior, torch.Tensor) and float(prior[0, 0, 0, 0]) == 0.0 and age.frames == 1
        assert published.memory == {1: {"memory_frames": [1]}}
    finally:
        worker.close(timeout=WAIT_S)


def test_the_worker_processs_log_records_reach_the_parents_loggers(caplog) -> None:
    worker = AsyncTracker(WorkerProcess(StandInSpec()))
    try:
        submit_and_wait(worker, 7)
    finally:
        worker.close(timeout=WAIT_S)
    records = [r for r in caplog.records if r.name == "surgseg.stand_in"]
    assert [(r.levelname, r.getMessage()) for r in records] == [("WARNING", "stand-in step on frame 7")]


def test_a_failure_in_the_worker_process_is_kept_once_and_the_fast_path_keeps_the_last_prior(caplog) -> None:
    worker = AsyncTracker(WorkerProcess(StandInSpec(fail_on=1)))
    try:
        submit_and_wait(worker, 0)
        submit_and_wait(worker, 1)
        prior, age, _ = worker.frame(2, None, image(2), None, None)
        assert worker.error == "SAM 2 failed on frame 1: RuntimeError: boom"
        assert float(prior[0, 0, 0, 0]) == 0.0 and age.frames == 2
        failures = [r for r in caplog.records if "SAM 2 failed on frame 1" in r.getMessage()]
        assert len(failures) == 1 and "in SAM 2's worker process" in caplog.text, "the child's traceback is logged"
    finally:
        worker.close(timeout=WAIT_S)


def test_a_killed_worker_process_is_a_failure_on_its_frame_not_a_hang() -> None:
    step = WorkerProcess(StandInSpec(hang_on=1, hang_s=60.0))
    worker = AsyncTracker(step)
    try:
        submit_and_wait(worker, 0)
        worker.frame(1, None, image(1), None, None)
        time.sleep(0.5)  # most likely inside the step by now; before it, the frame fails the same way
        os.kill(step.pid, signal.SIGKILL)
        assert worker.wait_idle(WAIT_S)
        assert worker.error.startswith("SAM 2 failed on frame 1: WorkerProcessDied: ")
        assert worker.error.endswith("exited with code -9 (SIGKILL)")
        prior, _, _ = worker.frame(2, None, image(2), None, None)
        assert float(prior[0, 0, 0, 0]) == 0.0
    finally:
        worker.close(timeout=WAIT_S)


def test_close_stops_the_worker_process_and_can_be_called_again() -> None:
    step = WorkerProcess(StandInSpec())
    worker = AsyncTracker(step)
    submit_and_wait(worker, 0)
    worker.close(timeout=WAIT_S)
    worker.close(timeout=WAIT_S)
    assert child_is_gone(step.pid) and not worker._thread.is_alive()
    assert worker.processed == 1


def test_a_worker_process_that_cannot_build_sam2_raises_what_thread_mode_raises(tmp_path) -> None:
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    config = replace(tiny_sam2_config(False), model=ModelConfig(image_size=128, checkpoint=str(checkpoint)))
    with pytest.raises(InputError) as in_thread:
        TrackerSpec(config)()
    with pytest.raises(InputError) as in_process:
        WorkerProcess(TrackerSpec(config))
    assert str(in_process.value) == str(in_thread.value) and "cannot read checkpoint" in str(in_process.value)


def test_sam2s_worker_thread_runs_nicer_than_the_fast_path() -> None:
    tracker = GatedTracker()
    worker = AsyncTracker(InThreadStep(tracker), nice=7)
    try:
        worker.frame(0, None, image(0), None, None)
        assert tracker.started.acquire(timeout=WAIT_S)  # the worker lowers its priority before its first step
        here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, worker._thread.native_id) == min(19, here + 7)
    finally:
        tracker.gate.release()
        worker.close(timeout=WAIT_S)


def test_sam2s_worker_process_runs_nicer_than_the_fast_path() -> None:
    step = WorkerProcess(StandInSpec(), nice=5)
    try:
        here = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, step.pid) == min(19, here + 5)
    finally:
        step.close(WAIT_S)
