"""SAM2Prior with `instances.enabled`: one SAM 2 object per instrument (sync and async), the ID map downstream
(MaskSink's uint16 PNGs, the overlay's colours), and the class-level path untouched when it is off."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import surgseg.operators  # noqa: F401  (preloads libcudart before holoscan)
from holoscan.core import Fragment

from surgseg.engines.instance_overlay import draw_instances, id_colour
from surgseg.engines.letterbox import letterbox_geometry
from surgseg.engines.sam2.config import InstancesConfig, MemoryConfig, ModelConfig, RuntimeConfig, SeedingConfig
from surgseg.engines.sam2.instance_prior import InstancePriorTracker
from surgseg.engines.sam2.instances import Expected, InstanceHint, message_instance_ids
from surgseg.engines.sam2.tracker import PriorTracker
from surgseg.engines.video.synthetic_instances import InstanceClip, instance_clips
from surgseg.operators.mask_sink import MaskSink, MaskSinkConfig
from surgseg.operators.preproc import Preproc, PreprocConfig
from surgseg.operators.sam2_prior import SAM2Prior, SAM2PriorConfig, SeedConfig

MODEL = (64, 80)
FRAMES = 8


@pytest.fixture(scope="module")
def clip() -> list:
    frames = InstanceClip(instance_clips(frames=24, size=(160, 128))["crossing"])
    return [frames.render(t) for t in range(FRAMES)]


def prior_op(instances: bool, mode: str = "sync") -> SAM2Prior:
    config = SAM2PriorConfig(model=ModelConfig(image_size=128), memory=MemoryConfig(every=2),
                             seeding=SeedingConfig(frames=2, min_area=16), runtime=RuntimeConfig(mode=mode),
                             instances=InstancesConfig(enabled=instances), seed=SeedConfig())
    return SAM2Prior(Fragment(), name="prior", config=config)


def run_prior(op: SAM2Prior, clip: list) -> list[dict]:
    """Every frame through Preproc and the prior, the ground truth fed back as the refined mask."""
    preproc = Preproc(Fragment(), name="preproc", config=PreprocConfig(size=MODEL))
    outputs, feedback = [], None
    for t, truth in enumerate(clip):
        image = preproc.process({"frame": {"frame": truth.frame, "meta": {"frame_index": t}}})["image"]
        out = op.process({"image": image, "feedback": feedback})["prior"]
        if op.async_tracker is not None:
            op.async_tracker.wait_idle(60)
        outputs.append({**out, "mask": truth.mask})
        feedback = {"mask": truth.mask, "meta": {"frame_index": t}}
    return outputs


def each_instrument_has_its_own_id(message: dict, truth) -> bool:
    ids = message_instance_ids(message)
    owners = {int(np.bincount(ids[truth.ids == k]).argmax()) for k in np.unique(truth.ids[truth.ids > 0])}
    return 0 not in owners and len(owners) == len(np.unique(truth.ids[truth.ids > 0]))


def test_each_instrument_becomes_its_own_sam2_object_with_an_id(clip) -> None:
    op = prior_op(instances=True)
    assert isinstance(op.tracker, InstancePriorTracker)
    outputs = run_prior(op, clip)
    last = outputs[-1]
    hint = last["meta"]["instances"]
    assert sorted(hint.classes) == sorted(op.tracker.engine.memory_state()) == [1, 2]
    assert last["prior"].shape == (1, 1, *MODEL)
    born = [e for out in outputs for e in out["meta"]["sam2"].get("instances", []) if e["event"] == "born"]
    assert [e["id"] for e in born] == [1, 2]
    assert each_instrument_has_its_own_id(last, clip[-1])


def test_instances_work_with_sam2_off_the_critical_path(clip) -> None:
    op = prior_op(instances=True, mode="async")
    try:
        outputs = run_prior(op, clip)
    finally:
        op.stop()
    assert op.async_tracker.error is None
    assert "instances" in outputs[-1]["meta"] and each_instrument_has_its_own_id(outputs[-1], clip[-1])


def test_instances_off_keeps_the_class_level_tracker(clip) -> None:
    op = prior_op(instances=False)
    assert type(op.tracker) is PriorTracker
    outputs = run_prior(op, clip[:4])
    assert all("instances" not in out["meta"] for out in outputs)
    assert op.tracker.seeded and sorted(op.tracker.engine.memory_state()) == [1]


def test_mask_sink_writes_uint16_instance_ids(tmp_path) -> None:
    mask = np.zeros((32, 40), np.uint8)
    mask[4:20, 5:15] = 1
    mask[22:30, 20:38] = 1
    region = np.zeros_like(mask, bool)
    region[4:20, 5:15] = True
    hint = InstanceHint((32, 40), 2, 8, 0.15, (Expected(300, 1, region, (9.5, 11.5), 0),), {300: 1})
    geometry = letterbox_geometry((32, 40), (32, 40))
    sink = MaskSink(Fragment(), name="masks", config=MaskSinkConfig(folder=str(tmp_path / "masks"),
                                                                    instances=str(tmp_path / "ids")))
    sink.start()
    sink.process({"in": {"mask": mask, "meta": {"frame_index": 3, "instances": hint,
                                                 "letterbox": geometry.to_dict()}}})
    ids = np.asarray(Image.open(tmp_path / "ids" / "000003.png"))
    assert ids.dtype == np.uint16 and ids.shape == mask.shape
    assert set(np.unique(ids[region]).tolist()) == {300} and not ids[~region].any()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "masks" / "000003.png")), mask)


def test_overlay_paints_each_id_in_its_own_colour() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    ids = np.zeros((40, 60), np.uint16)
    ids[5:35, 5:25], ids[5:35, 35:55] = 1, 2
    out = draw_instances(image, ids, opacity=1.0)
    assert tuple(out[8, 15]) == id_colour(1) and tuple(out[8, 45]) == id_colour(2) and id_colour(1) != id_colour(2)
    assert not out[0, 0].any()
