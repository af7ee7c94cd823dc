"""The overlay video in a form a browser plays offline, and single frames of it for thumbnails.

A video already in H.264 or VP9 (what `VideoFileSink` writes: H.264 in fragmented MP4, checked to play and seek in
headless Chromium) is used as is; any other codec (e.g. MPEG-4 Part 2 'mp4v', which Chromium does not decode) is
transcoded to H.264 with PyAV beside the report. Up to `EMBED_LIMIT` bytes the video is embedded as a data URI so that
report.html is one file; a longer one is referenced by a relative path (still offline, the file must stay beside it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surgseg.engines.video.io import VideoReader, VideoWriter, probe

log = logging.getLogger(__name__)

EMBED_LIMIT = 24 * 2**20
PLAYABLE = {"h264": "video/mp4", "vp9": "video/webm", "av1": "video/mp4"}
MEDIA_FOLDER = "report_media"


@dataclass(frozen=True)
class BrowserVideo:
    src: str
    """A data URI or a path relative to the report."""
    mime: str
    fps: float
    frames: int
    note: str


def count_frames(path: Path) -> int:
    """Frames in the file: the header's count when it has one, else decoded."""
    info = probe(path)
    if info.frames:
        return info.frames
    with VideoReader(path) as reader:
        return sum(1 for _ in reader)


def browser_video(path: Path, report_dir: Path, embed_limit: int = EMBED_LIMIT) -> BrowserVideo:
    """The video as the report's <video> source (transcoded when the codec is not one browsers decode)."""
    from surgseg.app.report.page import file_uri

    info = probe(path)
    playable, note = path, f"{info.codec}, {info.width}×{info.height}, {info.fps:g} fps"
    if info.codec not in PLAYABLE:
        playable = report_dir / MEDIA_FOLDER / f"{path.stem}.mp4"
        transcode_h264(path, playable, info.fps)
        note += f"; transcoded to H.264 for the browser ({playable.name})"
        info = probe(playable)
    mime = PLAYABLE[info.codec]
    frames = count_frames(playable)
    if playable.stat().st_size <= embed_limit:
        return BrowserVideo(file_uri(playable, mime), mime, info.fps, frames, note + "; embedded")
    relative = os.path.relpath(playable, report_dir)
    return BrowserVideo(Path(relative).as_posix(), mime, info.fps, frames,
                        note + f"; {playable.stat().st_size / 2**20:.0f} MiB, referenced as {relative} (keep it beside "
                        "report.html)")


def transcode_h264(source: Path, target: Path, fps: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with VideoReader(source) as reader, VideoWriter(target, fps=fps) as writer:
        for frame in reader:
            writer.write(frame)


def read_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames at `indices` (HxWx3 uint8 RGB), decoding up to the last of them."""
    wanted = set(indices)
    frames = {}
    if not wanted:
        return frames
    with VideoReader(path, end_frame=max(wanted) + 1) as reader:
        for i, frame in enumerate(reader):
            if i in wanted:
                frames[i] = frame
    return frames
