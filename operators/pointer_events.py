"""Passes each message through and emits, on `clicks`, the pointer prompts gathered since the previous frame.

Sits in front of a display (HolovizSink composes it): it tells its `PointerSeeder` the size of the picture about to
be shown, so window coordinates map to that frame's pixels. Every frame `clicks` carries
`{"clicks": [(class, x, y, label), ...], "boxes": [(class, x0, y0, x1, y1), ...], "meta": {"frame_index": i}}`
in frame pixels (empty lists when nothing happened); `i` is the frame passing now, a little after the one the
person clicked on (the display's latency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from surgseg.engines.sam2.pointer_input import PointerSeeder
from surgseg.operators.base import Message, SurgsegOperator, first_present


@dataclass
class PointerEventsConfig:
    keys: list[str] = field(default_factory=lambda: ["overlay", "frame"])
    """Message keys of the shown picture (HxWx3), first present wins."""


class PointerEvents(SurgsegOperator):
    Config = PointerEventsConfig
    inputs = ("in",)
    outputs = ("out", "clicks")

    def __init__(self, fragment: Any, *args: Any, seeder: PointerSeeder | None = None, **kwargs: Any) -> None:
        self.seeder = seeder if seeder is not None else PointerSeeder()
        super().__init__(fragment, *args, **kwargs)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["in"]
        _, shown = first_present(message, self.config.keys, self.name)
        height, width = shown.shape[:2]
        self.seeder.frame_size(width, height)
        prompts = self.seeder.drain()
        clicks = {"clicks": prompts.clicks, "boxes": prompts.boxes,
                  "meta": {"frame_index": message["meta"]["frame_index"]}}
        return {"out": message, "clicks": clicks}
