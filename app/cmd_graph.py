"""`surgseg run GRAPH` and `surgseg graph check|show GRAPH`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a graph YAML (a path or the name of a shipped graph)")
    _graph_arguments(run)
    run.add_argument("--frames", type=int, default=None, help="stop every source after N frames")
    run.add_argument("--no-report", action="store_true", help="no report.html beside the video the graph writes")
    run.set_defaults(handler=run_command)

    graph = subparsers.add_parser("graph", help="inspect a graph YAML without running it")
    actions = graph.add_subparsers(dest="graph_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate; exit 2 with the key at fault (missing inputs: a warning)")
    _graph_arguments(check)
    check.add_argument("--strict", action="store_true",
                       help="also exit 2 when an input file or an optional dependency is missing")
    check.set_defaults(handler=check_command)
    show = actions.add_parser("show", help="print operators, ports and flows; --png draws the graph")
    _graph_arguments(show)
    show.add_argument("--png", type=Path, default=None, help="write a picture of the graph")
    show.set_defaults(handler=show_command)


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", help="graph YAML path, or a shipped graph name such as 'replay'")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. operators.source.path=clip.mp4 (repeatable)")


def resolve_graph_path(graph: str) -> Path:
    """A path as given, else a graph shipped in surgseg.graphs."""
    path = Path(graph)
    if path.exists() or path.suffix in (".yaml", ".yml") and path.parent != Path("."):
        return path
    from surgseg.graphs import graph_path

    shipped = graph_path(graph)
    return shipped if shipped.exists() else path


def load(args: argparse.Namespace):
    from surgseg.app.graph_spec import load_graph

    return load_graph(resolve_graph_path(args.graph), args.overrides)


def run_command(args: argparse.Namespace) -> int:
    from surgseg.app.runtime import block_stop_signals

    block_stop_signals()
    spec = load(args)
    from surgseg.app.runtime import run_graph
    from surgseg.operators.base import OperatorFailure

    try:
        app = run_graph(spec, frame_limit=args.frames, handle_signals=True)
    except OperatorFailure as exc:
        log.error("%s", exc)
        return 1
    survived = [f"operator '{name}': {error}" for name, op in app.ops.items()
                for error in getattr(op, "survived_errors", [])]
    for line in survived:
        log.error("%s", line)
    if not args.no_report:
        from surgseg.app.report import report_after_run

        report_after_run(spec)
    return 1 if survived else 0


def check_command(args: argparse.Namespace) -> int:
    """Exit 2 when the graph is not valid; a valid graph whose input files or optional dependencies are not there
    yet exits 0 (2 with --strict) after one warning line per missing input, naming what makes or installs it."""
    from surgseg.app.graph_spec import load_graph, missing_inputs

    path = resolve_graph_path(args.graph)
    spec = load_graph(path, args.overrides, check_paths=False)
    missing = missing_inputs(spec)
    if not missing:
        spec = load_graph(path, args.overrides)  # and the artefacts on disk agree with the graph
        log.info("%s: valid (%d operators, %d flows)", spec.path, len(spec.operators), len(spec.flows))
        return 0
    for line in missing:
        log.warning("%s: missing input: %s", spec.path, line)
    log.warning("%s: the graph is valid, but %d input%s missing: `surgseg run` stops until %s there", spec.path,
                len(missing), " is" if len(missing) == 1 else "s are", "it is" if len(missing) == 1 else "they are")
    return 2 if args.strict else 0


def show_command(args: argparse.Namespace) -> int:
    from surgseg.app.graph_picture import describe, draw

    spec = load(args)
    from rich.console import Console

    Console().print(describe(spec))
    if args.png:
        draw(spec, args.png)
        log.info("wrote %s", args.png)
    return 0
