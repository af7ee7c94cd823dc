"""Build a Holoscan `Application` from a validated GraphSpec and run it with clean stops.

SIGINT/SIGTERM are taken by a watcher thread (blocked everywhere else), so Holoscan's own handlers never see
them and every scheduler behaves the same: the sources end their streams, in-flight frames drain, every
operator's stop() runs (sinks finalise their files) and the run returns normally. A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from surgseg.app.graph_spec import FlowSpec, GraphSpec, SchedulerSpec
from surgseg.engines.device import resolve_device
from surgseg.engines.errors import InputError
from surgseg.operators.base import OperatorFailure, SurgsegOperator
from surgseg.operators.holoscan_loader import held_native_output
from surgseg.operators.source import STOP_REQUESTED, FrameSource

from holoscan.conditions import CountCondition, PeriodicCondition
from holoscan.core import Application
from holoscan.schedulers import EventBasedScheduler, GreedyScheduler, MultiThreadScheduler

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GraphApplication(Application):
    """A Holoscan application whose operators and flows come from a GraphSpec."""

    def __init__(self, spec: GraphSpec, frame_limit: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.frame_limit = frame_limit
        self.device = resolve_device(spec.device)
        self.ops: dict[str, Any] = {}

    def compose(self) -> None:
        for name, op_spec in self.spec.operators.items():
            self.ops[name] = self._make_operator(name)
        for flow in self.spec.flows:
            self._add_flow(flow)
        self.scheduler(make_scheduler(self, self.spec.scheduler))

    def _make_operator(self, name: str) -> Any:
        op_spec = self.spec.operators[name]
        conditions = []
        count = op_spec.count
        is_source = name in self.spec.sources()
        if op_spec.type.builtin and is_source and self.frame_limit is not None:
            count = self.frame_limit if count is None else min(count, self.frame_limit)
        if count is not None:
            conditions.append(CountCondition(self, count, name=f"{name}_count"))
        if op_spec.period_ms is not None:
            conditions.append(PeriodicCondition(self, recess_period=int(op_spec.period_ms * 1e6), name=f"{name}_period"))
        cls = op_spec.type.cls
        try:
            if op_spec.type.builtin:
                return cls(self, *conditions, name=name, **op_spec.params)
            kwargs: dict[str, Any] = {
                "config": op_spec.params, "name": name, "device": self.device,
                "connected_inputs": frozenset(f.target_port for f in self.spec.flows if f.target == name),
                "connected_outputs": frozenset(f.source_port for f in self.spec.flows if f.source == name),
            }
            if issubclass(cls, FrameSource):
                kwargs["frame_limit"] = self.frame_limit
            return cls(self, *conditions, **kwargs)
        except InputError:  # bad input (a parameter, a file): exit 2
            raise
        except Exception as exc:
            if op_spec.type.builtin and isinstance(exc, (TypeError, ValueError)):  # the YAML's keyword arguments
                raise InputError(f"operators.{name}: {op_spec.type.name} refuses its parameters: {exc}") from exc
            raise self._failure(name, exc) from exc  # a bug, out of memory, a driver: exit 1, traceback in the log

    def _failure(self, name: str, exc: Exception) -> OperatorFailure:
        """An operator that could not be created for a reason other than bad input; its traceback goes to the log."""
        type_name = self.spec.operators[name].type.name
        log.error("operators.%s: cannot create %s", name, type_name, exc_info=exc)
        return OperatorFailure(f"operators.{name}: cannot create {type_name}: {type(exc).__name__}: {exc}")

    def _add_flow(self, flow: FlowSpec) -> None:
        source, target = self.ops[flow.source], self.ops[flow.target]
        try:
            if flow.source_port is None or flow.target_port is None:
                self.add_flow(source, target)
            else:
                self.add_flow(source, target, {(flow.source_port, flow.target_port)})
        except Exception as exc:
            raise InputError(f"{flow.key}: cannot connect {flow.source} → {flow.target}: {exc}") from exc


def make_scheduler(app: Application, spec: SchedulerSpec) -> Any:
    """The Holoscan scheduler a graph asks for; every kind stops when the sources are done."""
    extra = {} if spec.max_duration_ms is None else {"max_duration_ms": spec.max_duration_ms}
    if spec.type == "greedy":
        return GreedyScheduler(app, name="scheduler", stop_on_deadlock=True, **extra)
    if spec.type == "multithread":
        extra["check_recession_period_ms"] = spec.check_recession_period_ms
    cls = EventBasedScheduler if spec.type == "event" else MultiThreadScheduler
    return cls(app, name="scheduler", worker_thread_number=spec.workers, stop_on_deadlock=True,
               stop_on_deadlock_timeout=spec.stop_on_deadlock_timeout_ms, **extra)


def block_stop_signals() -> None:
    """Block SIGINT/SIGTERM in this thread and every thread it starts later; call before anything spawns threads."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def start_signal_watcher(app: GraphApplication | None = None) -> threading.Thread:
    """A daemon thread that turns the first stop signal into a graceful stop and the second into exit 130."""

    def watch() -> None:
        received = signal.sigwait(STOP_SIGNALS)
        log.warning("%s received: stopping the sources and draining in-flight frames (again to abort)",
                    signal.Signals(received).name)
        STOP_REQUESTED.set()
        if app is not None:
            for name in app.spec.sources():
                op = app.ops.get(name)
                if op is not None and not isinstance(op, SurgsegOperator):
                    op.stop_execution()
        received = signal.sigwait(STOP_SIGNALS)
        log.error("%s received again: aborting", signal.Signals(received).name)
        os._exit(130)

    thread = threading.Thread(target=watch, name="signal-watcher", daemon=True)
    thread.start()
    return thread


def run_graph(spec: GraphSpec, frame_limit: int | None = None, handle_signals: bool = False) -> GraphApplication:
    """Compose and run the graph to completion; returns the finished application (its operators hold results)."""
    STOP_REQUESTED.clear()
    with held_native_output():  # the CLI's default: Holoscan's own lines only when surgseg reports nothing itself
        app = GraphApplication(spec, frame_limit)
        if handle_signals:
            start_signal_watcher(app)
        app.run()
    if STOP_REQUESTED.is_set():
        log.info("stopped on request; every sink finalised its output")
    return app
