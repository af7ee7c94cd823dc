"""Frames of a PNG/JPG folder in natural order, with the ground-truth mask of each frame when a mask folder is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from surgseg.engines.config import ExistingPath
from surgseg.engines.video.image_folder import ImageSequence
from surgseg.operators.source import FrameSource


@dataclass
class ImageFolderSourceConfig:
    path: Annotated[str, ExistingPath]
    masks: Annotated[str | None, ExistingPath] = None
    """Folder of GT masks named like the images (any picture suffix): emitted as `gt_mask` (HxW class ids)."""
    num_classes: int = 2
    fps: float = 30.0
    realtime: bool = False
    loop: bool = False
    start_frame: int = 0
    end_frame: int | None = None
    sequence: str | None = None
    """Name reported with the metrics (default: the folder's name)."""
    live: bool = False


class ImageFolderSource(FrameSource):
    Config = ImageFolderSourceConfig

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        self._sequence = self._open_sequence()
        self.sequence_name = self.config.sequence or Path(self.config.path).resolve().name

    def _open_sequence(self) -> ImageSequence:
        c = self.config
        return ImageSequence(c.path, c.masks, c.num_classes, c.start_frame, c.end_frame)

    def open_stream(self) -> None:
        self.live = self.config.live

    def read_frame(self) -> dict[str, Any] | None:
        taken = self._sequence.read()
        if taken is None and self.config.loop:
            self._sequence = self._open_sequence()
            taken = self._sequence.read()
        if taken is None:
            return None
        frame, mask = taken
        pair = self._sequence.pairs[self._sequence.index - 1]
        item: dict[str, Any] = {"frame": frame, "meta": {"source_path": str(pair.image), "fps": self.config.fps,
                                                         "sequence": self.sequence_name}}
        if mask is not None:
            item["gt_mask"] = mask
        return item

    def frame_period_s(self) -> float | None:
        return 1.0 / self.config.fps if self.config.realtime or self.config.live else None
