"""`surgseg priors`: offline SAM 2 (image mode, saved prompts) or simulated priors for every indexed image."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgseg.engines.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("priors", help="per-image prior logits (.npy) for refiner training")
    parser.add_argument("--index", type=Path, default=Path("data/dataset.jsonl"), help="dataset index (JSONL)")
    parser.add_argument("--prompts", type=Path, help="folder of <stem>.prompts.json (from `surgseg data prompts`)")
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. sam2_prior/")
    parser.add_argument("--source", choices=("sam2", "simulate"), default="sam2")
    parser.add_argument("--model", default="sam2.1_hiera_tiny", help="SAM 2 model name (sam2 source)")
    parser.add_argument("--checkpoint", type=Path, help="official .pt checkpoint (default: random init, for tests)")
    parser.add_argument("--size", type=int, default=512, help="SAM 2 input size (256, 384, 512, 1024)")
    parser.add_argument("--shard", default="0/1", help="i/n: process rows i, i+n, ... (parallel workers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-classes", type=int, help="default: classes.yaml beside the index")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"), default="torch",
                        help="run SAM 2's modules in torch or from an export (--exported)")
    parser.add_argument("--precision", default="fp32", help="fp32 | int8 (onnxruntime) | fp16 (tensorrt)")
    parser.add_argument("--exported", type=Path, help="folder from `surgseg export-sam2` (same model and --size)")
    parser.set_defaults(handler=run_priors)


def run_priors(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.training.priors import PriorsConfig, generate_priors

    config = PriorsConfig(index=args.index, out=args.out, prompts=args.prompts, source=args.source,
                          model=args.model, checkpoint=args.checkpoint, size=args.size, shard=_shard(args.shard),
                          seed=args.seed, device=args.device, num_classes=args.num_classes, backend=args.backend,
                          precision=args.precision, exported=args.exported)
    summary = generate_priors(config)
    table = Table(title=f"priors ({summary['source']}) → {args.out}")
    table.add_column("item")
    table.add_column("value")
    for key, value in summary["counts"].items():
        table.add_row(key, str(value))
    for class_id, cov in summary["class_coverage"].items():
        table.add_row(f"class {class_id}: frames gt / prior / mean Dice",
                      f"{cov['gt_frames']} / {cov['prior_frames']} / {cov['mean_dice_vs_gt']}")
    table.add_row("model", str(summary["model"]))
    table.add_row("backend", str(summary["backend"]))
    table.add_row("checkpoint sha256", str(summary["checkpoint_sha256"]))
    Console().print(table)
    return 1 if summary["counts"]["failed"] else 0


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard: {text!r} is not like 0/4") from None
    return i, n
