"""StreamSource and StreamSink on the loopback interface: a sender process streams a synthetic clip, the source
decodes it live, reconnects when the sender is killed and restarted, and ends cleanly when it is gone for good."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from graph_helpers import cli_env
from test_sources import run

from surgseg.app.graph_spec import validate
from surgseg.engines.errors import InputError
from surgseg.engines.video.stream import StreamInputConfig, StreamReader, ffmpeg_protocols

SENDER = Path(__file__).with_name("stream_sender.py")
RED, BLUE = (200, 40, 40), (40, 40, 200)


def free_port(pairs: bool = False) -> int:
    """A UDP port nobody uses on 127.0.0.1 (even, with the one above it free for RTP's RTCP, when `pairs`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not pairs:
            return port
        if port % 2 == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as above:
                try:
                    above.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue


def start_sender(url: str, frames: int, color: tuple[int, int, int]) -> subprocess.Popen[str]:
    """A sender process; returns once its first frame is out (at most 20 s)."""
    sender = subprocess.Popen([sys.executable, str(SENDER), url, "--frames", str(frames), "--size", "160", "120",
                               "--color", *map(str, color)], stdout=subprocess.PIPE, text=True, env=cli_env())
    assert sender.stdout.readline().strip() == "sending"
    return sender


def stream_graph(url: str, **source: Any) -> dict[str, Any]:
    settings = {"read_timeout_s": 0.5, "open_timeout_s": 1.0, "give_up_s": 2.0, **source}
    return {"source": {"type": "StreamSource", "url": url, **settings}, "sink": {"type": "Collector"}}


def near(frame: np.ndarray, color: tuple[int, int, int]) -> bool:
    """The top half of a sent frame (one flat colour) arrived within H.264's error."""
    return bool(np.abs(frame[: frame.shape[0] // 2].reshape(-1, 3).mean(0) - color).max() < 12)


@pytest.mark.parametrize("scheme", ["udp", "rtp", "srt"])
def test_stream_from_a_sender_process_arrives_as_rgb_frames(scheme: str) -> None:
    if scheme not in ffmpeg_protocols():
        pytest.skip(f"PyAV's FFmpeg has no {scheme} protocol (PyPI wheels are built without libsrt)")
    port = free_port(pairs=scheme == "rtp")
    listen = "?mode=listener" if scheme == "srt" else ""
    sender = start_sender(f"{scheme}://127.0.0.1:{port}", 500, RED)
    try:
        app = run(stream_graph(f"{scheme}://127.0.0.1:{port}{listen}"), [["source", "sink"]], frame_limit=10)
    finally:
        sender.kill()
        sender.wait()
    frames = [m["frame"] for m in app.ops["sink"].messages]
    assert len(frames) == 10 and frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8
    assert all(near(frame, RED) for frame in frames)


def test_sender_killed_and_restarted_mid_stream_reconnects_counts_the_gap_and_ends_cleanly() -> None:
    url = f"udp://127.0.0.1:{free_port()}"
    first = start_sender(url, 1000, RED)
    restart = threading.Thread(target=kill_then_restart, args=(first, url), daemon=True)
    restart.start()
    app = run(stream_graph(url), [["source", "sink"]])
    restart.join()
    source, messages = app.ops["source"], app.ops["sink"].messages
    colors = [RED if near(m["frame"], RED) else BLUE if near(m["frame"], BLUE) else None for m in messages]
    back = colors.index(BLUE)
    assert RED in colors[:back] and set(colors[back:]) == {BLUE}  # both senders seen, in order, nothing else
    assert len(source.reader.gaps_s) == 1 and source.reader.gaps_s[0] > 0.5  # the sender was gone ≥ 0.5 s
    assert messages[back]["meta"]["stream_reconnects"] == 1
    assert messages[back]["meta"]["stream_gap_ms"] == pytest.approx(source.reader.gaps_s[0] * 1000)
    assert source.reader.given_up and source.emitted + source.dropped == source.reader.frames


def kill_then_restart(first: subprocess.Popen[str], url: str) -> None:
    time.sleep(3.0)
    first.kill()
    first.wait()
    time.sleep(0.5)
    start_sender(url, 50, BLUE).wait()


@pytest.mark.parametrize(("url", "message"), [
    ("http://camera/stream", r"operators\.source\.url: http://camera/stream: unsupported scheme 'http://'"),
    ("udp://127.0.0.1", r"operators\.source\.url: udp://127\.0\.0\.1: no port"),
    ("udp://127.0.0.1:99999", r"operators\.source\.url: udp://127\.0\.0\.1:99999: the port is not a number"),
    ("rtsp:///stream", r"operators\.source\.url: rtsp:///stream: no host"),
    ("camera.local:5000", r"operators\.source\.url: 'camera\.local:5000' is not a stream URL"),
])
def test_bad_stream_url_is_refused_in_one_line_naming_it(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate({"operators": stream_graph(url), "flows": [["source", "sink"]], "plugins": ["io_plugins"]},
                 Path("test.yaml"))


def test_no_stream_at_start_is_an_input_error_naming_the_url() -> None:
    url = f"udp://127.0.0.1:{free_port()}"
    reader = StreamReader(StreamInputConfig(url=url, open_timeout_s=0.3, give_up_s=0.6))
    with pytest.raises(InputError, match=rf"{url}: no stream within 0\.6 s"):
        reader.open()
    assert reader.attempts >= 1


def test_stream_sink_sends_the_overlay_to_a_reader() -> None:
    url = f"udp://127.0.0.1:{free_port()}"
    reader = StreamReader(StreamInputConfig(url=url, read_timeout_s=0.5, give_up_s=5.0))
    received: list[np.ndarray] = []

    def receive() -> None:
        reader.open()
        reader.config.give_up_s = 1.0  # connected: end soon after the sender stops
        while (frame := reader.read()) is not None:
            received.append(frame)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    app = run({"source": {"type": "SyntheticSource", "size": [160, 128], "frames": 45, "realtime": True,
                          "fps": 30.0},
               "sink": {"type": "StreamSink", "url": url, "fps": 30.0, "keyframe_interval_s": 0.2}},
              [["source", "sink"]])
    receiver.join(timeout=10)
    assert app.ops["sink"].writer.frames_sent == 45
    assert len(received) >= 10 and received[0].shape == (128, 160, 3)
