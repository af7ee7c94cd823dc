"""`surgseg demo`: synthetic clip → trained refiner → replay graph → overlay.mp4, metrics, latency, contact sheet."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole pipeline on a synthetic clip, offline (a few CPU minutes)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    parser.add_argument("--frames", type=int, default=40, help="frames in the demo clip")
    parser.add_argument("--sam2-checkpoint", type=Path, default=None,
                        help="official SAM 2.1 tiny checkpoint (default: the `surgseg weights` cache, else random weights)")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="wall-clock limit on refiner training (default: none, all epochs: a reproducible refiner)")
    parser.add_argument("--graph", default="replay", help="shipped graph to run (default replay)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override of the graph, e.g. operators.ema.alpha=0.5 (repeatable)")
    parser.add_argument("--no-report", action="store_true", help="no out/report.html")
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from surgseg.app.demo import DemoConfig, run_demo
    from surgseg.app.runtime import block_stop_signals

    block_stop_signals()
    config = DemoConfig(out=args.out, clip_frames=args.frames, sam2_checkpoint=args.sam2_checkpoint,
                        train_minutes=args.train_minutes, graph=args.graph, extra_overrides=tuple(args.overrides),
                        report=not args.no_report)
    result = run_demo(config)
    print_summary(result)
    return 0


def print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.random_sam2:
        console.print("[bold yellow]SAM 2 ran with RANDOM weights[/]: no checkpoint was found, so its priors carry no "
                      "information and the refiner segmented from the image alone. For real priors: "
                      "`surgseg weights download sam2.1_hiera_tiny` (needs a network) or "
                      "`surgseg demo --sam2-checkpoint PATH/sam2.1_hiera_tiny.pt`.")
    table = Table(title="surgseg demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    for step, seconds in result.timings_s.items():
        table.add_row(f"time: {step}", f"{seconds:.1f} s")
    summary = result.train_summary
    if summary.get("best_val_mean_dice") is not None:
        table.add_row("refiner val Dice (simulated priors)", f"{summary['best_val_mean_dice']:.3f}")
    metrics = result.metrics
    for key in ("mean_dice", "mean_iou", "mean_boundary_f"):
        if key in metrics:
            table.add_row(f"clip {key.removeprefix('mean_')}", f"{metrics[key]:.3f}")
    for key, value in _latency_rows(result.latency):
        table.add_row(key, value)
    table.add_row("frames in → video frames out", f"{result.frames_in} → {result.frames_out}")
    for name, path in result.outputs.items():
        table.add_row(name, str(path))
    console.print(table)


def _latency_rows(latency: dict) -> list[tuple[str, str]]:
    """End-to-end latency and throughput rows, from whatever keys LatencyReport wrote."""
    rows = []
    end_to_end = latency.get("end_to_end_ms") or latency.get("end_to_end") or {}
    for quantile in ("p50", "p95", "max"):
        if quantile in end_to_end:
            rows.append((f"end-to-end latency {quantile}", f"{end_to_end[quantile]:.0f} ms"))
    fps = latency.get("fps") or latency.get("throughput_fps")
    if fps:
        rows.append(("throughput", f"{fps:.2f} fps"))
    return rows
