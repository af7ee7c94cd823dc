"""`surgseg qa`: the difficult-frames regression check against a stored baseline."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("qa", help="Dice per difficulty tag vs a baseline; exit 1 when a tag regresses")
    parser.add_argument("--baseline", type=Path, default=Path("qa/baseline.json"))
    parser.add_argument("--update", action="store_true", help="rewrite the baseline with this run (on purpose)")
    parser.add_argument("--graph", default="replay_fast", help="graph YAML path or shipped name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic clips (one per seed)")
    parser.add_argument("--frames", type=int, default=48, help="frames per synthetic clip")
    parser.add_argument("--real", type=Path, default=None, help="dataset.jsonl of hard real clips (test split)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest allowed Dice drop per tag")
    parser.add_argument("--out", type=Path, default=Path("out/qa"))
    parser.set_defaults(handler=qa_command)


def qa_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.app.cmd_graph import resolve_graph_path
    from surgseg.app.qa import QAConfig, compare, read_baseline, refiner_digest, tag_scores, write_baseline

    config = QAConfig(graph=resolve_graph_path(args.graph), out=args.out, seeds=tuple(args.seeds), frames=args.frames,
                      overrides=tuple(args.overrides), real_index=args.real)
    baseline = None if args.update else read_baseline(args.baseline)
    if baseline is not None and baseline.get("refiner_sha256") not in (None, refiner_digest(config)):
        log.warning("%s was made with another refiner model (sha256 %s…): Dice differences include the model change",
                    args.baseline, baseline["refiner_sha256"][:12])
    current = tag_scores(config)
    table = Table(title="difficult frames: Dice per tag")
    for column in ("tag", "frames", "Dice", "baseline"):
        table.add_column(column)
    for tag, score in current.items():
        expected = baseline["tags"].get(tag, {}).get("dice") if baseline else None
        table.add_row(tag, str(score["frames"]), f"{score['dice']:.3f}", "" if expected is None else f"{expected:.3f}")
    Console().print(table)
    if args.update:
        write_baseline(args.baseline, current, config)
        log.info("baseline written: %s", args.baseline)
        return 0
    failures = compare(current, baseline, args.tolerance)
    for line in failures:
        log.error("regression: %s", line)
    return 1 if failures else 0
