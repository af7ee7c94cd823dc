"""Per-frame cost of the Holoscan graph vs the same operator calls in a plain Python loop.

720×1280×3 uint8 frames through 6 operators (test pattern → 4 pass-throughs → counting sink); the same
operators' `process()` are called back to back in a loop for the baseline. Prints the ratio and the overhead
per operator hop, per scheduler.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from surgseg.app.graph_spec import validate
from surgseg.app.runtime import GraphApplication, run_graph

log = logging.getLogger("graph_overhead")
RELAYS = 4


def graph(frames: int, scheduler: str, counts: Path) -> dict:
    operators = {"source": {"type": "TestPatternSource", "size": [720, 1280], "frames": frames}}
    operators |= {f"relay{i}": {"type": "PassThrough"} for i in range(RELAYS)}
    operators["sink"] = {"type": "FrameCounterSink", "path": str(counts)}
    names = list(operators)
    return {"name": "overhead", "device": "cpu", "scheduler": {"type": scheduler, "workers": 2},
            "operators": operators, "flows": [[a, b] for a, b in zip(names, names[1:])]}


def time_graph(frames: int, scheduler: str, folder: Path) -> float:
    """Steady-state seconds per frame: the spacing of arrivals at the sink (start-up excluded)."""
    counts = folder / "counts.json"
    run_graph(validate(graph(frames, scheduler, counts), folder / "overhead.yaml"))
    arrivals = json.loads(counts.read_text())["arrival_ms"]
    return (arrivals[-1] - arrivals[0]) / 1e3 / (len(arrivals) - 1)


def time_loop(frames: int, folder: Path) -> float:
    """The same operator objects, their process() called directly: the work without the graph."""
    spec = validate(graph(frames, "greedy", folder / "loop.json"), folder / "loop.yaml")
    app = GraphApplication(spec)
    app.compose_graph()
    ops = [app.ops[name] for name in spec.operators]
    source, relays, sink = ops[0], ops[1:-1], ops[-1]
    source.open_stream()
    sink.start()
    started = time.perf_counter()
    for _ in range(frames):
        message = source.process({})["frame"]
        for relay in relays:
            message = relay.process({"in": message})["out"]
        sink.process({"in": message})
    return (time.perf_counter() - started) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        time_loop(50, folder)  # warm-up
        loop_s = time_loop(args.frames, folder)
        rows = {}
        for scheduler in ("greedy", "event", "multithread"):
            graph_s = time_graph(args.frames, scheduler, folder)
            hops = len(graph(1, scheduler, folder / "x")["operators"]) - 1
            rows[scheduler] = {"graph_us_per_frame": graph_s * 1e6, "ratio_graph_over_loop": graph_s / loop_s,
                               "overhead_us_per_hop": (graph_s - loop_s) * 1e6 / hops}
            log.info("%-11s graph %7.1f µs/frame  loop %7.1f µs/frame  ratio %.2f  overhead %.1f µs per hop",
                     scheduler, graph_s * 1e6, loop_s * 1e6, graph_s / loop_s, rows[scheduler]["overhead_us_per_hop"])
    path = write_result("graph_overhead", {"frames": args.frames, "frame_shape": [720, 1280, 3],
                                           "operators": 2 + RELAYS, "loop_us_per_frame": loop_s * 1e6,
                                           "schedulers": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
