"""`surgseg train --config training.yaml`: train a refiner (see training/training.example.yaml)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a refiner on (image, prior, mask) triplets")
    parser.add_argument("--config", type=Path, required=True, help="training YAML (see training.example.yaml)")
    parser.add_argument("--out-dir", help="override out_dir")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.training.train import load_config, train

    config = load_config(args.config)
    if args.out_dir:
        config.out_dir = args.out_dir
    if args.resume:
        config.resume = True
    summary = train(config)
    if summary is None:  # a DDP rank other than 0: rank 0 reports
        return 0
    best = summary["best_val"]
    table = Table(title=f"refiner training → {summary['out_dir']}")
    table.add_column("validation")
    for name in ("mean_dice", "mean_iou", "mean_boundary_f"):
        table.add_column(name.removeprefix("mean_"))
    for who in ("prior", "refined"):
        table.add_row(who, *(f"{best[who][name]:.3f}" for name in ("mean_dice", "mean_iou", "mean_boundary_f")))
    Console().print(table)
    Console().print(f"{summary['epochs']} epochs, {summary['steps']} steps, {summary['elapsed_s']} s; "
                    f"{summary['parameters'] / 1e6:.3f} M parameters; best checkpoint {summary['checkpoint']}")
    return 0
