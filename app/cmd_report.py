"""`surgseg report RUN_DIR`: a self-contained report.html of a finished run (video, timeline, worst frames, graph)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write RUN_DIR/report.html from a run's video, metrics, latency, QA")
    parser.add_argument("run_dir", type=Path, help="the folder the run's video and JSON files went to")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from surgseg.app.report import write_report

    log.info("wrote %s", write_report(args.run_dir))
    return 0
