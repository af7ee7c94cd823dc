"""Mask standardisation: every input kind to class ids, noisy masks snapped, bad values named."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from surgseg.engines.errors import InputError
from surgseg.training.masks import load_colour_map, read_mask, standardise_mask

RED, GREEN = (220, 20, 30), (10, 200, 40)


def disc_mask(size: int = 64, value: int = 1) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), size // 4, value, -1)
    return mask


def jpeg_roundtrip(image: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


@pytest.fixture
def colour_map(tmp_path):
    path = tmp_path / "colours.yaml"
    path.write_text(
        "classes:\n"
        "  - {id: 0, name: background, colour: [0, 0, 0]}\n"
        f"  - {{id: 1, name: shaft, colour: {list(RED)}}}\n"
        f"  - {{id: 2, name: tip, colour: {list(GREEN)}}}\n"
    )
    return load_colour_map(path)


def test_binary_0_255_becomes_0_1():
    truth = disc_mask()
    result = standardise_mask(truth * 255, "m.png", num_classes=2)
    assert result.kind == "binary"
    assert result.changed_pixels == 0
    np.testing.assert_array_equal(result.mask, truth)


def test_id_mask_is_kept_unchanged():
    ids = disc_mask(value=1)
    ids[:8, :8] = 2
    result = standardise_mask(ids, "m.png", num_classes=3)
    assert result.kind == "ids"
    np.testing.assert_array_equal(result.mask, ids)


def test_colour_mask_maps_through_the_colour_file(colour_map):
    truth = disc_mask(value=1)
    truth[4:12, 4:20] = 2
    rgb = np.array([(0, 0, 0), RED, GREEN], np.uint8)[truth]
    result = standardise_mask(rgb, "m.png", num_classes=3, colour_map=colour_map)
    assert result.kind == "colour" and result.changed_pixels == 0
    np.testing.assert_array_equal(result.mask, truth)
    assert colour_map.names == {0: "background", 1: "shaft", 2: "tip"}


def test_jpeg_noisy_binary_mask_is_snapped_and_changes_counted():
    truth = disc_mask()
    noisy = jpeg_roundtrip(truth * 255)
    off_level = int(np.count_nonzero((noisy != 0) & (noisy != 255)))
    result = standardise_mask(noisy, "m.jpg", num_classes=2)
    assert off_level > 0
    assert result.changed_pixels == off_level
    assert np.count_nonzero(result.mask != truth) <= 0.01 * truth.size


def test_jpeg_noisy_colour_mask_is_snapped(colour_map):
    truth = disc_mask(value=1)
    truth[4:12, 4:40] = 2
    rgb = np.array([(0, 0, 0), RED, GREEN], np.uint8)[truth]
    noisy = cv2.cvtColor(jpeg_roundtrip(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 80), cv2.COLOR_BGR2RGB)
    result = standardise_mask(noisy, "m.jpg", num_classes=3, colour_map=colour_map)
    assert result.changed_pixels > 0
    assert np.count_nonzero(result.mask != truth) <= 0.02 * truth.size


def test_grey_region_outside_the_map_is_an_error_naming_file_and_value():
    mask = disc_mask() * 255
    mask[40:60, 5:25] = 128
    with pytest.raises(InputError, match=r"m\.png: \d+ pixels with values outside the map: 128$"):
        standardise_mask(mask, "m.png", num_classes=2)


def test_id_above_num_classes_is_an_error_naming_the_values():
    ids = disc_mask(value=1)
    ids[:4, :4] = 5
    with pytest.raises(InputError, match=r"m\.png: values outside the class ids 0\.\.2: 5"):
        standardise_mask(ids, "m.png", num_classes=3)


def test_unmapped_colour_region_is_an_error(colour_map):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[8:24, 8:24] = (0, 0, 255)
    with pytest.raises(InputError, match=r"m\.png: 256 pixels .*\(0, 0, 255\)"):
        standardise_mask(rgb, "m.png", num_classes=3, colour_map=colour_map)


def test_colour_mask_without_a_map_is_an_error():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:8, 4:8] = RED
    with pytest.raises(InputError, match="needs a colour map"):
        standardise_mask(rgb, "m.png", num_classes=2)


def test_grey_rgb_mask_is_read_as_single_channel():
    truth = disc_mask()
    rgb = np.repeat((truth * 255)[..., None], 3, axis=2)
    np.testing.assert_array_equal(standardise_mask(rgb, "m.png", num_classes=2).mask, truth)


def test_palette_png_indices_are_class_ids(tmp_path):
    truth = disc_mask(value=2)
    image = Image.fromarray(truth, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.save(tmp_path / "p.png")
    raw, palette = read_mask(tmp_path / "p.png")
    result = standardise_mask(raw, "p.png", num_classes=3, palette=palette)
    assert palette and result.kind == "palette"
    np.testing.assert_array_equal(result.mask, truth)


def test_unreadable_mask_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png: unreadable mask"):
        read_mask(path)
