"""Shows each message's `overlay` (else its `frame`) in a Holoviz window (GPU + Vulkan); clicks in it become prompts.

`HolovizOp` takes a tensor map, not our dict messages, so this sink is a Holoscan *subgraph*: PointerEvents (passes
the message on, emits the pointer prompts) → FrameToTensor (picks the picture, a `video` colour layer) → HolovizOp.
A graph uses it like any other sink (`display: {type: HolovizSink}`, flow `[overlay, display]`) and may route
`display.clicks` (PointerEvents' message: `{"clicks", "boxes", "meta": {"frame_index"}}`) back to the prompt
consumer as a feedback flow. In the window a left click is a positive point of the active class, a right (or
shift + left) click a negative one, a left drag a box; digit keys 1-9 choose the class.

HolovizOp loads `libvulkan.so.1` and libcuda, so it is imported only when the graph is composed: the graph still
validates on a machine without them. Unverified here (no GPU machine): HolovizOp calling `HolovizCallbacks` — the
callback signatures and enum member names were read from holoscan-cu12 4.6.0's bindings; the tests drive the
same callbacks with stand-in enum values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.pointer_input import PointerSeeder, PointerSeederConfig
from surgseg.operators import holoscan_loader  # noqa: F401  (preloads libcudart before holoscan)
from surgseg.operators.frame_to_tensor import FrameToTensor, FrameToTensorConfig
from surgseg.operators.pointer_events import PointerEvents, PointerEventsConfig
from holoscan.core import Subgraph

log = logging.getLogger(__name__)

DIGIT_KEYS = {name: digit for digit, word in enumerate(("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX",
                                                        "SEVEN", "EIGHT", "NINE"))
              for name in (word, f"KP_{digit}")}
"""HolovizOp.Key member name → digit (top row and keypad)."""

HOLOVIZ_DEFAULT_SIZE = (1920, 1080)


@dataclass
class HolovizSinkConfig:
    keys: list[str] = field(default_factory=lambda: ["overlay", "frame"])
    """Message keys to show, first present wins."""
    window_title: str = "surgseg"
    width: int | None = None
    height: int | None = None
    """Window size (None: Holoviz's default, 1920 x 1080)."""
    fullscreen: bool = False
    headless: bool = False
    """Render off-screen (tests on a GPU box without a display)."""
    num_classes: int = 2
    """Including background: digit keys choose classes 1..num_classes-1."""
    default_class: int = 1
    """Class of clicks before a digit key is pressed."""
    drag_threshold: float = 5.0
    """A left press-release farther apart than this many window pixels is a box, else a point."""


class HolovizCallbacks:
    """HolovizOp's input callbacks, turned into a PointerSeeder's plain calls (enums are read by member name)."""

    def __init__(self, seeder: PointerSeeder) -> None:
        self.seeder = seeder

    def mouse_button(self, button: Any, action: Any, modifiers: Any) -> None:
        if action.name in ("PRESS", "RELEASE"):
            self.seeder.button(button.name.lower(), action.name == "PRESS", bool(modifiers.shift))

    def cursor_pos(self, x: float, y: float) -> None:
        self.seeder.cursor(x, y)

    def window_size(self, width: int, height: int) -> None:
        self.seeder.window_size(width, height)

    def key(self, key: Any, action: Any, modifiers: Any) -> None:
        digit = DIGIT_KEYS.get(key.name)
        if digit is None or action.name != "PRESS":
            return
        try:
            self.seeder.select_class(digit)
        except InputError as exc:  # a stray key must not stop the display
            log.warning("key %d ignored: %s", digit, exc)
            return
        log.info("clicks now seed class %d", digit)


class HolovizSink(Subgraph):
    Config = HolovizSinkConfig
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("clicks",)
    feedback_inputs: ClassVar[tuple[str, ...]] = ()
    tensor = "video"
    display_port = "receivers"

    def __init__(self, fragment: Any, *conditions: Any, config: HolovizSinkConfig | None = None, name: str,
                 device: str = "cpu", connected_outputs: frozenset[str] | None = None, **ports: Any) -> None:
        if conditions:
            raise ValueError(f"{name}: a display sink takes no conditions")
        self.config = config if config is not None else HolovizSinkConfig()
        self.device = device
        self.clicks_connected = connected_outputs is None or "clicks" in connected_outputs
        self.seeder = self._make_seeder(name)
        self.callbacks = HolovizCallbacks(self.seeder)
        super().__init__(fragment, name)

    def _make_seeder(self, name: str) -> PointerSeeder:
        width, height = HOLOVIZ_DEFAULT_SIZE
        try:
            return PointerSeeder(PointerSeederConfig(
                num_classes=self.config.num_classes, default_class=self.config.default_class,
                drag_threshold=self.config.drag_threshold, window_width=self.config.width or width,
                window_height=self.config.height or height))
        except InputError as exc:
            raise InputError(f"operators.{name}.{exc}") from exc

    def compose(self) -> None:
        pointer = PointerEvents(self, config=PointerEventsConfig(keys=list(self.config.keys)), seeder=self.seeder,
                                name="pointer_events",
                                connected_outputs=frozenset({"out", "clicks"} if self.clicks_connected else {"out"}))
        to_tensor = FrameToTensor(self, config=FrameToTensorConfig(keys=list(self.config.keys), tensor=self.tensor),
                                  name="to_tensor")
        display = self.make_display()
        self.add_flow(pointer, to_tensor, {("out", "in")})
        self.add_flow(to_tensor, display, {("out", self.display_port)})
        self.add_input_interface_port("in", pointer, "in")
        self.add_output_interface_port("clicks", pointer, "clicks")

    def make_display(self) -> Any:
        """The operator that shows the `video` tensor and calls `self.callbacks` on pointer and key events."""
        from holoscan.operators import HolovizOp

        size = {k: v for k, v in (("width", self.config.width), ("height", self.config.height)) if v is not None}
        return HolovizOp(self, name="holoviz", tensors=[{"name": self.tensor, "type": "color"}],
                         window_title=self.config.window_title, fullscreen=self.config.fullscreen,
                         headless=self.config.headless, mouse_button_callback=self.callbacks.mouse_button,
                         cursor_pos_callback=self.callbacks.cursor_pos,
                         window_size_callback=self.callbacks.window_size, key_callback=self.callbacks.key, **size)
