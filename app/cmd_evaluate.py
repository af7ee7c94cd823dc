"""`surgseg evaluate MODEL --index INDEX`: a trained refiner on any labelled set → evaluation.json + report.html."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a refiner (checkpoint or exported artefact) on a dataset index: prior vs refined")
    parser.add_argument("model", type=Path, help="checkpoint (.pt) or exported artefact (folder, refiner.json/.onnx)")
    parser.add_argument("--index", type=Path, required=True, help="dataset index (dataset.jsonl)")
    parser.add_argument("--split", default=None, help="rows of this split only (default: every row)")
    parser.add_argument("--prior", default="simulate", metavar="simulate|none|DIR",
                        help="simulated SAM 2-like priors (fixed seed), no prior, or a `surgseg priors` folder")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the simulated priors (default 1234)")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="output folder (default runs/evaluate)")
    parser.add_argument("--worst", type=int, default=8, help="worst frames shown in the report (default 8)")
    parser.add_argument("--backend", default="auto", help="artefact backend: auto | torch | onnxruntime | tensorrt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-fov-crop", action="store_true",
                        help="score whole frames (default: cut to the detected field of view, as training does)")
    parser.add_argument("--no-report", action="store_true", help="write evaluation.json only")
    parser.set_defaults(handler=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from surgseg.app.report.evaluate import write_evaluate_report
    from surgseg.engines.atomic import atomic_write_json
    from surgseg.training.evaluate import EvaluateConfig, evaluate_refiner

    torch.set_num_threads(args.threads)
    config = EvaluateConfig(model=args.model, index=args.index, split=args.split, prior=args.prior, seed=args.seed,
                            worst=args.worst, backend=args.backend, threads=args.threads, fov_crop=not args.no_fov_crop)
    evaluation = evaluate_refiner(config)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "evaluation.json", evaluation.result)
    outputs = [args.out / "evaluation.json"]
    if not args.no_report:
        outputs.append(write_evaluate_report(args.out / "report.html", evaluation.result, evaluation.worst))
    scores = evaluation.result["scores"]
    table = Table(title=f"surgseg evaluate: {evaluation.result['data']['frames']} frames → {args.out}")
    for column in ("video", "frames", "prior Dice", "refined Dice", "prior BF", "refined BF"):
        table.add_column(column, justify="right" if column != "video" else "left")
    prior = scores["prior"]
    groups = [(name, s, prior["sequences"][name] if prior else None) for name, s in scores["refined"]["sequences"].items()]
    for name, refined, before in [*groups, ("overall", scores["refined"], prior)]:
        table.add_row(name, str(refined["frames"]), _fmt(before, "mean_dice"), _fmt(refined, "mean_dice"),
                      _fmt(before, "mean_boundary_f"), _fmt(refined, "mean_boundary_f"))
    Console().print(table)
    for path in outputs:
        log.info("wrote %s", path)
    return 0


def _fmt(scores: dict | None, key: str) -> str:
    return "–" if scores is None else f"{scores[key]:.3f}"
