"""`surgseg data ...` end to end: synth, index -> split -> prompts, bad input exits 2 naming the file."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from surgseg.app.cli import main
from surgseg.training.dataset_index import read_index
from surgseg.training.splits import leaked_groups
from surgseg.training.synth_dataset import SynthDatasetConfig

log = logging.getLogger(__name__)


@pytest.fixture
def synth_dir(tmp_path) -> Path:
    out = tmp_path / "synth"
    sheet = tmp_path / "sheet.png"
    code = main(["data", "synth", "--out", str(out), "--clips", "2", "--frames", "6", "--size", "96x64",
                 "--seed", "3", "--contact-sheet", str(sheet)])
    assert code == 0
    assert cv2.imread(str(sheet)).shape[1] > 96
    return out


def test_synth_writes_frames_masks_video_and_index(synth_dir):
    import av

    rows = read_index(synth_dir / "dataset.jsonl")
    assert len(rows) == 12 and {r["video_id"] for r in rows} == {"clip_000", "clip_001"}
    assert all(isinstance(r["tags"], list) for r in rows)
    with av.open(str(synth_dir / "clip_000" / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (64, 96, 3)
    written = cv2.cvtColor(cv2.imread(rows[0]["image_path"]), cv2.COLOR_BGR2RGB)
    assert np.abs(decoded[0].astype(int) - written).mean() < 6


def test_synth_pngs_match_the_generator_exactly(synth_dir):
    clip = SynthDatasetConfig(out=synth_dir, clips=2, frames=6, size=(96, 64), seed=3).clip(1)
    row = [r for r in read_index(synth_dir / "dataset.jsonl") if r["video_id"] == "clip_001"][4]
    frame, mask, tags = clip.render(4)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(row["image_path"]), cv2.COLOR_BGR2RGB), frame)
    np.testing.assert_array_equal(cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED), mask)
    assert row["tags"] == tags


def test_index_split_prompts_chain_with_prompt_geometry(synth_dir, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for row in read_index(synth_dir / "dataset.jsonl"):
        stem = f"{row['video_id']}_{row['frame_id']:03d}"
        Path(images / f"{stem}.png").write_bytes(Path(row["image_path"]).read_bytes())
        Path(masks / f"{stem}.png").write_bytes(Path(row["mask_path"]).read_bytes())
    index = tmp_path / "data" / "dataset.jsonl"
    assert main(["data", "index", "--images", str(images), "--masks", str(masks), "--out", str(index),
                 "--num-classes", "3", "--class-names", "shaft,tip",
                 "--id-regex", r"(?P<video>clip_\d+)_(?P<frame>\d+)"]) == 0
    assert main(["data", "split", "--index", str(index), "--fractions", "0.5,0.5,0"]) == 0
    assert main(["data", "prompts", "--index", str(index)]) == 0
    rows = read_index(index)
    assert leaked_groups(rows) == {} and {r["split"] for r in rows} == {"train", "val"}
    checked = 0
    for row in rows:
        mask = cv2.imread(row["mask_path"], cv2.IMREAD_UNCHANGED)
        payload = json.loads((index.parent / "prompts" / f"{Path(row['image_path']).stem}.prompts.json").read_text())
        assert payload["schema_version"] == 1
        for class_id, components in payload["classes"].items():
            inside = mask == int(class_id)
            for prompt in components:
                (px, py), *negatives = prompt["points"]
                assert inside[py, px]
                assert all(not inside[y, x] for x, y in negatives)
                x0, y0, x1, y1 = prompt["box"]
                assert inside[y0 : y1 + 1, x0 : x1 + 1].any()
                assert inside[y0, x0 : x1 + 1].any() and inside[y1, x0 : x1 + 1].any()
                assert inside[y0 : y1 + 1, x0].any() and inside[y0 : y1 + 1, x1].any()
                checked += 1
    assert checked > 0


def test_bad_input_exits_2_with_one_line_naming_the_file(tmp_path, caplog):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(masks / "a.png"), np.zeros((21, 30), np.uint8))
    index = tmp_path / "out" / "dataset.jsonl"
    with caplog.at_level(logging.ERROR, logger="surgseg"):
        code = main(["data", "index", "--images", str(images), "--masks", str(masks), "--out", str(index)])
    assert code == 2
    (message,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in message and "masks/a.png: mask is 30x21 but image a.png is 30x20" in message
    assert not index.exists()


def test_synth_domain_and_negative_shares_reach_the_clips(tmp_path):
    out = tmp_path / "s"
    assert main(["data", "synth", "--out", str(out), "--clips", "2", "--frames", "2", "--size", "96x64",
                 "--domain", "1", "--negatives", "0.5"]) == 0
    rows = read_index(out / "dataset.jsonl")
    masks = {r["video_id"]: cv2.imread(r["mask_path"], cv2.IMREAD_UNCHANGED) for r in rows}
    assert sorted(bool(m.any()) for m in masks.values()) == [False, True]  # one clip of two has no instrument
    config = SynthDatasetConfig(out=out, clips=2, frames=2, size=(96, 64), domain=1.0, negatives=0.5)
    assert all(config.clip(i).config.domain for i in range(2))
    assert main(["data", "synth", "--out", str(tmp_path / "t"), "--domain", "1.5"]) == 2


def test_odd_synth_size_is_rejected(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--size", "95x64"]) == 2


@pytest.mark.slow
@pytest.mark.data
def test_clinicdb_chain_has_no_group_leakage(shared_data, tmp_path):
    clinic = shared_data / "cvc-clinicdb"
    index = tmp_path / "dataset.jsonl"
    timings = {}
    start = time.perf_counter()
    assert main(["data", "index", "--images", str(clinic / "images"), "--masks", str(clinic / "masks"),
                 "--out", str(index), "--class-names", "polyp", "--frames-csv", str(clinic / "frames.csv")]) == 0
    timings["index"] = time.perf_counter() - start
    start = time.perf_counter()
    assert main(["data", "split", "--index", str(index)]) == 0
    timings["split"] = time.perf_counter() - start
    start = time.perf_counter()
    assert main(["data", "prompts", "--index", str(index)]) == 0
    timings["prompts"] = time.perf_counter() - start
    log.info("clinicdb chain seconds: %s", {k: round(v, 2) for k, v in timings.items()})
    rows = read_index(index)
    assert len(rows) == 612 and leaked_groups(rows) == {}
    assert len({r["video_id"] for r in rows}) == 12
    counts = {s: sum(r["split"] == s for r in rows) / len(rows) for s in ("train", "val", "test")}
    assert counts == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1}, abs=0.05)
    assert len(list((tmp_path / "prompts").glob("*.prompts.json"))) == 612
