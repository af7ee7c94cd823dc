"""`surgseg sweep`: the latency/accuracy Pareto front over a parameter grid."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="run a graph over a grid of settings; Pareto front of latency vs Dice")
    parser.add_argument("--graph", default="replay_fast", help="graph YAML path or shipped name (default replay_fast)")
    parser.add_argument("--data", type=Path, required=True, help="dataset.jsonl (or its folder) of evaluation clips")
    parser.add_argument("--split", default="test", help="rows of this split when the index has splits (default test)")
    parser.add_argument("--grid", nargs="+", required=True, metavar="AXIS=V1,V2",
                        help="axes: size, memory_every, max_memories, mode, backend, precision, or any --set key")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("sweeps/default"))
    parser.add_argument("--shard", default=None, metavar="I/N", help="run only the I-th of N shares of the grid")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip")
    parser.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.app.cmd_graph import resolve_graph_path
    from surgseg.app.sweep import run_sweep

    rows = run_sweep(resolve_graph_path(args.graph), args.data, args.grid, args.out, args.overrides, args.split,
                     args.shard, args.frames)
    table = Table(title=f"sweep → {args.out} (★ = Pareto front)")
    for column in ("", "configuration", "Dice", "IoU", "BF", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column)
    for row in rows:
        m, lat = row["metrics"], row["latency_ms"]
        table.add_row("★" if row["pareto"] else "", row["label"], f"{m['dice']:.3f}", f"{m['iou']:.3f}",
                      f"{m['boundary_f']:.3f}", f"{lat['p50']:.1f}", f"{lat['p95']:.1f}", f"{lat['p99']:.1f}")
    Console().print(table)
    return 0
