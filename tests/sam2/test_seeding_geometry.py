"""Seeds on a non-square frame reach SAM 2 where they are: source pixels → letterboxed model size → SAM 2's S×S input.

A 640×360 source letterboxed into a 128×160 (h×w) model size: scale 1/4, picture rows 19-108, no side padding.
The tracker stretches the 128×160 model image to SAM 2's 128×128 input (x × 0.8, y × 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2_double import FakeStreamingSAM2, RecordingModules

from surgseg.engines.letterbox import letterbox_geometry
from surgseg.engines.preprocess import mask_to_model, model_input
from surgseg.engines.sam2.backends import make_modules
from surgseg.engines.sam2.config import ModelConfig, SAM2Config
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.seeding import box_prompts, click_prompts, read_clicks
from surgseg.engines.sam2.stream import StreamingSAM2
from surgseg.engines.sam2.tracker import PriorTracker, SeedRequest

SOURCE = (360, 640)
MODEL = (128, 160)
S = 128
GEOMETRY = letterbox_geometry(SOURCE, MODEL)
BOX = (200, 100, 399, 259)  # columns 200-399, rows 100-259 of the source
POINTS = [(300, 180, 1), (100, 300, 0), (639, 359, 1)]
SAM2_PIXEL = (MODEL[1] / S / GEOMETRY.scale, MODEL[0] / S / GEOMETRY.scale)  # one SAM 2 input pixel: 5 × 4 source px
CLICKS = "frame,class,x,y,label\n0,1,320,180,1\n0,1,400,240,1\n0,1,100,100,0\n4,2,600,20,1\n"


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*SOURCE, 3), dtype=np.uint8)


def to_source(x: float, y: float) -> tuple[float, float]:
    """A continuous coordinate on SAM 2's S×S input back in source pixels (edges map to edges)."""
    model_x, model_y = x * MODEL[1] / S, y * MODEL[0] / S
    return (model_x - GEOMETRY.left) / GEOMETRY.scale, (model_y - GEOMETRY.top) / GEOMETRY.scale


def sam2_pixels_to_source(coords: torch.Tensor) -> tuple[tuple[float, ...], list[tuple[float, float]]]:
    """SAM 2's point inputs (box corners first, inclusive pixels) as a source box and source pixel centres."""
    (x0, y0), (x1, y1), *points = coords.tolist()
    a, b = to_source(x0, y0), to_source(x1 + 1, y1 + 1)
    centres = [to_source(x + 0.5, y + 0.5) for x, y in points]
    return (a[0], a[1], b[0] - 1, b[1] - 1), [(cx - 0.5, cy - 0.5) for cx, cy in centres]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_sam2_model(ModelConfig(image_size=S))


@pytest.fixture
def tracker(model) -> PriorTracker:
    """A tracker on a real random-weight SAM 2 whose backend calls are recorded (`tracker.engine.modules`)."""
    config = SAM2Config(num_classes=3, model=ModelConfig(image_size=S))
    return PriorTracker(StreamingSAM2(config, model=model, modules=RecordingModules(make_modules(model, config))))


def test_the_letterbox_of_a_wide_frame_in_the_model_size() -> None:
    g = GEOMETRY
    assert (g.scale, g.resized_h, g.resized_w, g.top, g.left) == (0.25, 90, 160, 19, 0)


def test_a_box_and_points_land_on_the_letterboxed_model_pixels() -> None:
    prompts = box_prompts(BOX, POINTS, 1, 3, GEOMETRY)
    (prompt,) = prompts.classes[1]
    assert (prompts.height, prompts.width, list(prompts.classes)) == (128, 160, [1])
    assert prompt.box == (50, 44, 99, 83)
    assert prompt.points == ((75, 64), (25, 94), (159, 108))  # the source corner is the picture's last pixel
    assert prompt.labels == (1, 0, 1)


def test_a_clicks_file_lands_on_the_letterboxed_model_pixels(tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text(CLICKS)
    clicks = read_clicks(path, 3)
    assert sorted(clicks) == [0, 4]
    first = click_prompts(clicks[0], 3, GEOMETRY).classes
    assert list(first) == [1]
    assert first[1][0].points == ((80, 64), (100, 79), (25, 44)) and first[1][0].labels == (1, 1, 0)
    assert first[1][0].box == (80 - 13, 64 - 13, 100 + 13, 79 + 13)  # positives' box grown by 8 % of 160 px
    later = click_prompts(clicks[4], 3, GEOMETRY).classes
    assert list(later) == [2] and later[2][0].points == ((150, 24),)
    assert later[2][0].box == (137, 11, 159, 37)  # clamped to the model image (the margin reaches the padding)


def test_sam2_gets_a_box_seed_where_the_box_is_in_the_source(tracker) -> None:
    image, _ = model_input(frame(), MODEL)
    prior, events = tracker.frame(image, None, SeedRequest(prompts=box_prompts(BOX, POINTS, 1, 3, GEOMETRY)))
    assert events.seeded == [1] and prior.shape == (1, 2, *MODEL)
    (heads,) = tracker.engine.modules.arguments("heads")
    coords = heads["points"]["point_coords"][0]
    assert coords.tolist() == [[40, 44], [79, 83], [60, 64], [20, 94], [127, 108]]
    assert heads["points"]["point_labels"].tolist() == [[2, 3, 1, 0, 1]]
    box, points = sam2_pixels_to_source(coords)
    assert np.allclose(box, BOX, atol=1.0)
    assert (np.abs(np.array(points) - np.array([p[:2] for p in POINTS])) <= SAM2_PIXEL).all()


def test_sam2_gets_a_clicks_files_reprompt_where_the_clicks_are(tracker, tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text(CLICKS)
    clicks = read_clicks(path, 3)
    for t in range(5):
        image, _ = model_input(frame(t), MODEL)
        request = SeedRequest(prompts=click_prompts(clicks[t], 3, GEOMETRY)) if t in clicks else None
        _, events = tracker.frame(image, None, request)
    assert events.reseeded == [2] and sorted(tracker.engine.memory_state()) == [1, 2]
    prompted = [a["points"]["point_coords"][0] for a in tracker.engine.modules.arguments("heads") if a["points"]]
    assert [c.tolist() for c in prompted] == [[[53, 51], [91, 92], [64, 64], [80, 79], [20, 44]],
                                              [[109, 11], [127, 37], [120, 24]]]
    back = [point for coords in prompted for point in sam2_pixels_to_source(coords)[1]]
    written = [(x, y) for t in sorted(clicks) for _, x, y, _ in clicks[t]]
    assert (np.abs(np.array(back) - np.array(written)) <= SAM2_PIXEL).all()


def test_a_mask_seed_prior_lands_on_the_letterboxed_mask(tracker) -> None:
    source_mask = np.zeros(SOURCE, np.uint8)
    source_mask[BOX[1] : BOX[3] + 1, BOX[0] : BOX[2] + 1] = 1
    mask = mask_to_model(source_mask, MODEL)
    image, _ = model_input(frame(), MODEL)
    prior, _ = tracker.frame(image, None, SeedRequest(mask=mask))
    inside = prior[0, 0] > 0
    rows, cols = np.nonzero(inside)
    assert (cols.min(), rows.min(), cols.max(), rows.max()) == (50, 44, 99, 83)
    assert np.mean(inside == (mask == 1)) > 0.99 and not (prior[0, 1] > 0).any()


def test_a_frame_whose_clicks_are_all_negative_seeds_nothing() -> None:
    prompts = click_prompts([(1, 100.0, 100.0, 0)], 2, GEOMETRY)
    assert prompts.classes == {}
    tracker = PriorTracker(FakeStreamingSAM2(image_size=S))
    prior, events = tracker.frame(np.zeros((1, 3, *MODEL), np.float32), None, SeedRequest(prompts=prompts))
    assert not tracker.seeded and events.seeded == [] and not prior.any()
