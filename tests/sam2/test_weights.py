"""Checkpoint download against a loopback HTTP server: good file, resume, corrupted file, offline message."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator

import pytest

from surgseg.app.cli import main
from surgseg.engines.sam2.weights import CHECKPOINTS, ChecksumError, DownloadError, download, verify

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves /good (PAYLOAD) and /corrupt (PAYLOAD with one byte flipped), honouring `Range: bytes=N-`."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        bodies = {"/good": PAYLOAD, "/corrupt": PAYLOAD[:-1] + b"\x00"}
        body = bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        if header:
            start = int(header.split("=")[1].rstrip("-"))
        type(self).requests.append(f"{self.path} {start}")
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_good_file_lands_atomically_with_checksum(server, tmp_path) -> None:
    path = download("tiny", cache=tmp_path, url=f"{server}/good", sha256=GOOD_SHA, progress=False)
    assert path == tmp_path / "sam2.1_hiera_tiny.pt"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sam2.1_hiera_tiny.pt"]


def test_download_resumes_a_partial_file(server, tmp_path) -> None:
    (tmp_path / "sam2.1_hiera_tiny.pt.part").write_bytes(PAYLOAD[:300_000])
    path = download("tiny", cache=tmp_path, url=f"{server}/good", sha256=GOOD_SHA, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert _RangeHandler.requests == ["/good 300000"]


def test_corrupted_download_raises_checksum_error_and_leaves_no_file(server, tmp_path) -> None:
    with pytest.raises(ChecksumError, match="does not match"):
        download("tiny", cache=tmp_path, url=f"{server}/corrupt", sha256=GOOD_SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_says_where_to_put_the_file(tmp_path) -> None:
    with pytest.raises(DownloadError, match=str(tmp_path / "sam2.1_hiera_small.pt")):
        download("small", cache=tmp_path, url="http://127.0.0.1:9/x", retries=1, timeout=2, progress=False)


def test_verify_cli_reports_mismatch_with_exit_1(tmp_path) -> None:
    file = tmp_path / "sam2.1_hiera_tiny.pt"
    file.write_bytes(PAYLOAD)
    assert verify(file, GOOD_SHA) == GOOD_SHA
    assert main(["weights", "verify", "tiny", "--cache", str(tmp_path), "--sha256", GOOD_SHA]) == 0
    assert main(["weights", "verify", "tiny", "--cache", str(tmp_path), "--sha256", "0" * 64]) == 1
    assert main(["weights", "verify", "large", "--cache", str(tmp_path)]) == 2


def test_registry_lists_the_four_sam21_checkpoints() -> None:
    names = [n for n in CHECKPOINTS if n.startswith("sam2.1_")]
    assert names == ["sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"]
    assert main(["weights", "list", "--cache", "/nonexistent"]) == 0
