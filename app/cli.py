"""surgseg: real-time surgical video segmentation on a Holoscan graph (streaming SAM 2 prior + tiny refiner).

One sub-command module per area registers itself; training commands import the training package only when run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from surgseg.engines.errors import InputError

log = logging.getLogger("surgseg")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LIBRARIES = ("PIL",)
"""Libraries that log an error before raising the exception surgseg turns into its own one-line message."""

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
    "surgseg.app.cmd_evaluate",
    "surgseg.app.cmd_report",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one log line (and exit 2) like every other bad input."""

    def error(self, message: str) -> NoReturn:
        log.error("%s: %s (see %s --help)", self.prog, message, self.prog)
        self.exit(2)


def configure_logging(verbose: bool) -> None:
    """One log format on stderr; Holoscan's and the libraries' own error reports only with -v (surgseg reports the
    failure they describe in one line of its own). Call before any command imports holoscan."""
    from surgseg.operators.holoscan_loader import configure_logging as configure_holoscan

    configure_holoscan(verbose)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="surgseg", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, Holoscan's and GXF's included")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging(verbose=False)  # argparse's errors are log lines too
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        configure_logging(verbose=True)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
