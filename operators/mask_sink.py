"""Writes each frame's `mask` as an ID PNG (pixel value = class id), `<folder>/<frame_index:06d>.png`, atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.atomic import atomic_path
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class MaskSinkConfig:
    folder: str
    key: str = "mask"


class MaskSink(SurgsegOperator):
    Config = MaskSinkConfig
    inputs = ("in",)

    def start(self) -> None:
        self.written = 0
        Path(self.config.folder).mkdir(parents=True, exist_ok=True)

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        mask = np.ascontiguousarray(to_numpy(message[self.config.key]), dtype=np.uint8)
        target = Path(self.config.folder) / f"{message['meta']['frame_index']:06d}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(mask).save(tmp, format="PNG")
        self.written += 1

    def stop(self) -> None:
        log.info("%s: wrote %d masks to %s", self.name, self.written, self.config.folder)
