"""Network capture on the loopback interface: latency the stream hop adds, and reconnection after a sender restart.

A sender process (tests/video/stream_sender.py, PyAV/libx264 `ultrafast`+`zerolatency`, MPEG-TS over UDP) stamps
each frame's send time into its pixels; `StreamReader` (the StreamSource's engine, low-latency options) decodes it
here and the latency of a frame is its arrival time minus its stamp: encode + mux + UDP + demux + decode. The same
frames encoded and decoded in one process with the same codec settings (no container, no socket) give the codec's
share; the difference is what the network path adds. Then the sender is killed and restarted `--restarts` times:
reconnect time = first frame decoded after the restart minus the new sender's first frame out; the gap is what the
source counts (last frame before the drop → first frame after).

    .venv/bin/python benchmarks/capture_stream.py            # → benchmarks/results/capture_stream.json
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "video")]

from benchmarks.common import write_result  # noqa: E402
from stream_sender import read_stamp, stamp  # noqa: E402

from surgseg.engines.video.stream import StreamInputConfig, StreamReader  # noqa: E402
from surgseg.engines.video.stream_writer import StreamOutputConfig, h264_options  # noqa: E402

log = logging.getLogger("capture_stream")
SENDER = ROOT / "tests" / "video" / "stream_sender.py"
KEYFRAME_INTERVAL_S = 0.5  # the sender's


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sender(url: str, frames: int, fps: float, size: tuple[int, int]) -> tuple[subprocess.Popen[str], int]:
    """A stamping sender process and the monotonic time (ns) its first frame went out."""
    sender = subprocess.Popen([sys.executable, str(SENDER), url, "--frames", str(frames), "--fps", str(fps),
                               "--size", str(size[0]), str(size[1]), "--stamp"], stdout=subprocess.PIPE, text=True)
    assert sender.stdout.readline().strip() == "sending"
    return sender, time.monotonic_ns()


def percentiles(values_ms: list[float]) -> dict[str, float]:
    array = np.asarray(values_ms)
    return {"p50_ms": round(float(np.percentile(array, 50)), 2), "p99_ms": round(float(np.percentile(array, 99)), 2),
            "mean_ms": round(float(array.mean()), 2), "frames": int(array.size)}


def codec_only(frames: int, fps: float, size: tuple[int, int]) -> list[float]:
    """Per-frame ms from stamping to decoded, encoding and decoding in this process (no container, no socket)."""
    import av

    config = StreamOutputConfig(url="udp://127.0.0.1:9", fps=fps, keyframe_interval_s=KEYFRAME_INTERVAL_S)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
    encoder.time_base, encoder.bit_rate = 1 / Fraction(fps).limit_denominator(1001), config.bitrate_kbps * 1000
    encoder.options = h264_options(config)
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_type = "SLICE"
    latencies = []
    for index in range(frames):
        picture = np.full((size[1], size[0], 3), 120, np.uint8)
        stamp(picture, time.monotonic_ns())
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                rgb = decoded.to_ndarray(format="rgb24")
                latencies.append((time.monotonic_ns() - read_stamp(rgb)) / 1e6)
        time.sleep(1 / fps)  # the same pace as the stream, so both run on equally idle cores
    return latencies


def streamed(frames: int, fps: float, size: tuple[int, int]) -> list[float]:
    """Per-frame ms from the sender's stamp to the frame decoded by StreamReader, over udp://127.0.0.1."""
    url = f"udp://127.0.0.1:{free_port()}"
    reader = StreamReader(StreamInputConfig(url=url, read_timeout_s=1.0, give_up_s=2.0))
    opened = threading.Thread(target=reader.open)
    opened.start()
    sender, _ = start_sender(url, frames, fps, size)
    opened.join()
    latencies = []
    while (frame := reader.read()) is not None:
        latencies.append((time.monotonic_ns() - read_stamp(frame)) / 1e6)
    sender.wait()
    return latencies


def restarts(count: int, fps: float, size: tuple[int, int], up_s: float, down_s: float) -> list[dict[str, Any]]:
    """Kill and restart the sender `count` times; per restart: reconnect time, the counted gap, frames missed."""
    url = f"udp://127.0.0.1:{free_port()}"
    reader = StreamReader(StreamInputConfig(url=url, read_timeout_s=0.5, open_timeout_s=1.0, give_up_s=3.0))
    first_out: list[int] = []

    def sender_life() -> None:
        for round_ in range(count + 1):
            sender, started_ns = start_sender(url, 100_000, fps, size)
            first_out.append(started_ns)
            time.sleep(up_s)
            sender.kill()
            sender.wait()
            if round_ < count:
                time.sleep(down_s)

    opened = threading.Thread(target=reader.open)
    opened.start()
    life = threading.Thread(target=sender_life)
    life.start()
    opened.join()
    first_after: list[tuple[int, int]] = []  # (arrival ns, stamp ns) of the first frame after each gap
    while (frame := reader.read()) is not None:
        if len(reader.gaps_s) > len(first_after):
            first_after.append((time.monotonic_ns(), read_stamp(frame)))
    life.join()
    rows = []
    for i, (arrived, stamped) in enumerate(first_after):
        out = first_out[i + 1]
        rows.append({"reconnect_s": round((arrived - out) / 1e9, 3), "gap_s": round(reader.gaps_s[i], 3),
                     "frames_missed_after_restart": max(0, round((stamped - out) / 1e9 * fps))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    latency = {}
    for size in ((320, 240), (1280, 720)):
        codec = percentiles(codec_only(args.frames, args.fps, size))
        stream = percentiles(streamed(args.frames, args.fps, size))
        added = {k: round(stream[k] - codec[k], 2) for k in ("p50_ms", "p99_ms")}
        latency[f"{size[0]}x{size[1]}"] = {"codec_only": codec, "udp_stream": stream, "added_by_network_path": added}
        print(f"{size[0]}x{size[1]}: send→decoded p50 {stream['p50_ms']} ms p99 {stream['p99_ms']} ms; codec alone "
              f"p50 {codec['p50_ms']} p99 {codec['p99_ms']}; the network path adds p50 {added['p50_ms']} ms, "
              f"p99 {added['p99_ms']} ms ({stream['frames']}/{args.frames} frames arrived)")
    rows = restarts(args.restarts, args.fps, (320, 240), up_s=2.0, down_s=0.5)
    for row in rows:
        print(f"restart: first frame {row['reconnect_s']} s after the new sender's first packet "
              f"({row['frames_missed_after_restart']} frames missed waiting for a keyframe), "
              f"gap counted {row['gap_s']} s")
    write_result("capture_stream", {
        "setup": {"transport": "MPEG-TS over udp://127.0.0.1", "codec": "libx264 ultrafast zerolatency, bf=0",
                  "keyframe_interval_s": KEYFRAME_INTERVAL_S, "fps": args.fps, "frames": args.frames,
                  "reader": "StreamReader: fpsprobesize=0, fflags=noparse (whole frames per PES), probesize 64 KiB, "
                            "decoder flags=low_delay, slice threads",
                  "latency": "arrival (monotonic) minus the send time stamped into the frame's pixels"},
        "latency": latency,
        "restarts": {"runs": rows, "sender_down_s": 0.5, "read_timeout_s": 0.5,
                     "reconnect_s_max": max((r["reconnect_s"] for r in rows), default=None)},
    })


if __name__ == "__main__":
    main()
