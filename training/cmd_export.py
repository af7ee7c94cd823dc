"""`surgseg export`: a refiner checkpoint → ONNX + torch program + refiner.json (+ a TensorRT engine with --trt)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a trained refiner for the runtime (ONNX, TensorRT)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="refiner checkpoint, e.g. runs/x/best.pt")
    parser.add_argument("--out", type=Path, required=True, help="artefact folder, e.g. models/")
    parser.add_argument("--index", type=Path, help="dataset.jsonl: validation/calibration frames come from it")
    parser.add_argument("--val-frames", type=int, default=8, help="frames for the torch/ONNX check and the gate")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max abs logit difference allowed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trt", action="store_true", help="also build a TensorRT engine (needs a GPU)")
    parser.add_argument("--int8", action="store_true", help="INT8 engine with entropy calibration (needs --index)")
    parser.add_argument("--calib-frames", type=int, default=200)
    parser.add_argument("--min-iou", type=float, help="accuracy gate bound (default 0.99 fp16, 0.97 int8)")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.engines.refiner.trt_engine import AccuracyGateError
    from surgseg.training.export import ExportCheckError, ExportConfig, export_refiner

    config = ExportConfig(
        checkpoint=args.checkpoint, out=args.out, index=args.index, val_frames=args.val_frames, opset=args.opset,
        tolerance=args.tolerance, seed=args.seed, trt=args.trt, int8=args.int8, calib_frames=args.calib_frames,
        min_iou=args.min_iou,
    )
    try:
        report = export_refiner(config)
    except (ExportCheckError, AccuracyGateError) as exc:
        log.error("%s", exc)
        return 1
    table = Table(title=f"refiner export → {report.folder}")
    table.add_column("item")
    table.add_column("value")
    for kind, path in report.files.items():
        table.add_row(kind, str(path))
    table.add_row("check inputs", report.inputs_source)
    for name, diff in report.max_abs_diff.items():
        table.add_row(f"max |Δlogit| {name} backend vs model", f"{diff:.2e} (≤ {report.tolerance:.0e})")
    if report.engine:
        table.add_row(f"TensorRT {report.engine['precision']}", str(report.engine["path"]))
        table.add_row("gate: mean mask IoU", f"{report.engine['mean_iou']:.4f} (≥ {report.engine['min_iou']:.2f})")
    Console().print(table)
    return 0
