"""Per-frame cost of the Holoscan graph vs the same operator calls in a plain Python loop, and the cost of one hop.

720×1280×3 uint8 frames through 6 operators (test pattern → 4 pass-throughs → counting sink); the same
operators' `process()` are called back to back in a loop for the baseline. Prints, per scheduler, the ratio and
the overhead per operator hop ((graph − loop) / 5: source and sink edges included).

The marginal hop (greedy) is what one more operator in a chain costs: the same graph with 4 pass-throughs vs
none, divided by 4, less a pass-through's own `process()`, in process CPU time (the greedy scheduler runs every
operator on one thread, so other processes' load does not count; start-up is removed with a short run). The same
two graphs built from bare Holoscan Python operators (receive + emit of the same dict, nothing else) give
Holoscan's own cost in the same run: the difference is what surgseg's operator base adds. Runs alternate and
medians are kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result
from surgseg.app.graph_spec import validate
from surgseg.app.runtime import GraphApplication, run_graph
from surgseg.operators.base import PYTHON_OBJECT
from holoscan.conditions import CountCondition
from holoscan.core import Application, Operator
from holoscan.schedulers import GreedyScheduler

log = logging.getLogger("graph_overhead")
RELAYS = 4
SIZE = (720, 1280)
STARTUP_FRAMES = 50


def graph(frames: int, scheduler: str, counts: Path, relays: int = RELAYS) -> dict:
    operators = {"source": {"type": "TestPatternSource", "size": list(SIZE), "frames": frames}}
    operators |= {f"relay{i}": {"type": "PassThrough"} for i in range(relays)}
    operators["sink"] = {"type": "FrameCounterSink", "path": str(counts)}
    names = list(operators)
    return {"name": "overhead", "device": "cpu", "scheduler": {"type": scheduler, "workers": 2},
            "operators": operators, "flows": [[a, b] for a, b in zip(names, names[1:])]}


def spacing_s(arrivals: list[float]) -> float:
    """Steady-state seconds per frame: the spacing of arrivals at the sink (start-up excluded)."""
    return (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)


def time_graph(frames: int, scheduler: str, folder: Path, relays: int = RELAYS) -> float:
    counts = folder / "counts.json"
    run_graph(validate(graph(frames, scheduler, counts, relays), folder / "overhead.yaml"))
    return spacing_s(json.loads(counts.read_text())["arrival_ms"]) / 1e3


def time_loop(frames: int, folder: Path) -> tuple[float, float]:
    """The same operator objects, their process() called directly: seconds per frame for the whole chain and for
    one pass-through."""
    spec = validate(graph(frames, "greedy", folder / "loop.json"), folder / "loop.yaml")
    app = GraphApplication(spec)
    app.compose_graph()
    ops = [app.ops[name] for name in spec.operators]
    source, relays, sink = ops[0], ops[1:-1], ops[-1]
    source.open_stream()
    sink.start()
    relay_ns = 0
    started = time.perf_counter()
    for _ in range(frames):
        message = source.process({})["frame"]
        relay_started = time.perf_counter_ns()
        for relay in relays:
            message = relay.process({"in": message})["out"]
        relay_ns += time.perf_counter_ns() - relay_started
        sink.process({"in": message})
    return (time.perf_counter() - started) / frames, relay_ns / 1e9 / frames / len(relays)


class BareSource(Operator):
    """Holoscan's own cost: emits the same kind of message as TestPatternSource (a rolled colour frame + meta)."""

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        height, width = SIZE
        bars = np.linspace(0, 255, width, dtype=np.float32)
        self.base = np.stack([np.tile(bars, (height, 1)), np.tile(bars[::-1], (height, 1)),
                              np.full((height, width), 128.0, np.float32)], axis=-1).astype(np.uint8)
        self.emitted = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        spec.output("out")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = np.roll(self.base, self.emitted * 4, axis=1)
        meta = {"frame_index": self.emitted, "captured_ns": time.perf_counter_ns(), "timings_ms": {}}
        self.emitted += 1
        op_output.emit({"frame": frame, "meta": meta}, "out", PYTHON_OBJECT)


class BareRelay(Operator):
    def setup(self, spec: Any) -> None:
        spec.input("in")
        spec.output("out")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_output.emit(op_input.receive("in"), "out", PYTHON_OBJECT)


class BareSink(Operator):
    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        self.arrivals: list[float] = []
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: Any) -> None:
        spec.input("in")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_input.receive("in")
        self.arrivals.append(time.perf_counter())


class BareChain(Application):
    def __init__(self, frames: int, relays: int) -> None:
        super().__init__()
        self.frames, self.relays = frames, relays

    def compose(self) -> None:
        previous = BareSource(self, CountCondition(self, self.frames), name="source")
        for index in range(self.relays):
            relay = BareRelay(self, name=f"relay{index}")
            self.add_flow(previous, relay)
            previous = relay
        self.sink = BareSink(self, name="sink")
        self.add_flow(previous, self.sink)
        self.scheduler(GreedyScheduler(self, name="scheduler", stop_on_deadlock=True))


def time_bare(frames: int, relays: int) -> float:
    app = BareChain(frames, relays)
    app.run()
    return spacing_s(app.sink.arrivals)


def cpu_per_frame(run: Callable[[int], object], frames: int) -> float:
    """Process CPU seconds per frame of a greedy graph (one thread: preemption by other processes does not count),
    start-up and shut-down removed by subtracting a run of STARTUP_FRAMES."""
    costs = []
    for count in (STARTUP_FRAMES, frames):
        started = time.process_time()
        run(count)
        costs.append(time.process_time() - started)
    return (costs[1] - costs[0]) / (frames - STARTUP_FRAMES)


def marginal_hops(frames: int, repeats: int, relay_process_s: float, folder: Path) -> dict:
    """Greedy CPU µs per extra hop, surgseg operators vs bare Holoscan operators, alternating runs (medians)."""
    ours, bare = [], []
    for _ in range(repeats):
        with_relays = cpu_per_frame(lambda n: time_graph(n, "greedy", folder), frames)
        without = cpu_per_frame(lambda n: time_graph(n, "greedy", folder, 0), frames)
        ours.append((with_relays - without) / RELAYS - relay_process_s)
        bare_with = cpu_per_frame(lambda n: time_bare(n, RELAYS), frames)
        bare.append((bare_with - cpu_per_frame(lambda n: time_bare(n, 0), frames)) / RELAYS)
    ours_us, bare_us = statistics.median(ours) * 1e6, statistics.median(bare) * 1e6
    return {"measure": "process CPU time", "repeats": repeats, "surgseg_us_per_hop": ours_us,
            "bare_holoscan_us_per_hop": bare_us, "surgseg_added_us_per_hop": ours_us - bare_us,
            "ratio_surgseg_over_bare": ours_us / bare_us, "surgseg_runs_us": [x * 1e6 for x in ours],
            "bare_runs_us": [x * 1e6 for x in bare]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs for the marginal hop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        time_loop(50, folder)  # warm-up
        loop_s, relay_process_s = time_loop(args.frames, folder)
        rows = {}
        for scheduler in ("greedy", "event", "multithread"):
            graph_s = time_graph(args.frames, scheduler, folder)
            hops = RELAYS + 1
            rows[scheduler] = {"graph_us_per_frame": graph_s * 1e6, "ratio_graph_over_loop": graph_s / loop_s,
                               "overhead_us_per_hop": (graph_s - loop_s) * 1e6 / hops}
            log.info("%-11s graph %7.1f µs/frame  loop %7.1f µs/frame  ratio %.2f  overhead %.1f µs per hop",
                     scheduler, graph_s * 1e6, loop_s * 1e6, graph_s / loop_s, rows[scheduler]["overhead_us_per_hop"])
        marginal = marginal_hops(args.frames, args.repeats, relay_process_s, folder)
        log.info("greedy marginal hop: surgseg %.1f µs, bare Holoscan %.1f µs (surgseg adds %.1f µs, %.2f×)",
                 marginal["surgseg_us_per_hop"], marginal["bare_holoscan_us_per_hop"],
                 marginal["surgseg_added_us_per_hop"], marginal["ratio_surgseg_over_bare"])
    path = write_result("graph_overhead", {"frames": args.frames, "frame_shape": [*SIZE, 3],
                                           "operators": 2 + RELAYS, "loop_us_per_frame": loop_s * 1e6,
                                           "relay_process_us": relay_process_s * 1e6, "schedulers": rows,
                                           "greedy_marginal_hop": marginal})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
