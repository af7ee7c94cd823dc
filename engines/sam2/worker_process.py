"""SAM 2's asynchronous step in a child process (`runtime.worker: process`): no GIL shared with the fast path.

The child is started with the `spawn` context (never fork: torch's thread pools and CUDA do not survive one) and
builds its own tracker from a picklable recipe (`TrackerSpec`: the SAM 2 configuration and the device); the parent
never builds SAM 2. The child then serves one step at a time over a pipe: the image (a host numpy array), the
feedback mask and the seed request in; the prior (numpy), the events, the engine's memory state and whether it is
seeded out. `AsyncTracker`'s worker thread sends the newest frame and blocks on the reply (the GIL released while it
waits); the prior goes back to the image's device.

Failures keep thread mode's meaning: an exception in the child comes back and is raised in the parent with the
child's traceback as its cause; a child that dies (killed, segfault) closes its end of the pipe and the parent
raises `WorkerProcessDied` instead of waiting; a failure while the child builds the tracker (a bad checkpoint:
InputError) is raised by the constructor. The child's log records are replayed in the parent's loggers. The child
ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the graph drains first and stops SAM 2 itself)
and exits by itself when the parent's end of the pipe closes.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler
from typing import Any

import numpy as np
import torch

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.preprocess import empty_prior
from surgseg.engines.sam2.async_prior import lower_priority
from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.tracker import PriorTracker, SeedRequest, TrackerEvents, like_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerSpec:
    """A picklable recipe for the tracker of one SAM 2 configuration (built in the child, or in place)."""

    config: SAM2Config
    device: str = "cpu"

    def __call__(self) -> PriorTracker:
        from surgseg.engines.sam2.instance_prior import InstancePriorTracker
        from surgseg.engines.sam2.stream import StreamingSAM2

        tracker_type = InstancePriorTracker if self.config.instances.enabled else PriorTracker
        return tracker_type(StreamingSAM2(self.config, self.device))


class WorkerProcessDied(RuntimeError):
    """The child ended without answering (killed, crashed)."""


class ChildTraceback(Exception):
    """The child's traceback, attached as the cause of an exception raised there."""

    def __str__(self) -> str:
        return f"in SAM 2's worker process:\n{self.args[0]}"


class WorkerProcess:
    """A tracker in a child process, stepped like `InThreadStep` (one caller at a time: AsyncTracker's worker)."""

    def empty_prior(self, size: tuple[int, int], like: Any) -> Any:
        """The "no prior" prior, so the fast path has one before SAM 2's first step (needs only `num_classes`)."""
        return empty_prior(self.num_classes, size, like)

    def __init__(self, factory: Callable[[], PriorTracker], name: str = "sam2", nice: int = 0) -> None:
        """Start the child and wait until its tracker is built; what the build raised is raised here."""
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(factory, child_end, logging.getLogger().level, nice),
                                        name=f"{name}-worker", daemon=True)
        self._process.start()
        child_end.close()  # the child holds the only other end: its death reads as EOF here
        self._closed = False
        try:
            self.num_classes, self.seeded = self._reply()
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def __call__(self, image: Any, feedback: np.ndarray | None,
                 request: SeedRequest | None) -> tuple[Any, TrackerEvents, dict[int, dict[str, list]]]:
        """One tracker step in the child: the prior (on `image`'s device), the events, the memory state."""
        try:
            self._conn.send((to_numpy(image), feedback, request))
        except OSError as exc:
            raise self._died() from exc
        prior, events, memory, self.seeded = self._reply()
        return like_image(torch.from_numpy(prior), image), events, memory

    def _reply(self) -> Any:
        """The child's answer (its log records replayed here); what the child raised is raised here."""
        try:
            ok, value, records = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        for record in records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):  # this process's levels decide, as for its own records
                logger.handle(record)
        if ok:
            return value
        error, child_traceback = value
        error.__cause__ = ChildTraceback(child_traceback)
        raise error

    def _died(self) -> WorkerProcessDied:
        self._process.join(5.0)
        code = self._process.exitcode
        how = "is still running but its pipe closed" if code is None else f"exited with code {code}"
        if code is not None and code < 0:
            how += f" ({signal.Signals(-code).name})"
        return WorkerProcessDied(f"SAM 2's worker process {self._process.pid} {how}")

    def close(self, timeout: float = 60.0) -> None:
        """Stop the child after its step in progress (killed if still busy after `timeout` s); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(None)
        except OSError:
            pass  # already gone
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("SAM 2's worker process %d did not stop; killed", self._process.pid)
            self._process.kill()
            self._process.join()
        self._conn.close()


# ------------------------------------------------------------------------------------------------- the child
def _serve(factory: Callable[[], PriorTracker], conn: Any, log_level: int, nice: int) -> None:
    """The child: build the tracker, report ready (or why not), then step it until told to stop (None) or orphaned.
    Every reply is (ok, value or (exception, traceback text), the log records since the last reply)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(records)]
    root.setLevel(log_level)
    lower_priority(nice)
    try:
        tracker = factory()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send(conn, _failure(exc), records)
        return
    _send(conn, (True, (tracker.num_classes, tracker.seeded)), records)
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        try:
            prior, events = tracker.frame(*job)
            reply = (True, (to_numpy(prior), events, tracker.engine.memory_state(), tracker.seeded))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it with the frame
            reply = _failure(exc)
        _send(conn, reply, records)


def _send(conn: Any, reply: tuple[bool, Any], records: queue.SimpleQueue) -> None:
    logs = []
    while not records.empty():
        logs.append(records.get())
    try:
        conn.send((*reply, logs))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was written: say why instead
        conn.send((*_failure(exc), []))


def _failure(exc: Exception) -> tuple[bool, tuple[Exception, str]]:
    """The exception itself when it survives pickling (so the parent raises the same type), else its text."""
    text = "".join(traceback.format_exception(exc))
    try:
        portable = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception type may refuse pickling
        portable = RuntimeError(f"{type(exc).__name__}: {exc}")
    return False, (portable, text)
