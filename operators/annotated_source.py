"""A FrameSource whose frames travel with what is known about them (`gt_mask`, `tags`, extra `meta` entries).

`read_item()` returns a dict holding `frame` plus any extra message keys and an optional `meta` dict of extra
metadata. The whole item goes through FrameSource's pacing and, for live sources, its drop-oldest queue, so a
frame's annotations can never be paired with another frame.
"""

from __future__ import annotations

from typing import Any

from surgseg.operators.base import Message
from surgseg.operators.source import FrameSource


class AnnotatedSource(FrameSource):
    """Base of sources that emit more than the frame; subclasses implement `read_item` instead of `read_frame`."""

    def read_item(self) -> dict[str, Any] | None:
        """`{"frame": HxWx3 uint8 RGB, ...extra keys, "meta": {...}}` or None at the end of the stream."""
        raise NotImplementedError

    def read_frame(self) -> Any:
        return self.read_item()

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message] | None:
        produced = super().process(inputs)
        if produced:
            message = produced["frame"]
            item = dict(message["frame"])
            message["meta"].update(item.pop("meta", {}))
            message.update(item)
        return produced
