"""Official SAM 2 / 2.1 checkpoints: names, URLs, a cache folder, resumable atomic download, SHA-256 checks.

Sizes are approximate (for display only). Meta publishes no checksums for these files and none is recorded here:
`sha256=None` means "unknown", so a download is only checked against a checksum the caller passes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

BASE_21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
BASE_20 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
CACHE_ENV = "SURGSEG_WEIGHTS_DIR"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    name: str
    url: str
    approx_mib: int
    sha256: str | None = None  # None: unknown

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


CHECKPOINTS = {
    c.name: c
    for c in (
        Checkpoint("sam2.1_hiera_tiny", f"{BASE_21}/sam2.1_hiera_tiny.pt", 149),
        Checkpoint("sam2.1_hiera_small", f"{BASE_21}/sam2.1_hiera_small.pt", 176),
        Checkpoint("sam2.1_hiera_base_plus", f"{BASE_21}/sam2.1_hiera_base_plus.pt", 309),
        Checkpoint("sam2.1_hiera_large", f"{BASE_21}/sam2.1_hiera_large.pt", 857),
        Checkpoint("sam2_hiera_tiny", f"{BASE_20}/sam2_hiera_tiny.pt", 149),
        Checkpoint("sam2_hiera_small", f"{BASE_20}/sam2_hiera_small.pt", 176),
        Checkpoint("sam2_hiera_base_plus", f"{BASE_20}/sam2_hiera_base_plus.pt", 309),
        Checkpoint("sam2_hiera_large", f"{BASE_20}/sam2_hiera_large.pt", 857),
    )
}


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DownloadError(RuntimeError):
    """The file could not be fetched (offline, HTTP error, truncated)."""


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where checkpoints live: `override`, else $SURGSEG_WEIGHTS_DIR, else ~/.cache/surgseg/sam2."""
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(CACHE_ENV, "~/.cache/surgseg/sam2")).expanduser()


def lookup(name: str) -> Checkpoint:
    """The checkpoint record for a model name (short names mean SAM 2.1)."""
    full = f"sam2.1_hiera_{name}" if f"sam2.1_hiera_{name}" in CHECKPOINTS else name
    if full not in CHECKPOINTS:
        raise InputError(f"weights: unknown checkpoint {name!r} (known: {', '.join(CHECKPOINTS)})")
    return CHECKPOINTS[full]


def checkpoint_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / lookup(name).filename


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | os.PathLike, sha256: str | None) -> str:
    """SHA-256 of `path`; ChecksumError when `sha256` is given and differs; InputError when missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found (run `surgseg weights download` or put the file there)")
    actual = file_sha256(path)
    if sha256 is not None and actual != sha256.lower():
        raise ChecksumError(f"{path}: SHA-256 {actual} does not match the expected {sha256.lower()}")
    return actual


def download(name: str, cache: str | os.PathLike | None = None, url: str | None = None,
             sha256: str | None = None, retries: int = 3, timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch a checkpoint into the cache: resumes a kept `.part`, checks the SHA-256 (given or known), then renames.
    A checksum mismatch deletes the partial file; network failures keep it for the next resume."""
    record = lookup(name)
    target = cache_dir(cache) / record.filename
    expected = sha256 or record.sha256
    if target.is_file():
        verify(target, expected)
        log.info("%s: already in the cache", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    source = url or record.url
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _fetch(source, part, timeout, progress)
            break
        except (urllib.error.URLError, OSError, DownloadError) as exc:
            last_error = exc
            log.warning("download attempt %d/%d of %s failed: %s", attempt, retries, source, exc)
    else:
        raise DownloadError(
            f"cannot download {source} ({last_error}); offline? fetch it elsewhere and put it at {target}"
        )
    try:
        verify(part, expected)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the missing bytes of `url` to `part` (HTTP Range); restart when the server ignores the range."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs only
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: the part file is already complete
            return
        raise DownloadError(f"HTTP {exc.code} for {url}") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
        ) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                fh.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: got {part.stat().st_size} of {total} bytes")
