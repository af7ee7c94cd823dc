"""`surgseg weights list|download|verify`: the official SAM 2 / 2.1 checkpoints in a local cache."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list, download and verify SAM 2 checkpoints")
    actions = parser.add_subparsers(dest="weights_action", required=True, metavar="ACTION")
    for action, help_text in (("list", "known checkpoints and whether they are cached"),
                              ("download", "download a checkpoint into the cache (resumable, checksummed)"),
                              ("verify", "compute a cached file's SHA-256 and compare with the expected one")):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("--cache", type=Path,
                         help="cache folder (default $SURGSEG_WEIGHTS_DIR or ~/.cache/surgseg/sam2)")
        if action != "list":
            sub.add_argument("name", help="checkpoint name, e.g. sam2.1_hiera_tiny (or tiny)")
            sub.add_argument("--sha256", help="expected SHA-256 (overrides the known one)")
        if action == "download":
            sub.add_argument("--url", help="download from this URL instead of the official one (mirror)")
            sub.add_argument("--retries", type=int, default=3)
        if action == "verify":
            sub.add_argument("--path", type=Path, help="verify this file instead of the cached one")
        sub.set_defaults(handler=HANDLERS[action])


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from surgseg.engines.sam2.weights import CHECKPOINTS, cache_dir

    folder = cache_dir(args.cache)
    table = Table(title=f"SAM 2 checkpoints (cache: {folder})")
    for column in ("name", "size (approx.)", "SHA-256", "cached", "URL"):
        table.add_column(column, overflow="fold")
    for record in CHECKPOINTS.values():
        cached = (folder / record.filename).is_file()
        table.add_row(record.name, f"{record.approx_mib} MiB", record.sha256 or "unknown",
                      "yes" if cached else "no", record.url)
    Console().print(table)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from surgseg.engines.sam2.weights import ChecksumError, DownloadError, download, file_sha256, lookup

    try:
        path = download(args.name, cache=args.cache, url=args.url, sha256=args.sha256, retries=args.retries)
    except (ChecksumError, DownloadError) as exc:
        log.error("%s", exc)
        return 1
    expected = args.sha256 or lookup(args.name).sha256
    note = "verified" if expected else "no known checksum: recorded only"
    log.info("%s  sha256=%s (%s)", path, file_sha256(path), note)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from surgseg.engines.sam2.weights import ChecksumError, checkpoint_path, lookup, verify

    path = args.path or checkpoint_path(args.name, args.cache)
    expected = args.sha256 or lookup(args.name).sha256
    try:
        actual = verify(path, expected)
    except ChecksumError as exc:
        log.error("%s", exc)
        return 1
    log.info("%s  sha256=%s (%s)", path, actual, "matches" if expected else "unknown expected checksum")
    return 0


HANDLERS = {"list": run_list, "download": run_download, "verify": run_verify}
