"""Synthetic surgical clips on disk: PNG frames, PNG class-id masks, an H.264 mp4 and clip.json per clip, one
dataset.jsonl (index rows + `tags`) and classes.yaml; plus a contact sheet for people to look at.

A share of the clips can have a randomised look (`domain`), a share no instrument at all (`negatives`: hard
negatives) and a share several instruments that cross and hide one another (`multi`, drawn by
`engines/video/synthetic_instances.py`); with `fov_crop` each clip is stored cropped to the field of view detected on
its first frame, the crop the runtime makes before letterboxing (trimmed to even sides for H.264)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.atomic import atomic_path, atomic_write_json
from surgseg.engines.errors import InputError
from surgseg.engines.video.synthetic import TAGS, SyntheticClip, SyntheticClipConfig
from surgseg.engines.video.synthetic_instances import InstanceClip, random_instance_clip
from surgseg.training.dataset_index import check_writable, classes_present, write_classes, write_index

log = logging.getLogger(__name__)

CLASS_COLOURS = np.array([[0, 0, 0], [40, 220, 60], [255, 210, 0]], np.uint8)


@dataclass(frozen=True)
class SynthDatasetConfig:
    out: Path
    clips: int = 4
    frames: int = 48
    size: tuple[int, int] = (320, 256)  # width, height
    num_classes: int = 3
    seed: int = 0
    fps: int = 25
    domain: float = 0.0
    """Share of clips with a randomised look (`SyntheticClipConfig.domain`), spread evenly over the clips."""
    negatives: float = 0.0
    """Share of clips without any instrument, spread evenly (offset from the domain clips' pattern)."""
    multi: float = 0.0
    """Share of clips with 2 or 3 instruments (classic look, class 1 only), spread evenly with its own offset; a clip
    picked as a negative stays a negative."""
    fov_crop: bool = False

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise InputError(f"--clips: {self.clips} (at least 1)")
        for name in ("domain", "negatives", "multi"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"synth.{name}: {getattr(self, name)} (a share of the clips, 0 to 1)")
        if self.multi > 0 and self.num_classes != 2:
            raise InputError(f"synth.multi: multi-instrument clips label one instrument class (use 2 classes, not "
                             f"{self.num_classes})")
        if self.size[0] % 2 or self.size[1] % 2:
            raise InputError(f"--size: {self.size[0]}x{self.size[1]} (H.264 needs even width and height)")

    def clip(self, index: int) -> SyntheticClip | InstanceClip:
        """Clip `index`: its own seed, derived from the dataset seed."""
        seed = self.seed * 1000 + index
        negative = _spread(index, self.negatives, 0.5)
        if _spread(index, self.multi, 0.25) and not negative:
            return InstanceClip(random_instance_clip(seed, self.frames, self.size, name=f"multi_{index:03d}"))
        return SyntheticClip(SyntheticClipConfig(
            size=self.size, frames=self.frames, num_classes=self.num_classes, seed=seed,
            domain=_spread(index, self.domain), presence=() if negative else None))


def _spread(index: int, share: float, phase: float = 0.0) -> bool:
    """Whether clip `index` is one of an evenly spread `share` of the clips."""
    return math.floor((index + 1) * share + phase) > math.floor(index * share + phase)


def write_synthetic_dataset(config: SynthDatasetConfig) -> list[dict[str, Any]]:
    """Render every clip to `config.out`; returns the index rows (written last, atomically)."""
    check_writable(config.out)
    rows: list[dict[str, Any]] = []
    for index in range(config.clips):
        clip = config.clip(index)
        rows.extend(_write_clip(clip, config.out / f"clip_{index:03d}", config.fps, config.fov_crop))
    write_classes(config.out / "classes.yaml", SyntheticClipConfig(num_classes=config.num_classes).class_names)
    write_index(config.out / "dataset.jsonl", rows)
    return rows


def contact_sheet(clips: list[SyntheticClip | InstanceClip], per_clip: int = 6, width: int = 240) -> np.ndarray:
    """RGB grid: for each clip a row of frames (with tags) above the same frames with the mask overlaid; the frames
    shown include the middle frame of each tag (smoke, glare, ...) the clip has."""
    import cv2

    rows = []
    for clip in clips:
        rendered = list(_frames(clip))
        top, bottom = [], []
        for t in _showcase(rendered, per_clip):
            frame, mask, tags = rendered[t]
            scale = width / frame.shape[1]
            size = (width, int(round(frame.shape[0] * scale)))
            shown = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            overlay = cv2.resize(overlay_mask(frame, mask), size, interpolation=cv2.INTER_AREA)
            cv2.putText(shown, f"t={t} {' '.join(tags)}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                        cv2.LINE_AA)
            top.append(_framed(shown))
            bottom.append(_framed(overlay))
        rows.extend([np.hstack(top), np.hstack(bottom)])
    return np.vstack(rows)


def _showcase(rendered: list[tuple[np.ndarray, np.ndarray, list[str]]], count: int) -> list[int]:
    """Frame numbers: the middle frame of each tag present, then evenly spaced ones, `count` in all."""
    picks: list[int] = []
    for tag in TAGS:
        frames = [t for t, (_, _, tags) in enumerate(rendered) if tag in tags]
        if frames and len(picks) < count:
            picks.append(frames[len(frames) // 2])
    for t in np.linspace(0, len(rendered) - 1, count).round().astype(int):
        if len(picks) < count and int(t) not in picks:
            picks.append(int(t))
    return sorted(picks)


def overlay_mask(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Frame with each foreground class tinted in its colour."""
    colours = CLASS_COLOURS[np.minimum(mask, len(CLASS_COLOURS) - 1)].astype(np.float32)
    weight = (mask > 0)[..., None] * alpha
    return (frame * (1 - weight) + colours * weight).astype(np.uint8)


def save_png(path: Path, image: np.ndarray) -> None:
    """Atomic PNG write of an RGB or single-channel uint8 image."""
    import cv2

    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), pixels):
            raise InputError(f"{path}: could not write")


def crop_box(first_frame: np.ndarray, crop: bool) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the FOV detected on the clip's first frame (even sides), or the whole frame."""
    if not crop:
        return 0, 0, first_frame.shape[1], first_frame.shape[0]
    from surgseg.engines.fov import detect_fov

    x0, y0, x1, y1 = detect_fov(first_frame).bbox
    return x0, y0, x1 - (x1 - x0) % 2, y1 - (y1 - y0) % 2


def _frames(clip: SyntheticClip | InstanceClip) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(frame, class mask, tags) per frame, whichever generator drew the clip."""
    if isinstance(clip, SyntheticClip):
        yield from clip
    else:
        for item in clip:
            yield item.frame, item.mask, item.tags


def _clip_info(clip: SyntheticClip | InstanceClip) -> dict[str, Any]:
    if isinstance(clip, SyntheticClip):
        return {"config": dataclasses.asdict(clip.config), "schedule": clip.schedule,
                "look": dataclasses.asdict(clip.look), "class_names": clip.config.class_names}
    return {"instances": dataclasses.asdict(clip.config), "class_names": ["background", "instrument"]}


def _write_clip(clip: SyntheticClip | InstanceClip, folder: Path, fps: int, crop: bool) -> list[dict[str, Any]]:
    import av
    from tqdm import tqdm

    rows = []
    frames = _frames(clip)
    first = next(frames)
    x0, y0, x1, y1 = crop_box(first[0], crop)
    with atomic_path(folder / "clip.mp4") as video_path:
        with av.open(str(video_path), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = x1 - x0, y1 - y0, "yuv420p"
            rendered = itertools.chain([first], frames)
            for t, (frame, mask, tags) in enumerate(tqdm(rendered, desc=folder.name, unit="frame", leave=False,
                                                         total=len(clip))):
                frame, mask = np.ascontiguousarray(frame[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1])
                image_path, mask_path = folder / "frames" / f"{t:06d}.png", folder / "masks" / f"{t:06d}.png"
                save_png(image_path, frame)
                save_png(mask_path, mask)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                rows.append(_row(image_path, mask_path, folder.name, t, mask, tags))
            container.mux(stream.encode(None))
    atomic_write_json(folder / "clip.json", {**_clip_info(clip), "crop": [x0, y0, x1, y1]})
    log.info("%s: %d frames (%s)", folder, len(rows), type(clip).__name__)
    return rows


def _row(image_path: Path, mask_path: Path, video: str, t: int, mask: np.ndarray, tags: list[str]) -> dict[str, Any]:
    return {
        "image_path": str(image_path.resolve()),
        "mask_path": str(mask_path.resolve()),
        "video_id": video,
        "frame_id": t,
        "classes_present": classes_present(mask),
        "width": int(mask.shape[1]),
        "height": int(mask.shape[0]),
        "tags": tags,
    }


def _framed(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
