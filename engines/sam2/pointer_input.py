"""Clicks and drags in a display window turned into SAM 2 prompts in the pixels of the frame it shows.

A `PointerSeeder` is fed plain-Python events (from any GUI thread): the cursor position and window size in window
screen coordinates, mouse buttons, the active class. The picture fills the whole window, so window (x, y) is frame
pixel (floor(x * frame_w / window_w), floor(y * frame_h / window_h)), clamped inside the frame. A left click is a
positive point, a right click (or shift + left click) a negative one, and a left press-move-release farther than
`drag_threshold` window pixels a box (x0, y0, x1, y1), inclusive, x0 <= x1 and y0 <= y1. A prompt takes the class
active and the position where its button went down. `drain()` hands over what gathered since its last call.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

POSITIVE = 1
NEGATIVE = 0

Click = tuple[int, int, int, int]
"""(class, x, y, label): a frame pixel (column, row), label 1 positive, 0 negative."""
Box = tuple[int, int, int, int, int]
"""(class, x0, y0, x1, y1): frame pixels, inclusive, x0 <= x1 and y0 <= y1."""


@dataclass
class PointerSeederConfig:
    num_classes: int = 2
    """Including background: the active class must be 1..num_classes-1."""
    default_class: int = 1
    """Active class before a digit key picks another."""
    drag_threshold: float = 5.0
    """A left press-release farther apart than this (window pixels) is a box, else a point."""
    window_width: int = 1920
    window_height: int = 1080
    """Window size until the first resize event (Holoviz's default size)."""


@dataclass
class PointerPrompts:
    clicks: list[Click] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)


@dataclass(frozen=True)
class _Press:
    button: str
    x: float
    y: float
    label: int
    class_id: int


class PointerSeeder:
    """Thread-safe accumulator of pointer prompts; every method may be called from any thread."""

    def __init__(self, config: PointerSeederConfig | None = None) -> None:
        self.config = config if config is not None else PointerSeederConfig()
        if self.config.drag_threshold < 0:
            raise InputError(f"drag_threshold: expected >= 0, got {self.config.drag_threshold}")
        self._lock = threading.Lock()
        self._window = (self.config.window_width, self.config.window_height)
        self._check_size(self._window, "window_width/window_height")
        self._frame: tuple[int, int] | None = None
        self._cursor: tuple[float, float] | None = None
        self._press: _Press | None = None
        self._active = self._checked_class(self.config.default_class, "default_class")
        self._pending = PointerPrompts()

    @property
    def active_class(self) -> int:
        return self._active

    def select_class(self, class_id: int) -> None:
        """Make `class_id` the class of the next prompts; InputError outside 1..num_classes-1."""
        checked = self._checked_class(class_id, "class")
        with self._lock:
            self._active = checked

    def window_size(self, width: int, height: int) -> None:
        size = (int(width), int(height))
        if size[0] <= 0 or size[1] <= 0:
            return  # a minimised window reports 0 x 0: keep the last real size
        with self._lock:
            self._window = size

    def frame_size(self, width: int, height: int) -> None:
        """The size of the frame the window shows now."""
        size = (int(width), int(height))
        self._check_size(size, "frame size")
        with self._lock:
            self._frame = size

    def cursor(self, x: float, y: float) -> None:
        with self._lock:
            self._cursor = (float(x), float(y))

    def button(self, which: str, pressed: bool, shift: bool = False) -> None:
        """A mouse button ('left', 'right', other names ignored) went down (`pressed`) or up."""
        if which not in ("left", "right"):
            return
        with self._lock:
            if pressed:
                self._start(which, shift)
            elif self._press is not None and self._press.button == which:
                self._finish()

    def drain(self) -> PointerPrompts:
        """The prompts gathered since the last call (the seeder keeps none of them)."""
        with self._lock:
            drained, self._pending = self._pending, PointerPrompts()
        return drained

    def _start(self, which: str, shift: bool) -> None:
        if self._press is not None or self._cursor is None:
            return
        label = NEGATIVE if which == "right" or shift else POSITIVE
        self._press = _Press(which, *self._cursor, label, self._active)

    def _finish(self) -> None:
        press, self._press = self._press, None
        if self._frame is None:
            log.debug("pointer: no frame shown yet, release ignored")
            return
        start = self._to_frame(press.x, press.y)
        end_x, end_y = self._cursor if self._cursor is not None else (press.x, press.y)
        dragged = math.hypot(end_x - press.x, end_y - press.y) > self.config.drag_threshold
        if press.label == POSITIVE and dragged:
            end = self._to_frame(end_x, end_y)
            box = (min(start[0], end[0]), min(start[1], end[1]), max(start[0], end[0]), max(start[1], end[1]))
            self._pending.boxes.append((press.class_id, *box))
        else:
            self._pending.clicks.append((press.class_id, *start, press.label))

    def _to_frame(self, x: float, y: float) -> tuple[int, int]:
        (window_w, window_h), (frame_w, frame_h) = self._window, self._frame
        column = min(max(math.floor(x * frame_w / window_w), 0), frame_w - 1)
        row = min(max(math.floor(y * frame_h / window_h), 0), frame_h - 1)
        return column, row

    def _checked_class(self, class_id: int, key: str) -> int:
        if isinstance(class_id, bool) or not isinstance(class_id, int) or not 0 < class_id < self.config.num_classes:
            raise InputError(f"{key}: class {class_id!r} outside 1..{self.config.num_classes - 1}")
        return class_id

    @staticmethod
    def _check_size(size: tuple[int, int], key: str) -> None:
        if size[0] <= 0 or size[1] <= 0:
            raise InputError(f"{key}: expected a positive width and height, got {size[0]} x {size[1]}")
