"""Clicks and drags in the display window become prompts in frame pixels: the seeder, PointerEvents, HolovizSink.

HolovizOp itself cannot run here (no Vulkan/libcuda): the graph tests replace it with a viewer that calls the very
callbacks HolovizSink hands to HolovizOp, with stand-in enum values that carry the bindings' member names.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from surgseg.app.graph_spec import validate
from surgseg.app.runtime import GraphApplication, run_graph
from surgseg.engines.errors import InputError
from surgseg.engines.sam2.pointer_input import PointerPrompts, PointerSeeder, PointerSeederConfig
from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig
from surgseg.operators.base import Message, NoConfig, SurgsegOperator
from surgseg.operators.holoviz_sink import HolovizCallbacks, HolovizSink
from surgseg.operators.pointer_events import PointerEvents

LEFT, RIGHT, MIDDLE = (SimpleNamespace(name=n) for n in ("LEFT", "RIGHT", "MIDDLE"))
PRESS, RELEASE = SimpleNamespace(name="PRESS"), SimpleNamespace(name="RELEASE")
PLAIN, SHIFT = SimpleNamespace(shift=False), SimpleNamespace(shift=True)
SOURCE = {"type": "SyntheticSource", "size": [64, 48], "frames": 8, "seed": 1}


def seeder_showing(frame: tuple[int, int] = (64, 48), window: tuple[int, int] = (800, 600),
                   **config: Any) -> PointerSeeder:
    """A seeder whose window (width, height) shows a frame (width, height)."""
    seeder = PointerSeeder(PointerSeederConfig(**config))
    seeder.window_size(*window)
    seeder.frame_size(*frame)
    return seeder


def click(seeder: PointerSeeder, x: float, y: float, which: str = "left", shift: bool = False) -> None:
    seeder.cursor(x, y)
    seeder.button(which, True, shift)
    seeder.button(which, False, shift)


def drag(seeder: PointerSeeder, start: tuple[float, float], end: tuple[float, float]) -> None:
    seeder.cursor(*start)
    seeder.button("left", True)
    seeder.cursor(*end)
    seeder.button("left", False)


def test_left_click_is_a_positive_point_at_the_frame_pixel_under_the_cursor() -> None:
    seeder = seeder_showing()
    click(seeder, 500.0, 150.0)  # 500 * 64 / 800 = 40, 150 * 48 / 600 = 12
    click(seeder, 799.9, 599.9)  # the last window pixel is the last frame pixel
    assert seeder.drain() == PointerPrompts(clicks=[(1, 40, 12, 1), (1, 63, 47, 1)], boxes=[])


def test_right_click_and_shift_left_click_are_negative_points() -> None:
    seeder = seeder_showing()
    click(seeder, 100.0, 100.0, which="right")
    click(seeder, 200.0, 300.0, shift=True)
    assert seeder.drain().clicks == [(1, 8, 8, 0), (1, 16, 24, 0)]


def test_left_drag_is_a_box_with_ordered_corners_clamped_inside_the_frame() -> None:
    seeder = seeder_showing()
    drag(seeder, (700.0, 500.0), (-30.0, 100.0))  # released left of the window: x clamps to 0
    drag(seeder, (100.0, 50.0), (900.0, 650.0))  # released past the bottom-right corner
    assert seeder.drain() == PointerPrompts(clicks=[], boxes=[(1, 0, 8, 56, 40), (1, 8, 4, 63, 47)])


def test_a_drag_within_the_threshold_is_a_point_where_the_button_went_down() -> None:
    seeder = seeder_showing(drag_threshold=5.0)
    drag(seeder, (400.0, 300.0), (403.0, 304.0))  # moved exactly 5 window pixels
    assert seeder.drain() == PointerPrompts(clicks=[(1, 32, 24, 1)], boxes=[])


def test_the_mapping_follows_the_window_size_from_config_then_resize_events() -> None:
    seeder = PointerSeeder(PointerSeederConfig(window_width=640, window_height=480))
    seeder.frame_size(320, 240)
    click(seeder, 100.0, 100.0)
    seeder.window_size(1280, 960)
    click(seeder, 100.0, 100.0)
    assert seeder.drain().clicks == [(1, 50, 50, 1), (1, 25, 25, 1)]


def test_select_class_sets_the_class_of_later_prompts_and_refuses_out_of_range() -> None:
    seeder = seeder_showing(num_classes=4)
    seeder.select_class(3)
    for bad in (0, 4, -1):
        with pytest.raises(InputError, match=f"class {bad} outside 1..3"):
            seeder.select_class(bad)
    click(seeder, 400.0, 300.0)
    drag(seeder, (0.0, 0.0), (80.0, 60.0))
    assert seeder.drain() == PointerPrompts(clicks=[(3, 32, 24, 1)], boxes=[(3, 0, 0, 6, 4)])


def test_a_default_class_outside_the_classes_is_refused() -> None:
    with pytest.raises(InputError, match="default_class: class 2 outside 1..1"):
        PointerSeeder(PointerSeederConfig(num_classes=2, default_class=2))


def test_drain_hands_over_the_prompts_once() -> None:
    seeder = seeder_showing()
    click(seeder, 400.0, 300.0)
    assert seeder.drain().clicks == [(1, 32, 24, 1)]
    assert seeder.drain() == PointerPrompts(clicks=[], boxes=[])


def test_a_release_before_any_frame_is_shown_gives_no_prompt() -> None:
    seeder = PointerSeeder()
    click(seeder, 10.0, 10.0)
    seeder.frame_size(64, 48)
    assert seeder.drain() == PointerPrompts(clicks=[], boxes=[])


def test_holoviz_callbacks_read_buttons_modifiers_and_digit_keys_by_enum_name(caplog) -> None:
    seeder = seeder_showing(num_classes=3)
    callbacks = HolovizCallbacks(seeder)
    callbacks.key(SimpleNamespace(name="KP_2"), PRESS, PLAIN)
    with caplog.at_level(logging.WARNING):
        callbacks.key(SimpleNamespace(name="NINE"), PRESS, PLAIN)  # class 9 of 3: warned, not raised
    assert seeder.active_class == 2 and "class 9 outside 1..2" in caplog.text
    callbacks.cursor_pos(400.0, 300.0)
    for button, modifiers in ((LEFT, PLAIN), (LEFT, SHIFT), (RIGHT, PLAIN), (MIDDLE, PLAIN)):
        callbacks.mouse_button(button, PRESS, modifiers)
        callbacks.mouse_button(button, RELEASE, modifiers)
    assert seeder.drain().clicks == [(2, 32, 24, 1), (2, 32, 24, 0), (2, 32, 24, 0)]


class ScriptedPointer(PointerEvents):
    """PointerEvents whose seeder gets a click in a 640 x 480 window while frame 2 passes."""

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        if inputs["in"]["meta"]["frame_index"] == 2:
            self.seeder.window_size(640, 480)
            click(self.seeder, 320.0, 120.0, which="right")
        return super().process(inputs)


class FakeViewer(SurgsegOperator):
    """Stands in for HolovizOp: keeps the tensors it is shown and, on the third, plays mouse events into them."""

    Config = NoConfig
    inputs = ("receivers",)

    def __init__(self, fragment: Any, *args: Any, callbacks: HolovizCallbacks, **kwargs: Any) -> None:
        self.callbacks = callbacks
        self.shown: list[dict[str, Any]] = []
        super().__init__(fragment, *args, **kwargs)

    def process(self, inputs: dict[str, Message | None]) -> None:
        self.shown.append(inputs["receivers"])
        if len(self.shown) == 3:
            self.callbacks.window_size(640, 480)
            self.callbacks.cursor_pos(100.0, 50.0)
            self.callbacks.mouse_button(LEFT, PRESS, PLAIN)
            self.callbacks.cursor_pos(400.0, 300.0)
            self.callbacks.mouse_button(LEFT, RELEASE, PLAIN)
            self.callbacks.cursor_pos(635.0, 475.0)
            self.callbacks.mouse_button(RIGHT, PRESS, PLAIN)
            self.callbacks.mouse_button(RIGHT, RELEASE, PLAIN)


class ClickingDisplay(HolovizSink):
    """HolovizSink with FakeViewer in place of the window."""

    def make_display(self) -> FakeViewer:
        self.viewer = FakeViewer(self, name="viewer", callbacks=self.callbacks)
        return self.viewer


SURGSEG_OPERATORS = {"ScriptedPointer": ScriptedPointer, "ClickingDisplay": ClickingDisplay}


def run(operators: dict[str, Any], flows: list[Any]) -> GraphApplication:
    graph = {"name": "t", "device": "cpu", "plugins": ["io_plugins", "test_pointer_input"],
             "operators": operators, "flows": flows}
    return run_graph(validate(graph, Path("t.yaml")))


def test_pointer_events_passes_frames_on_and_emits_each_frames_prompts_with_its_index() -> None:
    app = run({"source": SOURCE, "pointer": {"type": "ScriptedPointer"}, "frames": {"type": "Collector"},
               "clicks": {"type": "Collector"}},
              [["source", "pointer"], ["pointer.out", "frames"], ["pointer.clicks", "clicks"]])
    clip = SyntheticClip(SyntheticClipConfig(size=(64, 48), frames=8, num_classes=2, seed=1))
    frames, clicks = app.ops["frames"].messages, app.ops["clicks"].messages
    assert [np.array_equal(m["frame"], clip.render(t)[0]) for t, m in enumerate(frames)] == [True] * 8
    assert [m["meta"]["frame_index"] for m in clicks] == list(range(8))
    assert [(m["clicks"], m["boxes"]) for m in clicks] == [([], [])] * 2 + [([(1, 32, 12, 0)], [])] + [([], [])] * 5


def test_holoviz_sink_delivers_window_clicks_on_its_clicks_port_with_the_frame_index() -> None:
    app = run({"source": SOURCE, "display": {"type": "ClickingDisplay"}, "clicks": {"type": "Collector"}},
              [["source", "display"], ["display.clicks", "clicks"]])
    messages = app.ops["clicks"].messages
    assert [m["meta"]["frame_index"] for m in messages] == list(range(8))
    clicked = [m for m in messages if m["clicks"] or m["boxes"]]
    assert len(clicked) == 1 and clicked[0]["meta"]["frame_index"] >= 3  # drained after the third frame was shown
    assert clicked[0]["clicks"] == [(1, 63, 47, 0)] and clicked[0]["boxes"] == [(1, 10, 5, 40, 30)]
    shown = app.ops["display"].viewer.shown
    assert len(shown) == 8 and all(t["video"].shape == (48, 64, 3) for t in shown)


def test_holoviz_sink_refuses_a_default_class_outside_its_classes() -> None:
    graph = {"name": "t", "device": "cpu", "plugins": ["io_plugins", "test_pointer_input"],
             "operators": {"source": SOURCE, "display": {"type": "ClickingDisplay", "num_classes": 3,
                                                         "default_class": 3}},
             "flows": [["source", "display"]]}
    with pytest.raises(InputError, match=r"operators\.display\.default_class: class 3 outside 1\.\.2"):
        run_graph(validate(graph, Path("t.yaml")))


def test_holoviz_sink_shows_every_frame_when_its_clicks_port_is_not_routed() -> None:
    app = run({"source": SOURCE, "display": {"type": "ClickingDisplay"}}, [["source", "display"]])
    assert len(app.ops["display"].viewer.shown) == 8


def test_a_box_dragged_in_the_window_seeds_sam2_through_the_clicks_feedback_flow(tmp_path: Path) -> None:
    from test_export import export_tiny_refiner

    refiner = export_tiny_refiner(tmp_path, num_classes=2, size=(48, 64)).file("onnx")
    operators = {
        "source": SOURCE, "preproc": {"type": "Preproc", "size": [48, 64]},
        "prior": {"type": "SAM2Prior", "model": {"image_size": 128}, "seeding": {"auto_seed": False}},
        "refiner": {"type": "Refiner", "artifact": str(refiner), "num_classes": 2, "size": [48, 64]},
        "ema": {"type": "TemporalEMA"}, "overlay": {"type": "Overlay"}, "display": {"type": "ClickingDisplay"},
        "qa": {"type": "QAMonitor", "path": str(tmp_path / "qa.jsonl")}}
    flows = [["source", "preproc"], ["preproc", "prior.image"], ["prior", "refiner.image"], ["refiner", "ema"],
             ["ema", "overlay"], ["ema", "qa"], ["overlay", "display"],
             {"from": "ema.mask", "to": "prior.feedback", "feedback": True},
             {"from": "display.clicks", "to": "prior.clicks", "feedback": True}]
    run(operators, flows)
    lines = [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()]
    seeded = [line["frame_index"] for line in lines if line.get("seeded")]
    assert len(lines) == 8 and len(seeded) == 1 and seeded[0] >= 3  # the drag happens while frame 2 is shown
    assert [line["tracked"] for line in lines] == [[]] * seeded[0] + [[1]] * (8 - seeded[0])
