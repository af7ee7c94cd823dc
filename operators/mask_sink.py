"""Writes each frame's `mask` as an ID PNG (pixel value = class id), `<folder>/<frame_index:06d>.png`, atomically.

With `instances` set (and SAM2Prior's `instances.enabled` upstream), also each frame's instance-ID map as a uint16
PNG (pixel value = track id, 0 = background or not yet tracked), `<instances>/<frame_index:06d>.png`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.atomic import atomic_path
from surgseg.engines.sam2.instances import message_instance_ids
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class MaskSinkConfig:
    folder: str
    key: str = "mask"
    instances: str | None = None
    """Folder for the uint16 instance-ID PNGs (None: none written)."""


class MaskSink(SurgsegOperator):
    Config = MaskSinkConfig
    inputs = ("in",)

    def start(self) -> None:
        self.written = 0
        self._warned = False
        for folder in (self.config.folder, self.config.instances):
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        mask = np.ascontiguousarray(to_numpy(message[self.config.key]), dtype=np.uint8)
        name = f"{message['meta']['frame_index']:06d}.png"
        _write_png(Path(self.config.folder) / name, mask)
        if self.config.instances:
            ids = message_instance_ids(message, self.config.key)
            if ids is None:
                if not self._warned:
                    log.warning("%s: no instance tracks upstream (SAM2Prior instances.enabled): writing empty ID "
                                "maps", self.name)
                self._warned = True
                ids = np.zeros(mask.shape, np.uint16)
            _write_png(Path(self.config.instances) / name, ids)
        self.written += 1

    def stop(self) -> None:
        log.info("%s: wrote %d masks to %s", self.name, self.written, self.config.folder)


def _write_png(target: Path, array: np.ndarray) -> None:
    """uint8 or uint16 single-channel PNG, written atomically."""
    with atomic_path(target) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
