"""surgseg: real-time surgical video segmentation on a Holoscan graph (streaming SAM 2 prior + tiny refiner).

One sub-command module per area registers itself; training commands import the training package only when run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from surgseg.engines.errors import InputError

log = logging.getLogger("surgseg")

# Each module defines `register(subparsers)`; handlers import their heavy dependencies lazily.
COMMAND_MODULES = (
    "surgseg.app.cmd_demo",
    "surgseg.app.cmd_graph",
    "surgseg.app.cmd_record",
    "surgseg.training.cmd_data",
    "surgseg.training.cmd_priors",
    "surgseg.training.cmd_train",
    "surgseg.training.cmd_export",
    "surgseg.training.cmd_export_sam2",
    "surgseg.app.cmd_weights",
    "surgseg.app.cmd_sweep",
    "surgseg.app.cmd_qa",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surgseg", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
