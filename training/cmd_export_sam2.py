"""`surgseg export-sam2`: SAM 2's streaming modules → ONNX (+ int8) + sam2_export.json, for the onnxruntime and
tensorrt backends of the streaming engine (`runtime.backend`, `runtime.exported`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export-sam2", help="export SAM 2's streaming modules (ONNX Runtime, TensorRT)")
    parser.add_argument("--model", default="tiny", help="SAM 2 model: tiny ... large (SAM 2.1) or a full name")
    parser.add_argument("--image-size", type=int, default=256, help="fixed input side (multiple of 32, >= 128)")
    parser.add_argument("--checkpoint", type=Path, help="official .pt checkpoint (default: random weights)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (no --checkpoint)")
    parser.add_argument("--postprocessing", action="store_true", help="SAM 2's multimask fallback and binarised "
                        "click memories (must match the graph's model.postprocessing)")
    parser.add_argument("--out", type=Path, required=True, help="export folder, e.g. models/sam2_tiny_256/")
    parser.add_argument("--int8", action="store_true", help="also write int8 encoder and memory attention now")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max |difference| ONNX Runtime vs torch")
    parser.set_defaults(handler=run_export_sam2)


def run_export_sam2(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.engines.sam2.config import ModelConfig
    from surgseg.engines.sam2.export import ExportCheckError, ExportConfig, export_sam2

    model = ModelConfig(name=args.model, checkpoint=str(args.checkpoint) if args.checkpoint else None,
                        image_size=args.image_size, random_weights_seed=args.seed,
                        postprocessing=args.postprocessing)
    try:
        manifest, diffs = export_sam2(ExportConfig(model=model, out=args.out, int8=args.int8, opset=args.opset,
                                                   tolerance=args.tolerance))
    except ExportCheckError as exc:
        log.error("%s", exc)
        return 1
    table = Table(title=f"SAM 2 export → {manifest.path}")
    table.add_column("module")
    table.add_column("file")
    table.add_column("max |Δ| vs torch")
    for part, entry in manifest.files.items():
        table.add_row(part, entry["name"], f"{diffs[part]:.1e}" if part in diffs else "int8")
    table.add_row("model", f"{manifest.model} @ {manifest.image_size} px", "")
    table.add_row("weights", manifest.weights, "")
    Console().print(table)
    return 0
