"""Prompts from masks: tight boxes, interior positive points, outside negatives, per component; JSON round trip."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.prompts import SCHEMA_VERSION, ClassPrompts, load_prompts, prompts_from_mask, save_prompts


def _u_shape() -> np.ndarray:
    """A U whose centroid lies in the empty middle."""
    mask = np.zeros((80, 100), np.uint8)
    mask[10:70, 10:30] = 1
    mask[10:70, 70:90] = 1
    mask[50:70, 10:90] = 1
    return mask


def test_positive_point_is_deep_inside_a_nonconvex_mask() -> None:
    mask = _u_shape()
    ys, xs = np.nonzero(mask)
    assert mask[int(ys.mean()), int(xs.mean())] == 0  # the centroid would miss
    prompt = prompts_from_mask(mask, 2).classes[1][0]
    x, y = prompt.points[0]
    assert prompt.labels[0] == 1 and mask[y, x] == 1
    depth = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    assert depth[y, x] == depth.max()


def test_box_is_tight_and_negatives_sit_just_outside() -> None:
    mask = _u_shape()
    prompt = prompts_from_mask(mask, 2, negative_margin=4).classes[1][0]
    assert prompt.box == (10, 10, 89, 69)
    negatives = [p for p, label in zip(prompt.points, prompt.labels) if label == 0]
    assert len(negatives) == 2
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    for x, y in negatives:
        assert mask[y, x] == 0 and abs(outside[y, x] - 4) <= 0.5


def test_one_prompt_per_component_largest_first_small_ones_dropped() -> None:
    mask = np.zeros((60, 60), np.uint8)
    mask[5:15, 5:15] = 1  # 100 px
    mask[30:50, 30:50] = 1  # 400 px
    mask[2:4, 50:52] = 1  # 4 px: below min_area
    mask[40:45, 5:10] = 2
    prompts = prompts_from_mask(mask, 3, min_area=16)
    assert [p.area for p in prompts.classes[1]] == [400, 100]
    assert prompts.classes[2][0].box == (5, 40, 9, 44)
    merged = prompts.merged(1)
    assert merged.box == (30, 30, 49, 49) and merged.labels.count(1) == 2
    assert prompts.merged(3) is None


def test_same_mask_gives_identical_prompts_and_json_round_trips(tmp_path) -> None:
    mask = _u_shape()
    first, second = prompts_from_mask(mask, 2), prompts_from_mask(mask.copy(), 2)
    assert first == second
    path = tmp_path / "a.prompts.json"
    save_prompts(path, first)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert load_prompts(path) == first


def test_resized_prompts_scale_coordinates() -> None:
    mask = np.zeros((50, 100), np.uint8)
    mask[10:20, 20:40] = 1
    prompts = prompts_from_mask(mask, 2, num_negative=0).resized(100, 200)
    assert prompts.classes[1][0].box == (40, 20, 79, 39)


def test_wrong_schema_version_names_the_file(tmp_path) -> None:
    path = tmp_path / "x.prompts.json"
    path.write_text(json.dumps({**prompts_from_mask(_u_shape(), 2).to_json(), "schema_version": 99}))
    with pytest.raises(InputError, match=f"{path}.*schema_version 99"):
        load_prompts(path)
    with pytest.raises(InputError, match="not found"):
        load_prompts(tmp_path / "missing.json")


def test_class_id_outside_num_classes_is_rejected() -> None:
    with pytest.raises(InputError, match="class id 2"):
        prompts_from_mask(np.full((8, 8), 2, np.uint8), 2)
    with pytest.raises(InputError, match="class id 3"):
        ClassPrompts.from_json({"schema_version": 1, "height": 4, "width": 4, "num_classes": 2,
                                "classes": {"3": []}})
