"""SAM 2 off the critical path, three ways: the operator-owned worker thread (production), a worker process, and
Holoscan-native scheduling.

Issue 14 asks to measure the options and keep the best. All run the same live model: a 30 fps camera (a periodic
source whose frame index comes from the wall clock, so a late tick drops frames the way a capture card does), a
fast path (refiner stand-in: a fixed amount of CPU work) and a slow SAM 2 stand-in (a fixed sleep, or a fixed amount
of CPU work that, like SAM 2's torch kernels, releases the GIL; or, with --real-sam2, the random-weight SAM 2 tiny
at 256 px). Per option: fast-path fps at the sink, frames dropped, end-to-end latency (capture → sink) p50/p99,
prior age (frames between the frame the prior was made on and the frame that used it) p50/p99, SAM 2 steps done.

- `worker_thread` (production: operators/sam2_prior.py + engines/sam2/async_prior.py): one fast-path operator hands
  each frame to `AsyncTracker`, whose thread runs SAM 2 on the newest frame; greedy scheduler
  (`worker_thread_multithread`: the same on the MultiThread scheduler, 2 workers).
- `worker_process` / `worker_process_multithread` (`runtime.worker: process`, engines/sam2/worker_process.py): the
  same AsyncTracker, its step sent to a spawned child process that runs the same stand-in (or builds its own SAM 2),
  so SAM 2's Python never waits for the fast path's GIL; each step copies the image and the prior through a pipe.
- `native_event` / `native_multithread`: SAM 2 is its own operator; the source feeds it through an input queue of
  capacity 1 that drops the older message (`IOSpec.QueuePolicy.POP`, no back-pressure on the source's port), it
  emits each prior to the fast path's `prior` input (capacity 1, POP, `ConditionType.NONE`: the fast path never
  waits for it and keeps the newest it got); EventBased or MultiThread scheduler, 2 workers.

    .venv/bin/python -m benchmarks.async_options                # sleep and CPU stand-ins, 8 s per option
    .venv/bin/python -m benchmarks.async_options --real-sam2    # also the random-weight SAM 2 tiny at 256 px, 30 s
    .venv/bin/python -m benchmarks.async_options --seconds 2 --options worker_process --no-write   # a smoke
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.common import write_result
from benchmarks.refiner_latency import sam2_step_call
from surgseg.engines.sam2.async_prior import AsyncTracker, InThreadStep
from surgseg.engines.sam2.tracker import TrackerEvents
from surgseg.engines.sam2.worker_process import WorkerProcess
from surgseg.operators.base import PYTHON_OBJECT
from holoscan.conditions import PeriodicCondition
from holoscan.core import Application, ConditionType, IOSpec, Operator
from holoscan.schedulers import EventBasedScheduler, GreedyScheduler, MultiThreadScheduler

log = logging.getLogger("async_options")
FPS = 30.0
IMAGE = (1, 3, 128, 160)
Work = Callable[[], None]


# ------------------------------------------------------------------------------------------------- the stand-ins
@dataclass(frozen=True)
class CpuWork:
    """A fixed amount of single-threaded CPU work that releases the GIL (SHA-256 of 256 KiB blocks, ≈ 0.2-1 ms each).
    Not torch: its OpenMP pool sizes itself per calling thread, and Holoscan's threads would then measure OpenMP
    barriers on a loaded machine rather than scheduling. Picklable: a worker process runs the same count."""

    count: int

    def __call__(self) -> None:
        block = bytes(1 << 18)
        for _ in range(self.count):
            hashlib.sha256(block).digest()


def cpu_work(ms: float) -> CpuWork:
    """`CpuWork` calibrated to ≈ `ms` on this machine now."""
    block = bytes(1 << 18)
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < 0.2:
        hashlib.sha256(block).digest()
        calls += 1
    return CpuWork(max(1, round(ms / 1e3 / ((time.perf_counter() - started) / calls))))


@dataclass(frozen=True)
class SleepWork:
    ms: float

    def __call__(self) -> None:
        time.sleep(self.ms / 1e3)


class RealSam2:
    """The random-weight SAM 2 tiny step at 256 px, one intra-op thread, built (and warmed up: the first steps build
    caches the options should not pay for) in the process that runs it: a worker process builds its own."""

    def __init__(self) -> None:
        self._step: Work | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_step": None}

    def __call__(self) -> None:
        if self._step is None:
            torch.set_num_threads(1)
            self._step = sam2_step_call((256, 256), 256, steps=8)
            for _ in range(2):
                self._step()
        self._step()


@dataclass
class Record:
    """What the sink saw."""

    arrivals: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    prior_ages: list[int] = field(default_factory=list)
    dropped: int = 0
    sam2_steps: int = 0

    def summary(self, seconds: float) -> dict[str, Any]:
        span = self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else float("nan")
        return {"frames_processed": len(self.arrivals), "fps_processed": (len(self.arrivals) - 1) / span,
                "frames_dropped": self.dropped, "sam2_steps": self.sam2_steps, "seconds": seconds,
                "e2e_ms": percentiles(self.e2e_ms), "prior_age_frames": percentiles(self.prior_ages),
                "frames_without_prior": len(self.arrivals) - len(self.prior_ages)}


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


# ------------------------------------------------------------------------------------------------- the operators
class LiveSource(Operator):
    """A 30 fps camera: each tick takes the newest frame the wall clock says exists; frames it skipped are dropped."""

    def __init__(self, fragment: Any, *args: Any, seconds: float, record: Record, ports: tuple[str, ...],
                 **kwargs: Any) -> None:
        self.seconds, self.record, self.ports = seconds, record, ports
        self.started: float | None = None
        self.last_index = -1
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        for port in self.ports:
            output = spec.output(port)
            if port == "sam2":  # never wait for SAM 2: its queue drops the older frame
                output.condition(ConditionType.NONE)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        if now - self.started >= self.seconds:
            self.stop_execution()
            return
        index = int((now - self.started) * FPS)
        if index <= self.last_index:
            return
        self.record.dropped += index - self.last_index - 1
        self.last_index = index
        message = {"image": np.full(IMAGE, index % 255, np.float32),
                   "meta": {"frame_index": index, "captured_s": self.started + index / FPS}}
        for port in self.ports:
            op_output.emit(message, port, PYTHON_OBJECT)


class FastPath(Operator):
    """The refiner stand-in. With a `tracker` (worker_thread option) it asks AsyncTracker for the newest prior;
    without, it reads its `prior` input (native options), which never holds it up."""

    def __init__(self, fragment: Any, *args: Any, work: Work, record: Record, tracker: AsyncTracker | None = None,
                 **kwargs: Any) -> None:
        self.work, self.record, self.tracker = work, record, tracker
        self.prior_index: int | None = None
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        spec.input("in")
        if self.tracker is None:
            spec.input("prior", policy=IOSpec.QueuePolicy.POP).condition(ConditionType.NONE)
        spec.output("out")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        message = op_input.receive("in")
        index = message["meta"]["frame_index"]
        if self.tracker is not None:
            _, age, _ = self.tracker.frame(index, None, message["image"], None, None)
            prior_index = None if age.frames is None else index - age.frames
        else:
            prior = op_input.receive("prior")
            if prior is not None:
                self.prior_index = prior["meta"]["frame_index"]
            prior_index = self.prior_index
        self.work()
        op_output.emit({**message, "prior_index": prior_index}, "out", PYTHON_OBJECT)


class Sam2StandIn(Operator):
    """SAM 2 as its own operator (native options): input capacity 1, the older frame dropped."""

    def __init__(self, fragment: Any, *args: Any, work: Work, record: Record, **kwargs: Any) -> None:
        self.work, self.record = work, record
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        spec.input("in", policy=IOSpec.QueuePolicy.POP)
        spec.output("prior").condition(ConditionType.NONE)  # the fast path's prior queue drops the older one

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        message = op_input.receive("in")
        self.work()
        self.record.sam2_steps += 1
        op_output.emit({"prior": None, "meta": message["meta"]}, "prior", PYTHON_OBJECT)


class Sink(Operator):
    def __init__(self, fragment: Any, *args: Any, record: Record, **kwargs: Any) -> None:
        self.record = record
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        spec.input("in")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        message = op_input.receive("in")
        now = time.perf_counter()
        self.record.arrivals.append(now)
        self.record.e2e_ms.append((now - message["meta"]["captured_s"]) * 1e3)
        if message["prior_index"] is not None:
            self.record.prior_ages.append(message["meta"]["frame_index"] - message["prior_index"])


class FakeTracker:
    """What AsyncTracker needs of a PriorTracker, with a stand-in SAM 2 step."""

    seeded = True
    num_classes = 2

    def __init__(self, work: Work) -> None:
        self.work = work
        self.engine = self
        self.frames = 0

    def frame(self, image: Any, feedback: Any, request: Any) -> tuple[Any, TrackerEvents]:
        self.work()
        self.frames += 1
        return np.zeros((1, 1, *IMAGE[-2:]), np.float32), TrackerEvents(self.frames)

    def memory_state(self) -> dict:
        return {}

    def empty_prior(self, size: tuple[int, int], like: Any) -> Any:
        return np.zeros((1, 1, *size), np.float32)


@dataclass(frozen=True)
class FakeTrackerSpec:
    """A picklable recipe for a FakeTracker (what the worker process builds); the stand-in warmed up once first."""

    work: Work

    def __call__(self) -> FakeTracker:
        self.work()
        return FakeTracker(self.work)


# ------------------------------------------------------------------------------------------------- the options
class Option(Application):
    def __init__(self, option: str, seconds: float, fast: Work, sam2: Work | Callable[[Record], Any]) -> None:
        super().__init__()
        self.option, self.seconds, self.fast, self.sam2 = option, seconds, fast, sam2
        self.record = Record()
        self.tracker: AsyncTracker | None = None

    def compose(self) -> None:
        period = PeriodicCondition(self, recess_period=int(1e9 / FPS / 4), name="tick")
        native = self.option.startswith("native")
        source = LiveSource(self, period, seconds=self.seconds, record=self.record,
                            ports=("fast", "sam2") if native else ("fast",), name="source")
        if native:
            fast = FastPath(self, work=self.fast, record=self.record, name="fast")
            sam2 = Sam2StandIn(self, work=self.sam2, record=self.record, name="sam2")
            self.add_flow(source, sam2, {("sam2", "in")})
            self.add_flow(sam2, fast, {("prior", "prior")})
        else:
            spec = FakeTrackerSpec(self.sam2)
            step = WorkerProcess(spec) if self.option.startswith("worker_process") else InThreadStep(spec())
            self.tracker = AsyncTracker(step, name="sam2")
            fast = FastPath(self, work=self.fast, record=self.record, tracker=self.tracker, name="fast")
        sink = Sink(self, record=self.record, name="sink")
        self.add_flow(source, fast, {("fast", "in")})
        self.add_flow(fast, sink)
        self.scheduler(self._scheduler())

    def _scheduler(self) -> Any:
        if self.option in ("worker_thread", "worker_process"):
            return GreedyScheduler(self, name="scheduler", stop_on_deadlock=True)
        cls = EventBasedScheduler if self.option.endswith("event") else MultiThreadScheduler
        return cls(self, name="scheduler", worker_thread_number=2, stop_on_deadlock=True,
                   stop_on_deadlock_timeout=500)


def run_option(option: str, seconds: float, fast: Work, sam2: Work) -> dict[str, Any]:
    app = Option(option, seconds, fast, sam2)
    started = time.perf_counter()
    app.run()
    if app.tracker is not None:
        app.tracker.close()
        app.record.sam2_steps = app.tracker.processed
    result = app.record.summary(time.perf_counter() - started)
    log.info("%-26s fps %5.1f  dropped %3d  e2e p50 %6.1f p99 %6.1f ms  prior age p50 %s p99 %s  SAM 2 steps %d",
             option, result["fps_processed"], result["frames_dropped"], result["e2e_ms"]["p50"],
             result["e2e_ms"]["p99"], result["prior_age_frames"]["p50"], result["prior_age_frames"]["p99"],
             result["sam2_steps"])
    return result


OPTIONS = ("worker_thread", "worker_thread_multithread", "worker_process", "worker_process_multithread", "native_event",
           "native_multithread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per option and stand-in")
    parser.add_argument("--fast-ms", type=float, default=6.0, help="fast path CPU work per frame")
    parser.add_argument("--sam2-ms", type=float, default=150.0, help="SAM 2 stand-in per step")
    parser.add_argument("--real-sam2", action="store_true", help="also the random-weight SAM 2 tiny at 256 px")
    parser.add_argument("--real-seconds", type=float, default=30.0, help="per option with the real SAM 2")
    parser.add_argument("--options", nargs="+", choices=OPTIONS, default=list(OPTIONS), help="the options to run")
    parser.add_argument("--no-write", action="store_true", help="log the results only (a smoke run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fast = cpu_work(args.fast_ms)
    stand_ins: dict[str, Work] = {"sleep": SleepWork(args.sam2_ms), "cpu": cpu_work(args.sam2_ms)}
    if args.real_sam2:
        stand_ins["real_sam2_256px"] = RealSam2()
    results: dict[str, Any] = {}
    for label, sam2 in stand_ins.items():
        log.info("SAM 2 stand-in: %s", label)
        sam2()  # warm-up (the real SAM 2 is built on its first call); a worker process warms up its own
        seconds = args.real_seconds if label.startswith("real") else args.seconds
        results[label] = {option: run_option(option, seconds, fast, sam2) for option in args.options}
    if args.no_write:
        return
    path = write_result("async_options", {"load_average_1min": os.getloadavg()[0], "fps": FPS, "seconds": args.seconds,
                                          "real_sam2_seconds": args.real_seconds, "fast_path_cpu_ms": args.fast_ms,
                                          "sam2_stand_in_ms": args.sam2_ms, "image": list(IMAGE), "results": results})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
