"""`surgseg record --input clip.mp4 --out DIR/basename`: make a Holoscan recording (`.gxf_entities`/`.gxf_index`).

The recording holds one RGB uint8 tensor named `video` per frame and replays bit-exactly through Holoscan's
`VideoStreamReplayerOp` (graphs/replay_recording.yaml). The command runs a small graph of its own:
VideoFileSource (or ImageFolderSource for a folder) → FrameToTensor → VideoStreamRecorderOp.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("surgseg")


def register(subparsers: argparse._SubParsersAction) -> None:
    record = subparsers.add_parser("record", help="turn a video file or image folder into a Holoscan recording")
    record.add_argument("--input", required=True, type=Path, help="video file (mp4, mov, mkv, avi) or image folder")
    record.add_argument("--out", required=True, type=Path, help="DIR/basename of the .gxf_entities/.gxf_index pair")
    record.add_argument("--start-frame", type=int, default=0)
    record.add_argument("--end-frame", type=int, default=None, help="first frame index not recorded")
    record.add_argument("--frames", type=int, default=None, help="stop after N frames")
    record.set_defaults(handler=record_command)


def record_graph(args: argparse.Namespace) -> dict[str, Any]:
    """The recording graph as a graph-YAML mapping."""
    source_type = "ImageFolderSource" if args.input.is_dir() else "VideoFileSource"
    return {
        "name": "record",
        "device": "cpu",
        "operators": {
            "source": {"type": source_type, "path": str(args.input), "start_frame": args.start_frame,
                       "end_frame": args.end_frame},
            "to_tensor": {"type": "FrameToTensor", "keys": ["frame"], "tensor": "video"},
            "recorder": {"type": "VideoStreamRecorderOp", "directory": str(args.out.parent or Path(".")),
                         "basename": args.out.name},
        },
        "flows": [["source", "to_tensor"], ["to_tensor", "recorder"]],
    }


def record_command(args: argparse.Namespace) -> int:
    from surgseg.app.runtime import block_stop_signals

    block_stop_signals()
    from surgseg.app.graph_spec import validate
    from surgseg.app.runtime import run_graph
    from surgseg.engines.errors import InputError
    from surgseg.operators.base import OperatorFailure

    if not args.input.exists():
        raise InputError(f"--input {args.input}: no such video file or image folder")
    if not args.out.name:
        raise InputError(f"--out {args.out}: expected DIR/basename")
    spec = validate(record_graph(args), Path("record"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        app = run_graph(spec, frame_limit=args.frames, handle_signals=True)
    except OperatorFailure as exc:
        log.error("%s", exc)
        return 1
    frames = app.ops["source"].emitted
    log.info("recorded %d frames to %s.gxf_entities / .gxf_index", frames, args.out)
    return 0
