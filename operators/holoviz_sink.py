"""Shows each message's `overlay` (else its `frame`) in a Holoviz window: Holoscan's `HolovizOp` (GPU + Vulkan).

`HolovizOp` takes a tensor map, not our dict messages, so this sink is a Holoscan *subgraph*: FrameToTensor picks
the picture and hands it to HolovizOp as a `video` colour layer. A graph uses it like any other sink
(`display: {type: HolovizSink}`, flow `[overlay, display]`). HolovizOp loads `libvulkan.so.1` and libcuda, so it is
imported only when the graph is composed: the graph still validates on a machine without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from surgseg.operators import holoscan_loader  # noqa: F401  (preloads libcudart before holoscan)
from surgseg.operators.frame_to_tensor import FrameToTensor, FrameToTensorConfig
from holoscan.core import Subgraph


@dataclass
class HolovizSinkConfig:
    keys: list[str] = field(default_factory=lambda: ["overlay", "frame"])
    """Message keys to show, first present wins."""
    window_title: str = "surgseg"
    width: int | None = None
    height: int | None = None
    """Window size (None: Holoviz's default)."""
    fullscreen: bool = False
    headless: bool = False
    """Render off-screen (tests on a GPU box without a display)."""


class HolovizSink(Subgraph):
    Config = HolovizSinkConfig
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ()
    feedback_inputs: ClassVar[tuple[str, ...]] = ()
    tensor = "video"
    display_port = "receivers"

    def __init__(self, fragment: Any, *conditions: Any, config: HolovizSinkConfig | None = None, name: str,
                 device: str = "cpu", **ports: Any) -> None:
        if conditions:
            raise ValueError(f"{name}: a display sink takes no conditions")
        self.config = config if config is not None else HolovizSinkConfig()
        self.device = device
        super().__init__(fragment, name)

    def compose(self) -> None:
        to_tensor = FrameToTensor(self, config=FrameToTensorConfig(keys=list(self.config.keys), tensor=self.tensor),
                                  name="to_tensor")
        display = self.make_display()
        self.add_flow(to_tensor, display, {("out", self.display_port)})
        self.add_input_interface_port("in", to_tensor, "in")

    def make_display(self) -> Any:
        """The operator that shows the `video` tensor."""
        from holoscan.operators import HolovizOp

        size = {k: v for k, v in (("width", self.config.width), ("height", self.config.height)) if v is not None}
        return HolovizOp(self, name="holoviz", tensors=[{"name": self.tensor, "type": "color"}],
                         window_title=self.config.window_title, fullscreen=self.config.fullscreen,
                         headless=self.config.headless, **size)
