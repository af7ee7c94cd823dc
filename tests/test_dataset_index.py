"""Dataset index: pairing by stem, ids from regex/CSV, atomic JSONL, bad input named in one line."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.training.dataset_index import (
    IndexConfig,
    build_index,
    pair_files,
    read_classes,
    read_index,
    write_index,
)


def make_pair(folder: Path, stem: str, size: tuple[int, int] = (40, 30), mask_size: tuple[int, int] | None = None):
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    w, h = size
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / f"{stem}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    mw, mh = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    mask[mh // 4 : mh // 2, mw // 4 : mw // 2] = 255
    cv2.imwrite(str(folder / "masks" / f"{stem}.png"), mask)


def config(root: Path, **overrides) -> IndexConfig:
    values = dict(images=root / "images", masks=root / "masks", out=root / "out" / "dataset.jsonl",
                  class_names=("polyp",))
    values.update(overrides)
    return IndexConfig(**values)


def test_pairs_by_stem_and_reports_every_unpaired_file(tmp_path):
    for stem in ("a_1", "a_2", "b_1"):
        make_pair(tmp_path, stem)
    make_pair(tmp_path, "lonely")
    (tmp_path / "masks" / "lonely.png").unlink()
    cv2.imwrite(str(tmp_path / "masks" / "orphan.png"), np.zeros((30, 40), np.uint8))
    pairs, unpaired = pair_files(tmp_path / "images", tmp_path / "masks")
    assert [stem for stem, _, _ in pairs] == ["a_1", "a_2", "b_1"]
    assert [p.name for p in unpaired] == ["lonely.png", "orphan.png"]


def test_index_rows_have_the_contract_fields_and_standard_masks(tmp_path):
    make_pair(tmp_path, "frame_7")
    report = build_index(config(tmp_path))
    (row,) = read_index(tmp_path / "out" / "dataset.jsonl")
    assert row["video_id"] is None and row["frame_id"] == 7
    assert row["classes_present"] == [1] and (row["width"], row["height"]) == (40, 30)
    mask = cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1} and int(mask.sum()) == 10 * 8
    assert report.kinds == {"binary": 1}
    assert read_classes(tmp_path / "out" / "classes.yaml") == ["background", "polyp"]


def test_video_and_frame_ids_from_a_filename_regex(tmp_path):
    for stem in ("case3_f0010", "case3_f0011", "case9_f0002"):
        make_pair(tmp_path, stem)
    build_index(config(tmp_path, id_regex=r"(?P<video>case\d+)_f(?P<frame>\d+)"))
    rows = read_index(tmp_path / "out" / "dataset.jsonl")
    assert [(r["video_id"], r["frame_id"]) for r in rows] == [("case3", 10), ("case3", 11), ("case9", 2)]


def test_video_ids_from_a_frames_csv(tmp_path):
    for stem in ("1", "2", "10"):
        make_pair(tmp_path, stem)
    csv_path = tmp_path / "frames.csv"
    csv_path.write_text("frame,image,mask,sequence_estimate\n1,images/1.png,masks/1.png,0\n"
                        "2,images/2.png,masks/2.png,0\n10,images/10.png,masks/10.png,4\n")
    build_index(config(tmp_path, frames_csv=csv_path))
    rows = read_index(tmp_path / "out" / "dataset.jsonl")
    assert [(r["video_id"], r["frame_id"]) for r in rows] == [("0", 1), ("0", 2), ("4", 10)]


def test_paths_inside_the_index_folder_are_stored_relative(tmp_path):
    index = tmp_path / "idx" / "dataset.jsonl"
    rows = [{"image_path": str(tmp_path / "idx" / "img" / "a.png"), "mask_path": "/elsewhere/a.png", "split": "val"}]
    write_index(index, rows)
    stored = json.loads(index.read_text())
    assert stored["image_path"] == "img/a.png" and stored["mask_path"] == "/elsewhere/a.png"
    assert read_index(index) == rows


def test_duplicate_stems_are_an_error_naming_both(tmp_path):
    make_pair(tmp_path, "x")
    cv2.imwrite(str(tmp_path / "images" / "x.jpg"), np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(InputError, match=r"x\..*: duplicate stem 'x' \(also x\."):
        build_index(config(tmp_path))


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match="images: no image files"):
        build_index(config(tmp_path))


def test_truncated_image_is_an_error_and_leaves_the_old_index(tmp_path):
    for stem in ("a", "b"):
        make_pair(tmp_path, stem)
    build_index(config(tmp_path))
    index = tmp_path / "out" / "dataset.jsonl"
    before = index.read_text()
    path = tmp_path / "images" / "b.png"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"b\.png: unreadable image"):
        build_index(config(tmp_path))
    assert index.read_text() == before
    assert [p.name for p in index.parent.iterdir() if p.name.startswith(".")] == []


def test_mask_size_mismatch_is_an_error_and_writes_no_index(tmp_path):
    make_pair(tmp_path, "a", mask_size=(40, 31))
    with pytest.raises(InputError, match=r"a\.png: mask is 40x31 but image a\.png is 40x30"):
        build_index(config(tmp_path))
    assert not (tmp_path / "out" / "dataset.jsonl").exists()


def test_unexpected_mask_values_name_the_file(tmp_path):
    make_pair(tmp_path, "a")
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 5:20] = 7
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    with pytest.raises(InputError, match=r"masks/a\.png: values outside the class ids 0\.\.1: 7"):
        build_index(config(tmp_path))


def test_unwritable_output_folder_is_an_error(tmp_path):
    make_pair(tmp_path, "a")
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(InputError, match="blocker/sub: output folder is not writable"):
        build_index(config(tmp_path, out=tmp_path / "blocker" / "sub" / "dataset.jsonl"))


def test_image_missing_from_the_csv_is_an_error(tmp_path):
    make_pair(tmp_path, "5")
    csv_path = tmp_path / "frames.csv"
    csv_path.write_text("frame,sequence_estimate\n1,0\n")
    with pytest.raises(InputError, match=r"frames\.csv: no row for image 5\.png"):
        build_index(config(tmp_path, frames_csv=csv_path))


def test_malformed_index_line_is_an_error_naming_the_line(tmp_path):
    index = tmp_path / "dataset.jsonl"
    index.write_text('{"image_path": "a.png", "mask_path": "a.png"}\nnot json\n')
    with pytest.raises(InputError, match=r"dataset\.jsonl:2: not a JSON line"):
        read_index(index)
