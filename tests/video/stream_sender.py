"""A stand-in for an OR video router in the stream tests and benchmark: sends a synthetic clip to a stream URL.

Run as a script (`python stream_sender.py URL --frames N`); it prints `sending` once the first frame is out. With
`--stamp` each frame carries its send time (`time.monotonic_ns()`, comparable across processes on one machine) as
black/white blocks that survive H.264; `read_stamp` gets it back.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

STAMP_BITS = 48
BLOCK = 16
STAMP_COLUMNS = 12
"""The stamp: 48 bits of microseconds, as 16 px blocks in 4 rows of 12 at the top-left corner."""


def stamp(frame: np.ndarray, monotonic_ns: int) -> None:
    """Write `monotonic_ns` (µs resolution) into the frame's top-left blocks."""
    micros = monotonic_ns // 1000
    for bit in range(STAMP_BITS):
        row, column = divmod(bit, STAMP_COLUMNS)
        value = 255 if (micros >> bit) & 1 else 0
        frame[row * BLOCK:(row + 1) * BLOCK, column * BLOCK:(column + 1) * BLOCK] = value


def read_stamp(frame: np.ndarray) -> int:
    """The send time (ns) stamped into a decoded frame."""
    micros = 0
    for bit in range(STAMP_BITS):
        row, column = divmod(bit, STAMP_COLUMNS)
        block = frame[row * BLOCK + 4:(row + 1) * BLOCK - 4, column * BLOCK + 4:(column + 1) * BLOCK - 4]
        micros |= int(block.mean() > 127) << bit
    return micros * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--color", type=int, nargs=3, default=(200, 40, 40), metavar=("R", "G", "B"))
    parser.add_argument("--stamp", action="store_true", help="stamp each frame's send time into its pixels")
    args = parser.parse_args(argv)

    from surgseg.engines.video.stream_writer import StreamOutputConfig, StreamWriter

    writer = StreamWriter(StreamOutputConfig(url=args.url, fps=args.fps, keyframe_interval_s=0.5))
    width, height = args.size
    started = time.monotonic()
    for index in range(args.frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = args.color
        frame[height // 2:, (index * 4) % width:] //= 2  # a moving edge, so frames differ
        if args.stamp:
            stamp(frame, time.monotonic_ns())
        writer.write(frame)
        if index == 0:
            print("sending", flush=True)
        time.sleep(max(0.0, started + (index + 1) / args.fps - time.monotonic()))
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
